"""The per-node exporter endpoints of ``gpudoc sim``, as a Prometheus (or the GPU Watchdog's
collector) scrapes them on a real cluster.

``/metrics/gpu/<node>/metrics`` is that node's dcgm-exporter, ``/metrics/node/<node>/metrics`` its
node_exporter. A node whose host is down answers ``502 Bad Gateway``, as the gateway in front of
real per-node exporters does when the host behind it is unreachable: Prometheus records ``up 0``
and a collector drops the node. An unknown node is ``404``.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse

from gpudoc.tools.models import NodeMetrics
from gpudoc.tools.sim.dcgm_exporter import DcgmExporter
from gpudoc.tools.sim.exposition import PROMETHEUS_CONTENT_TYPE as CONTENT_TYPE
from gpudoc.tools.sim.node_exporter import render_node_exporter
from gpudoc.tools.sources.base import ClusterSource, UnknownNodeError


def add_exporter_routes(app: FastAPI, source: ClusterSource, exporter: DcgmExporter) -> None:
    """Mount the per-node dcgm-exporter and node_exporter pages of ``source`` on ``app``."""

    async def page(host: str, render: Callable[[NodeMetrics], str]) -> PlainTextResponse:
        try:
            node = await source.node_metrics(host)
        except UnknownNodeError:
            return PlainTextResponse(f"no exporter for host '{host}'\n", status_code=404)
        if not node.reachable:
            return PlainTextResponse(f"502 Bad Gateway: {host} does not answer\n", status_code=502)
        return PlainTextResponse(render(node), media_type=CONTENT_TYPE)

    @app.get("/metrics/gpu/{host}/metrics")
    async def gpu_exporter(host: str) -> PlainTextResponse:
        return await page(host, exporter.render_node)

    @app.get("/metrics/node/{host}/metrics")
    async def node_exporter(host: str) -> PlainTextResponse:
        return await page(host, render_node_exporter)

    @app.get("/metrics")
    async def whole_cluster() -> PlainTextResponse:
        nodes = await source.current_metrics()
        return PlainTextResponse(exporter.render_cluster(nodes), media_type=CONTENT_TYPE)
