"""Checks in front of LangServe's ``/agent`` routes: valid inputs, the server's limits, thread conflicts.

Why a route dependency (``add_routes(..., dependencies=[...])``, LangServe's public hook): the
limits are this server's settings, not part of the input schema, and a history that contradicts
a thread must be refused with its own status (409) before a stream starts, when a clear error
can still be sent; once streaming, LangServe reports every failure as a 500 event.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import HTTPException, Request
from fastapi.exceptions import RequestValidationError
from langchain_core.messages import BaseMessage
from pydantic import ValidationError

from gpudoc.graph.llm import message_text
from gpudoc.server.runnable import AgentInput
from gpudoc.server.settings import ServerSettings
from gpudoc.server.turns import ThreadConflictError, TurnService

THREAD_HEADER = "x-thread-id"
#: the LangServe routes that run turns (``/agent/<route>`` and ``/agent/c/<config>/<route>``)
TURN_ROUTES = frozenset({"invoke", "batch", "stream", "stream_log", "stream_events"})
#: the ``astream_events`` schema ``/agent/stream_events`` sends (LangServe serves one, v1 or v2,
#: chosen by the server in ``add_routes``; its own client sends no version)
STREAM_EVENTS_VERSION = "v2"


def stream_events_version_problem(body: Any) -> dict[str, Any] | None:
    """A ``version`` asked of ``stream_events`` that this server does not send, as a validation error.

    Why checked: LangServe ignores the field, so a client asking for another schema would be
    answered in v2 without a word and misread every event.
    """
    if not isinstance(body, dict) or body.get("version") in (None, STREAM_EVENTS_VERSION):
        return None
    return {"loc": ["body", "version"], "type": "literal_error",
            "msg": f"version {body['version']!r} is not served: this server streams astream_events version "
                   f"{STREAM_EVENTS_VERSION!r} (LangServe streams one version, 'v1' or 'v2', chosen by the "
                   f"server); send version {STREAM_EVENTS_VERSION!r} or leave it out"}


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


def _problems(loc: list[Any], exc: Exception) -> list[dict[str, Any]]:
    """An input that is not the graph's input, in FastAPI's validation error shape."""
    if isinstance(exc, ValidationError):
        return [{"loc": [*loc, *error["loc"]], "msg": str(error["msg"]).removeprefix("Value error, "),
                 "type": error["type"]} for error in exc.errors()]
    # LangChain's message classes raise TypeError, KeyError, AttributeError... for a message
    # without a type, a tool message without its call id, malformed tool calls, from inside the
    # model's validation
    detail = f"{type(exc).__name__}: {exc}" if isinstance(exc, (KeyError, AttributeError)) else str(exc)
    return [{"loc": [*loc, "messages"], "msg": f"not a list of LangChain messages: {detail}", "type": "value_error"}]


def agent_request_checks(settings: ServerSettings, turns: Callable[[], TurnService]) -> Callable[..., Any]:
    """The dependency for ``add_routes``: 422 for an input that is not the graph's input or is
    beyond a limit, 409 for a history contradicting its thread.

    Every input is validated here, before LangServe, because LangServe reports an input its
    validation did not foresee (a message without ``type``, a tool call without a name) as a 500.
    """

    async def check(request: Request) -> None:
        route = request.url.path.rstrip("/").rsplit("/", 1)[-1]
        if request.method != "POST" or route not in TURN_ROUTES:
            return
        try:
            body = await request.json()
        except ValueError:
            return  # the guard in front refuses bodies that are not JSON; nothing to check here
        if route == "stream_events" and (problem := stream_events_version_problem(body)):
            raise RequestValidationError([problem])
        if route == "batch" and isinstance(body, dict) and isinstance(body.get("inputs"), list):
            if len(body["inputs"]) > settings.max_batch_inputs:
                raise RequestValidationError([{
                    "loc": ["body", "inputs"], "type": "too_long",
                    "msg": f"{len(body['inputs'])} inputs; the limit is {settings.max_batch_inputs} per batch "
                           "(GPUDOC_MAX_BATCH_INPUTS): send several batches, or several requests"}])
        if route == "batch" and isinstance(body, dict) and not isinstance(body.get("inputs"), list):
            raise RequestValidationError([{"loc": ["body", "inputs"], "type": "list_type",
                                           "msg": "inputs must be a list of inputs, one per question"}])
        inputs = _inputs(body, route)
        configs = body.get("config") if isinstance(body, dict) else None
        if route == "batch" and isinstance(body, dict) and "config" in body and not isinstance(configs, (dict, list)):
            raise RequestValidationError([{"loc": ["body", "config"], "type": "value_error",
                                           "msg": "config must be an object, or a list of one object per input"}])
        if route == "batch" and isinstance(configs, list) and len(configs) != len(inputs):
            raise RequestValidationError([{
                "loc": ["body", "config"], "type": "value_error",
                "msg": f"{len(configs)} configs for {len(inputs)} inputs: send one config, or one per input"}])
        problems: list[dict[str, Any]] = []
        conflicts: list[tuple[str, list[BaseMessage]]] = []
        for index, (raw, thread_id) in enumerate(zip(inputs, _thread_ids(body, request, len(inputs)))):
            loc: list[Any] = ["body", "inputs", index] if route == "batch" else ["body", "input"]
            try:
                parsed = AgentInput.model_validate(raw)
            except Exception as exc:  # LangChain's message classes raise KeyError, AttributeError... on bad input
                problems += _problems(loc, exc)
                continue
            messages = parsed.messages
            question = message_text(messages[-1]).strip()
            if len(question) > settings.max_message_chars:
                problems.append({"loc": [*loc, "messages", len(messages) - 1, "content"], "type": "too_long",
                                 "msg": f"the question is {len(question)} characters; the limit is "
                                        f"{settings.max_message_chars} (GPUDOC_MAX_MESSAGE_CHARS)"})
            if len(messages) - 1 > settings.max_history_messages:
                problems.append({"loc": [*loc, "messages"], "type": "too_long",
                                 "msg": f"{len(messages) - 1} history messages; the limit is "
                                        f"{settings.max_history_messages} (GPUDOC_MAX_HISTORY_MESSAGES): "
                                        "use a thread id instead of resending the history"})
            if thread_id and isinstance(thread_id, str) and len(messages) > 1:
                conflicts.append((thread_id, messages[:-1]))
        if problems:
            raise RequestValidationError(problems)
        for thread_id, history in conflicts:
            try:
                await turns().history_to_add(thread_id, history)
            except ThreadConflictError as exc:
                raise HTTPException(409, str(exc)) from None

    return check
