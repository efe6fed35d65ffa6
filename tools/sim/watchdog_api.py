"""Serve any ``ClusterSource`` as the GPU Watchdog REST API, plus DCGM-exporter ``/metrics``.

Why: ``gpudoc sim`` exposes the simulated cluster through the very API the ``watchdog`` source
reads, so that source (and any GPU Watchdog frontend) can be exercised end to end over real HTTP,
and a Prometheus can scrape ``/metrics``. The bodies are the original backend's shapes
(``watchdog_shapes``), nothing added.

What the API shows is what the original would show from its Prometheus: a GPU whose series went
stale and a node that stopped reporting are absent from the current metrics (their history up to
that point remains), and Slurm states collapse to its five coarse statuses.

Errors are JSON ``{"error": "..."}``: 404 for an unknown node, 400 with ``details`` for bad query
parameters, 503/502 when the underlying source fails.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from gpudoc.tools.models import (
    GpuMetrics,
    NodeMetrics,
    SlurmNode,
    SlurmSnapshot,
    SlurmSummary,
)
from gpudoc.tools.sim.dcgm_exporter import DcgmExporter
from gpudoc.tools.sim.exporter_routes import add_exporter_routes
from gpudoc.tools.sources.base import (
    ClusterSource,
    NotSupportedError,
    SourceError,
    SourceUnavailableError,
    UnknownNodeError,
)
from gpudoc.tools.sources.watchdog_shapes import (
    AlertEventWire,
    AlertRuleWire,
    ClusterStatusWire,
    CurrentMetricsWire,
    GpuHistoryWire,
    GpuWire,
    HistoryWire,
    NodeWire,
    SlurmNodeStatus,
    SlurmNodeWire,
    SlurmQueueWire,
    SlurmSummaryWire,
    SlurmWire,
    TimeRangeWire,
)

MAX_HISTORY_MINUTES = 7 * 24 * 60
MAX_ALERT_EVENTS = 1000


def create_watchdog_app(source: ClusterSource, exporter: DcgmExporter | None = None) -> FastAPI:
    """A FastAPI app answering the GPU Watchdog API from ``source``, plus the per-node exporter
    pages (``exporter_routes``) written by ``exporter``. The caller owns ``source``."""
    app = FastAPI(
        title="GPU Watchdog API (gpudoc)",
        description=f"The GPU Watchdog REST API served from the '{source.name}' cluster source.",
        docs_url=None,
        redoc_url=None,
    )
    _install_error_handlers(app)

    @app.get("/api/cluster/status")
    async def cluster_status() -> JSONResponse:
        status = await source.cluster_status()
        wire = ClusterStatusWire(
            healthy=status.healthy,
            node_count=status.node_count,
            gpu_count=status.gpu_count,
            avg_utilization=status.avg_utilization_pct,
            avg_temperature=status.avg_temperature_c,
            memory_used_gb=status.memory_used_gb,
            memory_total_gb=status.memory_total_gb,
            slurm=_slurm_summary_wire(status.slurm),
            last_updated=status.last_updated,
        )
        return JSONResponse(wire.to_wire())

    @app.get("/api/metrics/current")
    async def current_metrics() -> JSONResponse:
        nodes, status = await asyncio.gather(source.current_metrics(), source.cluster_status())
        wire = CurrentMetricsWire(
            nodes=[node_wire for node in nodes if (node_wire := _node_wire(node)) is not None],
            slurm=_slurm_summary_wire(status.slurm),
            last_updated=status.last_updated,
        )
        return JSONResponse(wire.to_wire())

    @app.get("/api/metrics/gpu/{node_id}")
    async def node_metrics(node_id: str) -> JSONResponse:
        node = await source.node_metrics(node_id)
        node_wire = _node_wire(node)
        if node_wire is None:
            return _error(404, f"No current metrics for node '{node.node_id}': it is not reporting.")
        return JSONResponse(node_wire.to_wire())

    @app.get("/api/metrics/history/gpu")
    async def gpu_history(
        node_id: str | None = Query(None, alias="nodeId", min_length=1),
        duration: int = Query(60, ge=1, le=MAX_HISTORY_MINUTES, description="minutes"),
    ) -> JSONResponse:
        series, status = await asyncio.gather(
            source.gpu_history(node_id, duration), source.cluster_status()
        )
        end = status.last_updated
        wire = HistoryWire(
            range=TimeRangeWire(start=end - timedelta(minutes=duration), end=end),
            data=[GpuHistoryWire.from_model(one) for one in series],
        )
        return JSONResponse(wire.to_wire())

    @app.get("/api/alerts")
    async def alert_rules() -> JSONResponse:
        rules = await source.alert_rules()
        return JSONResponse([AlertRuleWire.from_model(rule).to_wire() for rule in rules])

    @app.get("/api/alerts/events/history")
    async def alert_history(
        limit: int = Query(50, ge=1, le=MAX_ALERT_EVENTS),
    ) -> JSONResponse:
        events = await source.alert_history(limit)
        return JSONResponse([AlertEventWire.from_model(event).to_wire() for event in events[:limit]])

    @app.get("/api/metrics/slurm")
    async def slurm() -> JSONResponse:
        snapshot = await source.slurm()
        if snapshot is None:
            return _error(404, "This cluster has no Slurm scheduler.")
        return JSONResponse(_slurm_wire(snapshot).to_wire())

    add_exporter_routes(app, source, exporter or DcgmExporter())
    return app


# ---- errors -----------------------------------------------------------------------------------


def _error(status_code: int, message: str, details: list[dict[str, object]] | None = None) -> JSONResponse:
    body: dict[str, object] = {"error": message}
    if details is not None:
        body["details"] = details
    return JSONResponse(body, status_code=status_code)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def bad_parameters(_: Request, exc: RequestValidationError) -> JSONResponse:
        details: list[dict[str, object]] = [
            {
                "field": ".".join(str(part) for part in error["loc"] if part not in ("query", "path")),
                "message": error["msg"],
            }
            for error in exc.errors()
        ]
        return _error(400, "Invalid request parameters", details)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(UnknownNodeError)
    async def unknown_node(_: Request, exc: UnknownNodeError) -> JSONResponse:
        return _error(404, str(exc))

    @app.exception_handler(NotSupportedError)
    async def not_supported(_: Request, exc: NotSupportedError) -> JSONResponse:
        return _error(501, str(exc))

    @app.exception_handler(SourceUnavailableError)
    async def unavailable(_: Request, exc: SourceUnavailableError) -> JSONResponse:
        return _error(503, str(exc))

    @app.exception_handler(SourceError)
    async def source_failed(_: Request, exc: SourceError) -> JSONResponse:
        return _error(502, str(exc))


# ---- models to wire shapes --------------------------------------------------------------------


def _slurm_summary_wire(summary: SlurmSummary | None) -> SlurmSummaryWire | None:
    return None if summary is None else SlurmSummaryWire(**summary.model_dump())


def _node_wire(node: NodeMetrics) -> NodeWire | None:
    """A node as the current-metrics endpoint shows it, or ``None`` when no series of it is live."""
    live = [gpu for gpu in node.gpus if not gpu.stale]
    if not node.reachable or (node.gpus and not live):
        return None
    return NodeWire(
        node_id=node.node_id,
        hostname=node.hostname,
        gpus=[_gpu_wire(gpu) for gpu in live],
        timestamp=node.timestamp,
    )


def _gpu_wire(gpu: GpuMetrics) -> GpuWire:
    return GpuWire(
        gpu=str(gpu.index),
        gpu_name=gpu.model,
        utilization=gpu.utilization_pct,
        memory_utilization=gpu.memory_util_pct,
        memory_used_mb=gpu.memory_used_mib,
        memory_free_mb=max(gpu.memory_total_mib - gpu.memory_used_mib, 0.0),
        memory_total_mb=gpu.memory_total_mib,
        temperature_c=gpu.temperature_c,
        power_usage_w=gpu.power_w,
        sm_clock_mhz=gpu.sm_clock_mhz,
        mem_clock_mhz=gpu.mem_clock_mhz,
    )


def slurm_status(node: SlurmNode) -> SlurmNodeStatus:
    """Watchdog's coarse status of a Slurm node: down beats drain beats the base state."""
    if node.is_down or node.base_state not in ("IDLE", "ALLOCATED", "MIXED"):
        return "down"
    if node.is_drained:
        return "drain"
    if node.base_state == "ALLOCATED":
        return "alloc"
    if node.base_state == "MIXED":
        return "mix"
    return "idle"


def _slurm_wire(snapshot: SlurmSnapshot) -> SlurmWire:
    nodes = [
        SlurmNodeWire(
            node=node.name,
            status=slurm_status(node),
            cpus_alloc=node.cpus_alloc,
            cpus_idle=max(node.cpus_total - node.cpus_alloc, 0),
            cpus_total=node.cpus_total,
            mem_alloc=node.memory_alloc_mb,
            mem_total=node.memory_total_mb,
        )
        for node in snapshot.nodes
    ]
    cpus_total = sum(node.cpus_total for node in nodes)
    cpus_alloc = sum(node.cpus_alloc for node in nodes)
    return SlurmWire(
        nodes=nodes,
        cpus_total=cpus_total,
        cpus_alloc=cpus_alloc,
        cpus_idle=max(cpus_total - cpus_alloc, 0),
        nodes_total=len(nodes),
        nodes_idle=sum(node.status == "idle" for node in nodes),
        nodes_alloc=sum(node.status in ("alloc", "mix") for node in nodes),
        queue=SlurmQueueWire(**snapshot.queue.model_dump()),
    )
