"""Serve a ``ClusterSource`` as GPU Watchdog's backend: its REST API, and the exporter pages its
collector scrapes.

Why: ``gpudoc sim`` is a drop-in for the real backend (``backend/`` of GPU Watchdog), for its
frontend and for gpudoc's ``watchdog`` source: the same routes, the same JSON shapes and types
(``watchdog_shapes``), the same error bodies. And it serves what the real backend's collector
reads, so the real backend can run on the simulated cluster: one dcgm-exporter page per node at
``/metrics/gpu/<hostname>/metrics`` (the collector takes the hostname from that path segment; a
Prometheus scrapes the same pages, with node_exporter's at ``/metrics/node/<hostname>/metrics``,
see ``exporter_routes``), prometheus-slurm-exporter's page at ``/metrics/slurm/metrics``, and the
whole cluster's DCGM metrics at ``/metrics``.

What the API shows is what the real backend shows when its collector scrapes those pages
(``CollectorView``): a node whose host is down fails its scrape (its page answers 502, as a
gateway in front of a dead host does) and is absent from the current metrics, the status
counts only reporting nodes and calls the cluster healthy while any node reports, values the
exporter does not write read 0 (so a stale GPU whose XID series the exporter keeps is a GPU with
every reading 0, and one without any series is absent from its node), and the
Slurm object is built from the exporter's own numbers. The simulator's history, alert rules
and events stand in for the backend's SQLite tables (``watchdog_alert_routes``).

Errors are the backend's: ``{"error": "Node not found"}`` (404), ``{"error": "Invalid query
parameters"}`` (400), ``{"error": "Slurm metrics not available"}`` (404); a failing cluster
source answers 503/502 with what failed.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from gpudoc.tools.js_numbers import js_number
from gpudoc.tools.models import GpuMetrics, NodeMetrics, SlurmSnapshot
from gpudoc.tools.sim.dcgm_exporter import DcgmExporter
from gpudoc.tools.sim.exporter_routes import add_exporter_routes
from gpudoc.tools.sim.exposition import PROMETHEUS_CONTENT_TYPE
from gpudoc.tools.sim.slurm_exporter import render_slurm_metrics, slurm_export
from gpudoc.tools.sim.source import SimSource
from gpudoc.tools.sim.watchdog_alert_routes import alert_routes
from gpudoc.tools.sources.base import (
    ClusterSource,
    NotSupportedError,
    SourceError,
    SourceUnavailableError,
    UnknownNodeError,
)
from gpudoc.tools.sources.watchdog_shapes import (
    ClusterStatusWire,
    CurrentMetricsWire,
    GpuHistoryWire,
    GpuSummaryWire,
    GpuWire,
    HealthWire,
    NodeSummaryWire,
    NodeWire,
    SlurmHistoryDataWire,
    SlurmHistoryPointWire,
    SlurmHistoryWire,
    SlurmNodeWire,
    SlurmQueueWire,
    SlurmSummaryWire,
    SlurmWire,
    TimeRangeWire,
)

#: the backend keeps 7 days of history (its ``RETENTION_DAYS`` default)
MAX_HISTORY_MINUTES = 7 * 24 * 60
DEFAULT_HISTORY_MINUTES = 60


class QueryError(ValueError):
    """A query parameter the backend's schema rejects."""


@dataclass(frozen=True)
class CollectorView:
    """What the real backend's collector holds after scraping the simulated exporters."""

    nodes: list[NodeWire]
    slurm: SlurmWire | None
    last_updated: datetime


async def collector_view(source: ClusterSource) -> CollectorView:
    nodes, slurm = await asyncio.gather(source.current_metrics(), _slurm_or_none(source))
    stamps = [node.timestamp for node in nodes]
    last_updated = max(stamps) if stamps else datetime.now(UTC)
    wires = [_node_wire(node, last_updated) for node in nodes if node.reachable]
    return CollectorView(wires, None if slurm is None else slurm_wire(slurm), last_updated)


