"""Checks in front of LangServe's ``/agent`` routes: the server's size limits and thread conflicts.

Why a route dependency (``add_routes(..., dependencies=[...])``, LangServe's public hook): the
limits are this server's settings, not part of the input schema, and a history that contradicts
a thread must be refused with its own status (409) before a stream starts, when a clear error
can still be sent; once streaming, LangServe reports every failure as a 500 event.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import HTTPException, Request
from pydantic import ValidationError

from gpudoc.graph.llm import message_text
from gpudoc.server.runnable import AgentInput
from gpudoc.server.settings import ServerSettings
from gpudoc.server.turns import ThreadConflictError, TurnService

THREAD_HEADER = "x-thread-id"
#: the LangServe routes that run turns (``/agent/<route>`` and ``/agent/c/<config>/<route>``)
TURN_ROUTES = frozenset({"invoke", "batch", "stream", "stream_log", "stream_events"})


def _inputs(body: Any, route: str) -> list[Any]:
    if not isinstance(body, dict):
        return []
    if route == "batch":
        return body.get("inputs") if isinstance(body.get("inputs"), list) else []
    return [body.get("input")]


def _thread_ids(body: Any, request: Request, count: int) -> list[str | None]:
    configs = body.get("config") if isinstance(body, dict) else None
    configs = configs if isinstance(configs, list) else [configs] * count
    header = request.headers.get(THREAD_HEADER)
    ids = []
    for config in configs[:count]:
        configurable = (config or {}).get("configurable") if isinstance(config, dict) else None
        value = (configurable or {}).get("thread_id") if isinstance(configurable, dict) else None
        ids.append(value or header or None)
    return ids + [header or None] * (count - len(ids))


def agent_request_checks(settings: ServerSettings, turns: Callable[[], TurnService]) -> Callable[..., Any]:
    """The dependency for ``add_routes``: 422 beyond a limit, 409 for a history contradicting its thread.

    Malformed inputs are left to LangServe, which answers them with its own 422.
    """

    async def check(request: Request) -> None:
        route = request.url.path.rstrip("/").rsplit("/", 1)[-1]
        if request.method != "POST" or route not in TURN_ROUTES:
            return
        try:
            body = await request.json()
        except ValueError:
            return
        inputs = _inputs(body, route)
        for raw, thread_id in zip(inputs, _thread_ids(body, request, len(inputs))):
            try:
                parsed = AgentInput.model_validate(raw)
            except ValidationError:
                continue
            messages = parsed.messages
            question = message_text(messages[-1]).strip()
            if len(question) > settings.max_message_chars:
                raise HTTPException(422, f"the question is {len(question)} characters; the limit is "
                                         f"{settings.max_message_chars} (GPUDOC_MAX_MESSAGE_CHARS)")
            if len(messages) - 1 > settings.max_history_messages:
                raise HTTPException(422, f"{len(messages) - 1} history messages; the limit is "
                                         f"{settings.max_history_messages} (GPUDOC_MAX_HISTORY_MESSAGES): "
                                         "use a thread id instead of resending the history")
            if thread_id and isinstance(thread_id, str) and len(messages) > 1:
                try:
                    await turns().history_to_add(thread_id, messages[:-1])
                except ThreadConflictError as exc:
                    raise HTTPException(409, str(exc)) from None

    return check
