"""The access log says a client left only when it left before its answer was complete.

Why it matters: ``client_disconnected`` is how an operator tells cancelled turns from answered
ones in the logs. The ASGI server reports ``http.disconnect`` to whoever listens once a response
is over, too, and the turn's disconnect watcher does listen; counting that made every answered
request look abandoned.
"""

from __future__ import annotations

import logging

import pytest

from gpudoc.server.metrics import ServerMetrics
from gpudoc.server.observability import ObservabilityMiddleware


def http_scope() -> dict:
    return {"type": "http", "method": "POST", "path": "/agent/invoke", "headers": []}


async def answered_then_listening(scope, receive, send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}", "more_body": False})
    await receive()  # a disconnect watcher still waiting when the response is over


async def left_before_the_answer(scope, receive, send) -> None:
    await receive()  # the client goes away while the turn runs
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


@pytest.mark.parametrize(("app", "left"), [(answered_then_listening, False), (left_before_the_answer, True)])
async def test_client_disconnected_means_before_the_end_of_the_response(app, left, caplog):
    async def receive() -> dict:
        return {"type": "http.disconnect"}

    async def send(message) -> None:
        pass

    middleware = ObservabilityMiddleware(app, metrics=ServerMetrics())
    with caplog.at_level(logging.INFO, logger="gpudoc.server.access"):
        await middleware(http_scope(), receive, send)
    [record] = [r for r in caplog.records if r.name == "gpudoc.server.access"]
    assert record.client_disconnected is left
