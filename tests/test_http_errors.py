"""Every HTTP source names a request that got no answer by its root cause, the same way.

A host that cannot be reached is not a refused connection: "refused" sends the operator to start
the server, "no route to host" to the network or a firewall. httpx reports both as "All
connection attempts failed"; the transport below raises exactly the chain httpx builds over
anyio's error, so each source's message is checked without depending on this machine's network.
"""

from __future__ import annotations

import errno

import httpx
import pytest

from gpudoc.tools.sources.base import SourceUnavailableError
from gpudoc.tools.sources.http_errors import checked_http_url, one_line
from gpudoc.tools.sources.prometheus.client import PrometheusClient
from gpudoc.tools.sources.slurm_rest import SlurmRestClient
from gpudoc.tools.sources.watchdog import WatchdogSource


class NoRouteToHost(httpx.AsyncBaseTransport):
    """Fails every request the way httpx does when the host's network is unreachable."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        root = OSError(errno.EHOSTUNREACH, f"Connect call failed ('{request.url.host}', {request.url.port})")
        wrapped = OSError("All connection attempts failed")
        wrapped.__cause__ = root
        raise httpx.ConnectError("All connection attempts failed") from wrapped


async def test_prometheus_names_an_unreachable_host_not_a_refused_connection() -> None:
    client = PrometheusClient("http://prometheus.test:9090", retries=0, transport=NoRouteToHost())
    with pytest.raises(SourceUnavailableError) as caught:
        await client.query("up")
    await client.aclose()
    assert "unreachable (no route to host)" in str(caught.value) and "refused" not in str(caught.value)


async def test_watchdog_names_the_root_cause_of_an_unreachable_backend() -> None:
    source = WatchdogSource("http://watchdog.test:3001", retries=0, backoff_s=0, transport=NoRouteToHost())
    with pytest.raises(SourceUnavailableError, match=r"watchdog\.test:3001: no route to host\. Is it running"):
        await source.cluster_status()
    await source.aclose()


async def test_slurmrestd_names_the_root_cause_of_an_unreachable_server() -> None:
    client = SlurmRestClient("http://slurm.test:6820", token="t", user="u", version="v0.0.42", retries=0,
                             transport=NoRouteToHost())
    with pytest.raises(SourceUnavailableError, match=r"Could not reach slurmrestd at .*: no route to host\."):
        await client.snapshot()
    await client.aclose()


def test_a_url_must_be_http_with_a_host() -> None:
    assert checked_http_url(" https://prom:9090/ ") == "https://prom:9090"
    assert [checked_http_url(url) for url in ("prom:9090", "http://", "", None)] == [None] * 4


def test_quoted_server_text_is_one_bounded_line() -> None:
    assert one_line("a\n  b\tc", 10) == "a b c"
    assert one_line("x" * 20, 10) == "x" * 9 + "…"
