"""Operations endpoints: ``/healthz`` (the process), ``/readyz`` (its dependencies), ``/metrics``.

Why liveness and readiness apart: a load balancer should stop sending questions while the
cluster source or the conversation store is unusable (readiness), but an orchestrator must not
restart a healthy process because a dependency failed (liveness).

Why an unreachable model is "degraded", not "not ready": without the model gpudoc still answers,
from its deterministic diagnosis, labelled as such. The model is one vLLM shared by every replica,
and it is down exactly when it matters most (the GPU node serving it failed): were the model a
readiness condition, every replica would leave the load balancer at once and operators would get
no answer at all during that incident. ``degraded`` says so, for dashboards and alerts.

Why the store is written to: a store that cannot be written (full or read-only disk, a corrupt
database) fails every turn after the answer was computed; only a write finds that out
(``graph.checkpoint.probe_store``).

Why details need the token: a failing check names what failed, often an internal address
("GPU Watchdog at http://10.0.4.7:3001 is unreachable"). The health endpoints answer without
authentication (load balancers and orchestrators probe them), so without the API token they
say only which check failed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from gpudoc.graph.checkpoint import ThreadStoreError, probe_store
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
    #: the model is unreachable: answers come from the deterministic diagnosis, labelled as such
    degraded: bool
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
    started = time.perf_counter()
    if store is None:
        return CheckResult(ok=False, detail="the conversation store is not open (server starting or stopping)",
                           latency_ms=0.0)

    async def reachable_and_writable() -> None:
        if store.check_reachable is not None:  # a database server that is gone: said at once, naming it
            await store.check_reachable()
        await probe_store(store.checkpointer)

    try:
        await asyncio.wait_for(reachable_and_writable(), timeout=timeout_s)
        ok, detail = True, f"the conversation store ({store.description}) takes writes"
    except asyncio.TimeoutError:
        ok, detail = False, f"the conversation store ({store.description}) did not answer a write within {timeout_s:g} s"
    except ThreadStoreError as exc:
        ok, detail = False, str(exc)
    return CheckResult(ok=ok, detail=detail, latency_ms=round((time.perf_counter() - started) * 1000, 1))


#: what a failing check says to a caller without the API token
HIDDEN_DETAIL = "failing; send the API token (Authorization: Bearer) to see why"


def without_details(report: ReadinessReport) -> ReadinessReport:
    checks = {name: check.model_copy(update={"detail": "ok" if check.ok else HIDDEN_DETAIL})
              for name, check in report.checks.items()}
    return report.model_copy(update={"checks": checks})


def ops_router(
    *,
    metrics: ServerMetrics,
    probe: Callable[[], Awaitable[LlmProbe]],
    source: Callable[[], ClusterSource | None],
    store: Callable[[], ThreadStore | None],
    may_see_details: Callable[[Request], bool],
    timeout_s: float,
) -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/healthz", summary="The process is up")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok"}

    @router.get("/readyz", response_model=ReadinessReport,
                summary="The data source answers and the conversation store takes writes; the LLM endpoint is checked too",
                description="503 when the source or the store fails. An unreachable LLM endpoint leaves the "
                            "server ready but `degraded`: answers then come from the deterministic diagnosis. "
                            "Each check's detail names what failed only for a caller with the API token.",
                responses={503: {"model": ReadinessReport}})
    async def readyz(request: Request) -> JSONResponse:
        llm, data, kept = await asyncio.gather(check_llm(probe), check_source(source(), timeout_s),
                                               check_store(store(), timeout_s))
        report = ReadinessReport(ready=data.ok and kept.ok, degraded=not llm.ok,
                                 checks={"llm": llm, "source": data, "store": kept})
        if not may_see_details(request):
            report = without_details(report)
        return JSONResponse(status_code=200 if report.ready else 503, content=report.model_dump())

    @router.get("/metrics", summary="Prometheus metrics of this server", response_class=Response)
    async def prometheus_metrics() -> Response:
        return Response(content=metrics.render(), media_type=metrics.content_type)

    return router