async def _slurm_or_none(source: ClusterSource) -> SlurmSnapshot | None:
    """The collector keeps ``slurm: null`` when the Slurm exporter cannot be scraped."""
    try:
        return await source.slurm()
    except SourceError:
        return None


def create_watchdog_app(source: ClusterSource, exporter: DcgmExporter | None = None) -> FastAPI:
    """A FastAPI app answering as GPU Watchdog's backend from ``source``, with the per-node exporter
    pages (``exporter_routes``) written by ``exporter``. The caller owns ``source``."""
    app = FastAPI(
        title="GPU Watchdog API (gpudoc)",
        description=f"The GPU Watchdog REST API served from the '{source.name}' cluster source.",
        docs_url=None,
        redoc_url=None,
    )
    _install_error_handlers(app)
    app.include_router(alert_routes(source))

    @app.get("/health")
    async def health() -> JSONResponse:
        return JSONResponse(HealthWire(status="ok", timestamp=datetime.now(UTC)).to_wire())

    @app.get("/api/cluster/status")
    async def cluster_status() -> JSONResponse:
        return JSONResponse(status_wire(await collector_view(source)).to_wire())

    @app.get("/api/cluster/nodes")
    async def cluster_nodes() -> JSONResponse:
        view = await collector_view(source)
        return JSONResponse([node_summary_wire(node).to_wire() for node in view.nodes])

    @app.get("/api/metrics/current")
    async def current_metrics() -> JSONResponse:
        view = await collector_view(source)
        wire = CurrentMetricsWire(nodes=view.nodes, slurm=view.slurm, last_updated=view.last_updated)
        return JSONResponse(wire.to_wire())

    @app.get("/api/metrics/gpu/{node_id}")
    async def node_metrics(node_id: str) -> JSONResponse:
        view = await collector_view(source)
        node = next((node for node in view.nodes if node.node_id == node_id), None)
        if node is None:
            return _error(404, "Node not found")
        return JSONResponse(node.to_wire())

    @app.get("/api/metrics/history/gpu")
    async def gpu_history(request: Request) -> JSONResponse:
        view = await collector_view(source)
        start, end = history_window(request, view.last_updated)
        node_id = request.query_params.get("nodeId") or None
        # one minute more than the window, so the scrape at ``start`` itself is in what is fetched
        minutes = min(math.ceil((view.last_updated - start).total_seconds() / 60) + 1, MAX_HISTORY_MINUTES)
        try:
            series = await source.gpu_history(node_id, max(1, minutes)) if end >= start else []
        except UnknownNodeError:
            series = []  # the backend has no rows for it: no data, no error
        windowed = [GpuHistoryWire.json_of(one, start, end) for one in series]
        data = [wire for wire in windowed if wire["data"]]  # no rows, no series
        return JSONResponse({"range": TimeRangeWire(start=start, end=end).to_wire(), "data": data})

    @app.get("/api/metrics/history/slurm")
    async def slurm_history(request: Request) -> JSONResponse:
        view = await collector_view(source)
        start, end = history_window(request, view.last_updated)
        snapshots = source.slurm_history(start, end) if isinstance(source, SimSource) else []
        points = [slurm_history_point(snapshot) for snapshot in snapshots]
        wire = SlurmHistoryWire(range=TimeRangeWire(start=start, end=end), data=SlurmHistoryDataWire(data=points))
        return JSONResponse(wire.to_wire())

    @app.get("/api/metrics/slurm")
    async def slurm() -> JSONResponse:
        view = await collector_view(source)
        if view.slurm is None:
            return _error(404, "Slurm metrics not available")
        return JSONResponse(view.slurm.to_wire())

    add_exporter_routes(app, source, exporter or DcgmExporter())

    @app.get("/metrics/slurm/metrics")
    async def slurm_exporter_page() -> PlainTextResponse:
        snapshot = await source.slurm()
        if snapshot is None:
            return PlainTextResponse("this cluster has no Slurm\n", status_code=404)
        return PlainTextResponse(render_slurm_metrics(snapshot), media_type=PROMETHEUS_CONTENT_TYPE)

    return app


