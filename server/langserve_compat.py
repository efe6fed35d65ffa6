"""The three places where gpudoc works around LangServe (in maintenance) and its pinned dependencies.

Everything else uses LangServe's public API (``add_routes`` with ``dependencies`` and
``per_req_config_modifier``). ``tests/test_langserve_compat.py`` pins the behaviour each
workaround relies on, so that an upgrade that makes one unnecessary (or breaks it) fails a test
rather than a deployment.

1. The chat playground recognises a chat runnable by its output schema: an ``anyOf`` member
   whose ``type`` property has ``enum`` containing ``"ai"`` (its ``App.tsx``). pydantic now
   writes a one-value ``Literal`` as ``const``, so ``AIMessage``'s own schema no longer
   qualifies; ``chat_playground_output_schema`` states the same message with an ``enum``.
2. sse-starlette 1.x (the series LangServe requires) keeps one process-wide shutdown event bound
   to the first event loop that streamed; an app started later in the same process on another
   loop (tests, an embedding application restarting the server) fails on it.
   ``fresh_sse_shutdown_event`` gives each app start its own.
3. sse-starlette 1.x also replaces uvicorn's signal handler with one that ends every open stream
   the moment SIGTERM arrives, whatever uvicorn's graceful-shutdown timeout says: every deploy
   would cut the answers being written. ``let_streams_finish_on_shutdown`` puts uvicorn's own
   handler back (sse-starlette's public ``unpatch_uvicorn_signal_handler``), so uvicorn stops
   accepting, waits for the responses in flight up to its timeout, then stops.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from langchain_core.messages import AIMessage
from pydantic import BaseModel, RootModel
from sse_starlette.sse import AppStatus, unpatch_uvicorn_signal_handler


@cache
def chat_playground_output_schema() -> type[BaseModel]:
    """``AIMessage`` as the output schema, in the shape LangServe's chat playground accepts."""

    class AgentOutput(RootModel[AIMessage]):
        """The answer as an ``AIMessage``."""

        @classmethod
        def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
            schema = super().model_json_schema(*args, **kwargs)
            definitions = dict(schema.pop("$defs", {}))
            if "AIMessage" in definitions:  # the root is a reference to the message's definition
                message_schema = dict(definitions["AIMessage"])
            else:
                message_schema = {k: v for k, v in schema.items() if k != "title"}
            type_property = dict(message_schema.get("properties", {}).get("type", {}))
            type_property.setdefault("enum", ["ai"])
            message_schema["properties"] = {**message_schema.get("properties", {}), "type": type_property}
            definitions["AIMessage"] = message_schema
            return {"title": "AgentOutput", "anyOf": [{"$ref": "#/$defs/AIMessage"}], "$defs": definitions}

    return AgentOutput


def fresh_sse_shutdown_event() -> None:
    """Forget sse-starlette's shutdown event from an earlier event loop; it makes a new one when needed."""
    AppStatus.should_exit_event = None


def let_streams_finish_on_shutdown() -> None:
    """Give SIGTERM back to uvicorn: streams in flight finish within ``timeout_graceful_shutdown``."""
    unpatch_uvicorn_signal_handler()
    AppStatus.should_exit = False
