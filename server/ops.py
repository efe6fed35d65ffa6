"""Operations endpoints: ``/healthz`` (the process), ``/readyz`` (its dependencies), ``/metrics``.

Why liveness and readiness apart: a load balancer should stop sending questions while the LLM
or the cluster backend is unreachable (readiness), but an orchestrator must not restart a
healthy process because vLLM is still loading its weights (liveness).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from gpudoc.graph.llm import LlmProbe
from gpudoc.graph.thread_store import ThreadStore
from gpudoc.server.metrics import ServerMetrics
from gpudoc.tools.sources.base import ClusterSource, SourceError


class CheckResult(BaseModel):
    ok: bool
    detail: str
    latency_ms: float


class ReadinessReport(BaseModel):
    ready: bool
    checks: dict[str, CheckResult]


async def check_llm(probe: Callable[[], Awaitable[LlmProbe]]) -> CheckResult:
    started = time.perf_counter()
    result = await probe()
    detail = f"model {result.model} served" if result.available else (result.error or "unavailable")
    return CheckResult(ok=result.available, detail=detail, latency_ms=round((time.perf_counter() - started) * 1000, 1))


async def check_source(source: ClusterSource | None, timeout_s: float) -> CheckResult:
    started = time.perf_counter()
    if source is None:
        return CheckResult(ok=False, detail="the data source is not open (server starting or stopping)", latency_ms=0.0)
    try:
        nodes = await asyncio.wait_for(source.node_ids(), timeout=timeout_s)
        ok, detail = bool(nodes), f"source '{source.name}' answers: {len(nodes)} nodes"
        if not nodes:
            detail = f"source '{source.name}' answers but reports no nodes"
    except asyncio.TimeoutError:
        ok, detail = False, f"source '{source.name}' did not answer within {timeout_s:g} s"
    except SourceError as exc:
        ok, detail = False, str(exc)
    return CheckResult(ok=ok, detail=detail, latency_ms=round((time.perf_counter() - started) * 1000, 1))


async def check_store(store: ThreadStore | None, timeout_s: float) -> CheckResult:
    if store is None:
        return CheckResult(ok=False, detail="the thread store is not open (server starting or stopping)", latency_ms=0.0)
    ok, detail, latency_ms = await store.probe(timeout_s)
    return CheckResult(ok=ok, detail=detail, latency_ms=latency_ms)


def ops_router(
    *,
    metrics: ServerMetrics,
    probe: Callable[[], Awaitable[LlmProbe]],
    source: Callable[[], ClusterSource | None],
    store: Callable[[], ThreadStore | None],
    timeout_s: float,
) -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/healthz", summary="The process is up")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok"}

    @router.get("/readyz", response_model=ReadinessReport,
                summary="The LLM endpoint, the data source and the thread store answer",
                responses={503: {"model": ReadinessReport}})
    async def readyz() -> JSONResponse:
        llm, data, threads = await asyncio.gather(check_llm(probe), check_source(source(), timeout_s),
                                                  check_store(store(), timeout_s))
        report = ReadinessReport(ready=llm.ok and data.ok and threads.ok,
                                 checks={"llm": llm, "source": data, "store": threads})
        return JSONResponse(status_code=200 if report.ready else 503, content=report.model_dump())

    @router.get("/metrics", summary="Prometheus metrics of this server", response_class=Response)
    async def prometheus_metrics() -> Response:
        return Response(content=metrics.render(), media_type=metrics.content_type)

    return router
