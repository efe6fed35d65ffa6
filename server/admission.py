"""Admission control for agent turns: a bounded number at once, 429 with ``Retry-After`` beyond.

Why: a turn holds a model request, tool calls and memory for seconds to minutes, and the model
server serves a limited number of sequences at once. Without a bound, one ``/agent/batch`` of
500 inputs (33 kB) started 500 turns; a burst of clients queues work that finishes long after
they gave up. The server takes at most ``GPUDOC_MAX_CONCURRENT_TURNS`` turns at once (a batch
counts each of its inputs) and answers the rest at once with 429 and a ``Retry-After`` taken
from how long turns take now, so clients back off instead of piling up.

Why an ASGI middleware: the decision must come before LangServe starts a stream (after that,
every failure is a 200 with an error event), and it must hold the slot until the response is
over, streaming included.

Also here, because it ends a turn's claim on its slot: a client that leaves a non-streaming turn
(``invoke``, ``batch``, ``/api/agent/chat``) cancels it. Streaming routes notice a departed
client themselves (sse-starlette listens for the disconnect).

One ``TurnAdmission`` counts the turns of one process; several workers each have their own, so
the server's total is workers x limit.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gpudoc.server.errors import send_error
from gpudoc.server.guards import replaying
from gpudoc.server.metrics import ServerMetrics

#: the LangServe routes that run turns, with or without a ``/c/<config>`` prefix
AGENT_TURN_ROUTE = re.compile(r"^/agent(?:/c/[^/]+)?/(invoke|batch|stream|stream_log|stream_events)/?$")
ORIGINAL_CHAT_ROUTE = "/api/agent/chat"
STREAMING_ROUTES = frozenset({"stream", "stream_log", "stream_events"})

#: what ``Retry-After`` says before any turn has finished, and its bounds, in seconds
FIRST_RETRY_AFTER_S = 5.0
RETRY_AFTER_BOUNDS_S = (1, 120)

log = logging.getLogger("gpudoc.server.admission")


def turn_route(scope: Scope) -> str | None:
    """``invoke``, ``batch``, ``stream``... or ``chat`` for a request that runs turns; else None."""
    if scope.get("type") != "http" or scope.get("method") != "POST":
        return None
    path = scope.get("path", "")
    if path.rstrip("/") == ORIGINAL_CHAT_ROUTE:
        return "chat"
    match = AGENT_TURN_ROUTE.match(path)
    return match.group(1) if match else None


class TurnAdmission:
    """The count of turns running in this process against ``limit``, and how long turns take."""

    def __init__(self, limit: int, metrics: ServerMetrics | None = None) -> None:
        self.limit = limit
        self.running = 0
        self.metrics = metrics
        self._typical_s: float | None = None  # moving average of admitted requests' durations

    def try_admit(self, weight: int = 1) -> bool:
        """Take ``weight`` slots if they are free (a request heavier than the limit needs all of them)."""
        weight = min(weight, self.limit)
        if self.running + weight > self.limit:
            if self.metrics is not None:
                self.metrics.turns_refused.inc()
            return False
        self.running += weight
        if self.metrics is not None:
            self.metrics.turns_admitted.inc(weight)
        return True

    def release(self, weight: int, took_s: float) -> None:
        weight = min(weight, self.limit)
        self.running -= weight
        if self.metrics is not None:
            self.metrics.turns_admitted.dec(weight)
        self._typical_s = took_s if self._typical_s is None else 0.8 * self._typical_s + 0.2 * took_s

    def retry_after_s(self) -> int:
        """Seconds a refused client should wait: about one typical turn."""
        low, high = RETRY_AFTER_BOUNDS_S
        typical = FIRST_RETRY_AFTER_S if self._typical_s is None else self._typical_s
        return int(min(high, max(low, math.ceil(typical))))


def _batch_size(body: bytes) -> int:
    """How many turns a ``/agent/batch`` body asks for (1 when it cannot tell; validation refuses it)."""
    try:
        inputs = json.loads(body).get("inputs")
    except (ValueError, AttributeError, RecursionError):
        return 1
    return max(1, len(inputs)) if isinstance(inputs, list) else 1


class AdmissionMiddleware:
    """Refuses turns beyond the limit with 429 and holds a slot for each admitted turn until it ends."""

    def __init__(self, app: ASGIApp, *, admission: TurnAdmission) -> None:
        self.app = app
        self.admission = admission

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = turn_route(scope)
        if route is None:
            await self.app(scope, receive, send)
            return
        body, client_gone = await _read_body(receive)
        if client_gone:
            return
        weight = _batch_size(body) if route == "batch" else 1
        if not self.admission.try_admit(weight):
            retry = self.admission.retry_after_s()
            await send_error(send, 429, "Too many turns at once", (
                f"this server runs at most {self.admission.limit} turns at once (GPUDOC_MAX_CONCURRENT_TURNS) and "
                f"is at its limit; retry in {retry} s"), [(b"retry-after", str(retry).encode())])
            return
        started = time.monotonic()
        try:
            if route in STREAMING_ROUTES:
                await self.app(scope, replaying(body, receive), send)
            else:
                await _cancelled_when_client_leaves(self.app, scope, body, receive, send)
        finally:
            self.admission.release(weight, time.monotonic() - started)


async def _read_body(receive: Receive) -> tuple[bytes, bool]:
    """The whole request body (the guard in front has bounded it), and whether the client left."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"", True
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), False


async def _cancelled_when_client_leaves(app: ASGIApp, scope: Scope, body: bytes, receive: Receive,
                                        send: Send) -> None:
    """Run a non-streaming request; cancel it if the client disconnects before the response is sent.

    The handler does not read ``receive`` after the body, so a watcher reads it instead; the
    handler is told about a disconnect the watcher saw, as it would have been.
    """
    gone = asyncio.Event()
    answered = False

    async def disconnected() -> Message:
        await gone.wait()
        return {"type": "http.disconnect"}

    async def sending(message: Message) -> None:
        nonlocal answered
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            answered = True
        await send(message)

    async def watch() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        gone.set()

    handler = asyncio.create_task(app(scope, replaying(body, disconnected), sending))
    watcher = asyncio.create_task(watch())
    try:
        await asyncio.wait({handler, watcher}, return_when=asyncio.FIRST_COMPLETED)
        if not handler.done() and not answered:
            log.info("client left; its turn is cancelled", extra={"path": scope.get("path", "")})
            handler.cancel()
        await asyncio.wait({handler})
    finally:
        watcher.cancel()
        if not handler.done():  # this request itself was cancelled (server stopping)
            handler.cancel()
    if not handler.cancelled():
        handler.result()  # re-raise the handler's own exception, if any
