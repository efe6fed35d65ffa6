"""The gpudoc HTTP server: LangServe at ``/agent``, the original ``/api/agent/*``, the chat page, operations.

``create_app`` builds the FastAPI app; its lifespan opens the cluster source, the thread store
(SQLite, or PostgreSQL shared by several workers; conversations survive a restart) and the
agent, and closes them in reverse order. Each worker process runs one app with its own source,
store connections and model client.
Everything the app depends on can be injected, so tests run it against a stub LLM server, a
scripted model or a prepared source without touching the environment.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from langchain_core.callbacks import BaseCallbackHandler
from langserve import add_routes

from gpudoc import __version__
from gpudoc.config import Settings
from gpudoc.graph.thread_store import ThreadStore, open_thread_store
from gpudoc.graph.llm import LlmProbe, build_chat_model, llm_available
from gpudoc.server.admission import AdmissionMiddleware, TurnAdmission
from gpudoc.server.api_docs import document_errors
from gpudoc.server.errors import ErrorResponse
from gpudoc.server.guards import GuardMiddleware, presents_token
from gpudoc.server.metrics import LlmMetricsCallback, ServerMetrics
from gpudoc.server.observability import ObservabilityMiddleware
from gpudoc.server.ops import ops_router
from gpudoc.server.original_api import install_validation_handler, original_api_router, turn_failure_response
from gpudoc.server.agent_requests import STREAM_EVENTS_VERSION, THREAD_HEADER, agent_request_checks
from gpudoc.server.langserve_compat import fresh_sse_shutdown_event
from gpudoc.server.runnable import AgentRunnable
from gpudoc.server.settings import ServerSettings
from gpudoc.server.turns import TurnFailedError, TurnService, valid_thread_id
from gpudoc.tools.sources.base import ClusterSource
from gpudoc.tools.sources.factory import open_source

STATIC_DIR = Path(__file__).parent / "static"

#: The chat page loads its own scripts, styles and data, and nothing else: an answer quoting
#: hostile cluster text (or a model talked into writing markup) can neither load a remote image
#: (which would carry data out in its URL) nor run a script, nor be framed by another site.
CHAT_PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
CHAT_PAGE_HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": CHAT_PAGE_CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}

log = logging.getLogger("gpudoc.server")


class AgentFactory(Protocol):
    """Builds the compiled agent once the source and the checkpointer are open."""

    def __call__(
        self,
        *,
        source: ClusterSource,
        checkpointer: Any,
        settings: ServerSettings,
        callbacks: Sequence[BaseCallbackHandler],
    ) -> Any: ...


def default_agent_factory(
    *,
    source: ClusterSource,
    checkpointer: Any,
    settings: ServerSettings,
    callbacks: Sequence[BaseCallbackHandler],
) -> Any:
    """The real agent on the configured LLM, its calls counted by the server's metrics."""
    from gpudoc.graph.agent import build_agent

    llm = build_chat_model(settings)
    llm.callbacks = list(callbacks)
    return build_agent(source=source, llm=llm, checkpointer=checkpointer, settings=settings)


@dataclass
class Runtime:
    """What the lifespan opened; ``None`` outside it."""

    turns: TurnService | None = None
    source: ClusterSource | None = None
    store: ThreadStore | None = None

    @property
    def checkpointer(self) -> Any | None:
        return self.store.checkpointer if self.store is not None else None

    def require_turns(self) -> TurnService:
        if self.turns is None:
            raise AgentNotRunningError("the agent is not running (server starting or stopping); retry shortly")
        return self.turns


class AgentNotRunningError(RuntimeError):
    """A turn was asked for outside the lifespan (the server is starting or stopping): 503."""


def thread_config_modifier(config: dict[str, Any], request: Request) -> dict[str, Any]:
    """Put the ``X-Thread-Id`` header into ``configurable.thread_id`` (the body's config wins) and check it."""
    configurable = dict(config.get("configurable") or {})
    header = request.headers.get(THREAD_HEADER)
    if header and not configurable.get("thread_id"):
        configurable["thread_id"] = header
    thread_id = configurable.get("thread_id")
    if thread_id and not (isinstance(thread_id, str) and valid_thread_id(thread_id)):
        raise RequestValidationError([{
            "loc": ("body", "config", "configurable", "thread_id"), "type": "value_error",
            "msg": "thread_id must be 1-128 characters of letters, digits and . _ : -"}])
    return {**config, "configurable": configurable}


