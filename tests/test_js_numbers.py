"""Counts in query strings are read as GPU Watchdog's Express backend reads them, every one.

``Math.min(Number(raw) || default, cap)``: JavaScript's ``Number``, not Python's ``float``, and
a count no request can turn into a server error.
"""

from __future__ import annotations

import math

import httpx
import pytest

from gpudoc.server.agent_logs import requested_lines
from gpudoc.tools.js_numbers import express_count, js_number
from gpudoc.tools.sim.source import SimSource
from gpudoc.tools.sim.watchdog_api import create_watchdog_app


@pytest.mark.parametrize(("text", "number"), [
    ("12", 12.0), (" 12 ", 12.0), ("", 0.0), ("  ", 0.0), ("-3.5", -3.5), (".5", 0.5), ("5.", 5.0),
    ("1e3", 1000.0), ("+7", 7.0), ("0x10", 16.0), ("0b101", 5.0), ("0o17", 15.0),
    ("Infinity", math.inf), ("-Infinity", -math.inf), ("1e400", math.inf),
])
def test_number_literals_read_as_javascript_reads_them(text: str, number: float) -> None:
    assert js_number(text) == number


@pytest.mark.parametrize("text", ["1_000", "inf", "nan", "NaN", "infinity", "12px", "-0x10", "١٢", "1e", "0x"])
def test_what_javascript_does_not_read_as_a_number_is_nan(text: str) -> None:
    assert math.isnan(js_number(text))


def test_counts_follow_math_min_of_number_or_default() -> None:
    count = lambda raw: express_count(raw, default=100, cap=500)  # noqa: E731
    assert [count(raw) for raw in (None, "", "0", "lots", "1_000", "inf")] == [100] * 6
    assert [count(raw) for raw in ("3", "2.9", "9999", "Infinity", "0x20", "-5")] == [3, 2, 500, 500, 32, -5]


def test_minus_infinity_is_a_negative_count_not_a_server_error() -> None:
    assert express_count("-Infinity", default=100, cap=500) < 0
    assert requested_lines("-Infinity") < 0 and requested_lines("-1e400") < 0


async def test_the_simulated_backend_answers_an_events_limit_of_minus_infinity_with_every_event() -> None:
    source = SimSource.create(realtime=False, scenarios=["thermal-throttle@node-2/gpu-3"])
    app = create_watchdog_app(source)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sim") as client:
        everything = await client.get("/api/alerts/events/history", params={"limit": "-1"})
        unbounded = await client.get("/api/alerts/events/history", params={"limit": "-Infinity"})
    assert unbounded.status_code == 200 and unbounded.json() == everything.json()