# ---- query parameters, as the backend's zod schema reads them ---------------------------------


def query_number(text: str | None) -> float | None:
    """``z.coerce.number()`` on a query string: absent is ``None``, otherwise JavaScript's
    ``Number`` (blank is 0); NaN fails, as zod's check does, and so does an infinite value, which
    no time window can hold."""
    if text is None:
        return None
    value = js_number(text)
    if not math.isfinite(value):
        raise QueryError(text)
    return value


def history_window(request: Request, now: datetime) -> tuple[datetime, datetime]:
    """``start`` and ``end`` as the backend computes them: epoch-ms parameters, else the last
    ``duration`` minutes (60 when absent or 0) up to now."""
    params = request.query_params
    start, end, duration = (query_number(params.get(name)) for name in ("start", "end", "duration"))
    minutes = duration or DEFAULT_HISTORY_MINUTES
    try:
        first = _from_ms(start) if start else now - timedelta(minutes=minutes)
    except OverflowError:  # a duration longer than any date range
        raise QueryError(str(duration)) from None
    last = _from_ms(end) if end else now
    return first, last


def _from_ms(value: float) -> datetime:
    try:
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise QueryError(str(value)) from None


# ---- errors ------------------------------------------------------------------------------------


def _error(status_code: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status_code)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(QueryError)
    async def bad_query(_: Request, exc: QueryError) -> JSONResponse:
        return _error(400, "Invalid query parameters")

    @app.exception_handler(RequestValidationError)
    async def bad_parameters(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(400, "Invalid query parameters")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(UnknownNodeError)
    async def unknown_node(_: Request, exc: UnknownNodeError) -> JSONResponse:
        return _error(404, "Node not found")

    @app.exception_handler(NotSupportedError)
    async def not_supported(_: Request, exc: NotSupportedError) -> JSONResponse:
        return _error(501, str(exc))

    @app.exception_handler(SourceUnavailableError)
    async def unavailable(_: Request, exc: SourceUnavailableError) -> JSONResponse:
        return _error(503, str(exc))

    @app.exception_handler(SourceError)
    async def source_failed(_: Request, exc: SourceError) -> JSONResponse:
        return _error(502, str(exc))


# ---- facts to wire shapes, the way the collector would have read them ---------------------------


def _node_wire(node: NodeMetrics, scraped_at: datetime) -> NodeWire:
    """A reporting node: its live GPUs, and its stale ones that still have an XID series (the
    collector parses no value from it, so they read 0 throughout)."""
    return NodeWire(
        node_id=node.node_id,
        hostname=node.hostname,
        gpus=[_stale_gpu_wire(gpu) if gpu.stale else _gpu_wire(gpu)
              for gpu in node.gpus if not gpu.stale or gpu.last_xid is not None],
        timestamp=scraped_at,
    )


def _gpu_wire(gpu: GpuMetrics) -> GpuWire:
    """The collector's reading of the GPU's exporter lines; a series the exporter lacks reads 0."""
    return GpuWire(
        gpu=str(gpu.index),
        gpu_name=gpu.model.replace(" ", "_"),
        utilization=gpu.utilization_pct,
        memory_utilization=gpu.memory_util_pct or 0.0,
        memory_used_mb=gpu.memory_used_mib,
        memory_free_mb=max(gpu.memory_total_mib - gpu.memory_used_mib, 0.0),
        memory_total_mb=gpu.memory_total_mib,
        temperature_c=gpu.temperature_c,
        power_usage_w=gpu.power_w,
        sm_clock_mhz=gpu.sm_clock_mhz or 0.0,
        mem_clock_mhz=gpu.mem_clock_mhz or 0.0,
    )


def _stale_gpu_wire(gpu: GpuMetrics) -> GpuWire:
    """What the collector makes of a GPU whose only line is ``DCGM_FI_DEV_XID_ERRORS``: its name, zeros."""
    return GpuWire(
        gpu=str(gpu.index), gpu_name=gpu.model.replace(" ", "_"), utilization=0.0, memory_utilization=0.0,
        memory_used_mb=0.0, memory_free_mb=0.0, memory_total_mb=0.0, temperature_c=0.0, power_usage_w=0.0,
        sm_clock_mhz=0.0, mem_clock_mhz=0.0,
    )


def slurm_wire(snapshot: SlurmSnapshot) -> SlurmWire:
    """The collector's reading of the Slurm exporter's page (``slurm_exporter``)."""
    export = slurm_export(snapshot)
    return SlurmWire(
        nodes=[
            SlurmNodeWire(node=n.node, status=n.status, cpus_alloc=n.cpu_alloc, cpus_idle=n.cpu_idle,
                          cpus_total=n.cpu_total, mem_alloc=n.mem_alloc, mem_total=n.mem_total)
            for n in export.nodes
        ],
        cpus_total=export.cpus["total"],
        cpus_alloc=export.cpus["alloc"],
        cpus_idle=export.cpus["idle"],
        nodes_total=len(export.nodes),
        nodes_idle=export.node_classes["idle"],
        nodes_alloc=export.node_classes["alloc"],
        queue=SlurmQueueWire(**export.queue),
    )


def status_wire(view: CollectorView) -> ClusterStatusWire:
    """``/api/cluster/status`` as the backend computes it from its collector state."""
    gpus = [gpu for node in view.nodes for gpu in node.gpus or []]
    slurm = view.slurm
    queue = slurm.queue if slurm is not None else None
    return ClusterStatusWire(
        healthy=len(view.nodes) > 0,
        node_count=len(view.nodes),
        gpu_count=len(gpus),
        avg_utilization=_round1(sum(g.utilization for g in gpus) / len(gpus)) if gpus else 0,
        avg_temperature=_round1(sum(g.temperature_c for g in gpus) / len(gpus)) if gpus else 0,
        memory_used_gb=_round1(sum(g.memory_used_mb for g in gpus) / 1024),
        memory_total_gb=_round1(sum(g.memory_total_mb or 0 for g in gpus) / 1024),
        slurm=None if slurm is None or queue is None else SlurmSummaryWire(
            cpus_total=slurm.cpus_total, cpus_alloc=slurm.cpus_alloc, cpus_idle=slurm.cpus_idle,
            nodes_total=slurm.nodes_total, jobs_pending=queue.pending, jobs_running=queue.running,
        ),
        last_updated=view.last_updated,
    )


def node_summary_wire(node: NodeWire) -> NodeSummaryWire:
    gpus = node.gpus or []
    return NodeSummaryWire(
        node_id=node.node_id,
        hostname=node.hostname,
        gpu_count=len(gpus),
        gpus=[
            GpuSummaryWire(index=g.gpu, name=g.gpu_name, utilization=g.utilization, memory_used_mb=g.memory_used_mb,
                           memory_total_mb=g.memory_total_mb, temperature_c=g.temperature_c,
                           power_usage_w=g.power_usage_w)
            for g in gpus
        ],
        timestamp=node.timestamp,
    )


def slurm_history_point(snapshot: SlurmSnapshot) -> SlurmHistoryPointWire:
    """One row of the backend's ``slurm_metrics`` table (it stores no cancelled count)."""
    wire = slurm_wire(snapshot)
    queue = wire.queue or SlurmQueueWire()
    return SlurmHistoryPointWire(
        timestamp=snapshot.timestamp, cpus_total=wire.cpus_total, cpus_alloc=wire.cpus_alloc,
        cpus_idle=wire.cpus_idle, nodes_total=wire.nodes_total, nodes_idle=wire.nodes_idle,
        nodes_alloc=wire.nodes_alloc, queue_pending=queue.pending, queue_running=queue.running,
        queue_completed=queue.completed, queue_failed=queue.failed,
    )


def _round1(value: float) -> float:
    """JavaScript's ``Math.round(value * 10) / 10`` (halves round up, not to even)."""
    return math.floor(value * 10 + 0.5) / 10
