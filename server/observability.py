"""Request ids, access logs and HTTP metrics, as one pure ASGI middleware.

Why pure ASGI (not ``BaseHTTPMiddleware``): the agent streams server-sent events, and the
disconnect of a streaming client must reach the stream so the LLM request is cancelled.
``BaseHTTPMiddleware`` buffers through a task group that hides both; a plain ASGI wrapper
passes ``receive`` and ``send`` through untouched and only observes.
"""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gpudoc.server.logs import accept_request_id, request_id_var
from gpudoc.server.metrics import ServerMetrics

REQUEST_ID_HEADER = "x-request-id"

access_log = logging.getLogger("gpudoc.server.access")


def route_label(scope: Scope) -> str:
    """The matched route's template (``/agent/stream``), never the raw path: bounded label values."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return path
    return "static" if scope.get("path", "").startswith("/static/") else "unmatched"


class ObservabilityMiddleware:
    """Assigns the request id (``X-Request-Id`` in and out), logs one line per request, counts it."""

    def __init__(self, app: ASGIApp, *, metrics: ServerMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        request_id = accept_request_id(headers.get(REQUEST_ID_HEADER.encode(), b"").decode("latin-1"))
        token = request_id_var.set(request_id)
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 500
        disconnected = False
        answered = False  # the last body chunk went out: a disconnect after it is the normal end

        async def send_with_id(message: Message) -> None:
            nonlocal status, answered
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                answered = True
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [
                    *[(k, v) for k, v in message["headers"] if k.lower() != REQUEST_ID_HEADER.encode()],
                    (REQUEST_ID_HEADER.encode(), request_id.encode()),
                ]
            await send(message)

        async def receive_watching() -> Message:
            nonlocal disconnected
            message = await receive()
            if message["type"] == "http.disconnect" and not answered:
                disconnected = True
            return message

        self.metrics.http_in_flight.inc()
        try:
            await self.app(scope, receive_watching, send_with_id)
        finally:
            self.metrics.http_in_flight.dec()
            elapsed = time.perf_counter() - started
            route = route_label(scope)
            method = scope.get("method", "")
            self.metrics.http_requests.labels(route, method, str(status)).inc()
            self.metrics.http_latency.labels(route, method).observe(elapsed)
            access_log.info(
                "%s %s %s",
                method,
                scope.get("path", ""),
                status,
                extra={
                    "method": method,
                    "path": scope.get("path", ""),
                    "route": route,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 1),
                    "client_disconnected": disconnected,
                },
            )
            request_id_var.reset(token)