def create_app(
    settings: Settings | None = None,
    *,
    source: ClusterSource | None = None,
    owns_source: bool = False,
    agent_factory: AgentFactory | None = None,
    llm_probe: Callable[[], Awaitable[LlmProbe]] | None = None,
    freeze_heap: bool = False,
) -> FastAPI:
    """The server.

    ``freeze_heap`` (for a process that serves only this app, as ``gpudoc serve`` does): once
    started, everything allocated so far (modules, the compiled graph, the tools) is moved out of
    the garbage collector's sight (``gc.freeze``). It lives as long as the process anyway, and a
    busy server otherwise rescans those few hundred thousand objects at every full collection,
    which grows with the number of turns in flight.

    ``source`` is the cluster to serve (closed at shutdown only when ``owns_source``); without
    one the lifespan opens the source the settings name (the simulator by default) and closes
    it. ``agent_factory`` defaults to the real agent on the configured LLM; ``llm_probe`` to
    ``GET {LLM_BASE_URL}/models``.
    """
    config = ServerSettings.from_settings(settings or ServerSettings())
    metrics = ServerMetrics()
    runtime = Runtime()
    build = agent_factory or default_agent_factory

    async def probe() -> LlmProbe:
        if llm_probe is not None:
            return await llm_probe()
        return await llm_available(config, timeout_s=config.readiness_timeout_s)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        fresh_sse_shutdown_event()  # see server/langserve_compat.py
        async with AsyncExitStack() as stack:
            cluster = source
            if cluster is None:
                cluster = open_source(config.source_options(realtime=True))
            if cluster is not source or owns_source:
                stack.push_async_callback(cluster.aclose)
            store = await stack.enter_async_context(open_thread_store(config))
            agent = build(source=cluster, checkpointer=store.checkpointer, settings=config,
                          callbacks=[LlmMetricsCallback(metrics)])
            runtime.source = cluster
            runtime.store = store
            runtime.turns = TurnService(agent, metrics, enable_thinking=config.llm_enable_thinking,
                                        turn_timeout_s=config.turn_timeout_s, shared_locks=store.shared_locks,
                                        store_reachable=store.check_reachable)
            log.info(
                "gpudoc server ready",
                extra={"source": cluster.name, "llm_base_url": config.llm_base_url, "model": config.llm_model,
                       "threads": store.description, "auth": bool(config.token)},
            )
            if freeze_heap:
                gc.freeze()
            try:
                yield
            finally:
                runtime.turns = None
                runtime.source = None
                runtime.store = None

    app = FastAPI(
        title="gpudoc",
        version=__version__,
        description="Diagnose NVIDIA GPU clusters with a local LLM agent.",
        lifespan=lifespan,
    )
    app.state.settings = config
    app.state.metrics = metrics
    app.state.runtime = runtime
    app.state.admission = admission = TurnAdmission(config.max_concurrent_turns, metrics)
    install_validation_handler(app)

    async def failed_turn(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, TurnFailedError)
        return turn_failure_response(exc)

    app.add_exception_handler(TurnFailedError, failed_turn)

    async def not_running(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(status_code=503, headers={"Retry-After": "5"},
                            content=ErrorResponse.of("The agent is not running", str(exc)).model_dump())

    app.add_exception_handler(AgentNotRunningError, not_running)

    add_routes(
        app,
        AgentRunnable(runtime.require_turns),
        path="/agent",
        dependencies=[Depends(agent_request_checks(config, runtime.require_turns))],
        playground_type="chat",
        astream_events_version=STREAM_EVENTS_VERSION,
        per_req_config_modifier=thread_config_modifier,
        enable_feedback_endpoint=False,
        enable_public_trace_link_endpoint=False,
        disabled_endpoints=["token_feedback"],  # needs LangSmith on the server; answers 400 otherwise
    )
    app.include_router(original_api_router(turns=runtime.require_turns, settings=config, probe=probe))
    app.include_router(ops_router(metrics=metrics, probe=probe, source=lambda: runtime.source,
                                  store=lambda: runtime.store,
                                  may_see_details=lambda request: presents_token(dict(request.headers.raw), config.token),
                                  timeout_s=config.readiness_timeout_s))

    @app.get("/", include_in_schema=False)
    async def chat_page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers=CHAT_PAGE_HEADERS)

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    # added innermost first: admission (behind the guards, so only authorised, well-formed requests
    # take a slot), guards, then CORS (so refusals carry CORS headers), then observability
    app.add_middleware(AdmissionMiddleware, admission=admission)
    app.add_middleware(GuardMiddleware, token=config.token, max_body_bytes=config.max_body_bytes)
    if config.cors_origin_list:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=config.cors_origin_list,
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "X-Thread-Id", "X-Request-Id"],
            expose_headers=["X-Request-Id"],
            max_age=600,
        )
    app.add_middleware(ObservabilityMiddleware, metrics=metrics)
    document_errors(app)
    return app
