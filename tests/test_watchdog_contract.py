"""One contract (``tests/watchdog_contract.py``), three backends: the recordings of the real GPU
Watchdog backend, ``gpudoc sim``, and a live backend when ``GPU_WATCHDOG_URL`` names one."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import httpx
import pytest

from gpudoc.tools.sim.source import SimSource
from gpudoc.tools.sim.watchdog_api import create_watchdog_app
from tests.watchdog_contract import HttpBackend, RecordedBackend, check_read_contract, check_write_contract

#: the scenario the recordings were made on
RECORDED_SCENARIOS = ["thermal-throttle@node-2/gpu-3", "host-down@node-6"]


async def test_the_recordings_satisfy_the_contract() -> None:
    await check_read_contract(RecordedBackend(), node="node-2", absent_node="node-6")
    await check_write_contract(RecordedBackend())


@pytest.fixture
async def sim_backend() -> AsyncIterator[HttpBackend]:
    app = create_watchdog_app(SimSource.create(realtime=False, scenarios=RECORDED_SCENARIOS))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sim") as client:
        yield HttpBackend(client)


async def test_gpudoc_sim_answers_as_the_recordings(sim_backend: HttpBackend) -> None:
    await check_read_contract(sim_backend, node="node-2", absent_node="node-6")
    await check_write_contract(sim_backend)


LIVE_URL = os.environ.get("GPU_WATCHDOG_URL")
live = pytest.mark.skipif(
    not LIVE_URL,
    reason="no live GPU Watchdog backend: set GPU_WATCHDOG_URL=http://HOST:PORT to check one against the contract",
)


@pytest.fixture
async def live_backend() -> AsyncIterator[HttpBackend]:
    assert LIVE_URL
    async with httpx.AsyncClient(base_url=LIVE_URL.rstrip("/"), timeout=10) as client:
        yield HttpBackend(client)


@live
async def test_a_live_backend_answers_as_the_recordings(live_backend: HttpBackend) -> None:
    current = (await live_backend.client.get("/api/metrics/current")).json()
    assert current["nodes"], f"{LIVE_URL} reports no node: point its collector at exporters first"
    await check_read_contract(live_backend, node=current["nodes"][0]["nodeId"], absent_node="gpudoc-no-such-node")


@live
@pytest.mark.skipif(
    os.environ.get("GPU_WATCHDOG_CONTRACT_WRITES") != "1",
    reason="creates and deletes an alert rule on the live backend: set GPU_WATCHDOG_CONTRACT_WRITES=1 to allow it",
)
async def test_a_live_backend_edits_rules_as_the_recordings(live_backend: HttpBackend) -> None:
    await check_write_contract(live_backend)
