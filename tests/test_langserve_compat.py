"""Pins the behaviour each workaround in ``server/langserve_compat.py`` relies on.

When an upgrade makes a workaround unnecessary, or changes what it works around, one of these
fails first and says which.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import anyio
import langserve
import pytest
from langchain_core.messages import AIMessage
from sse_starlette.sse import AppStatus

from gpudoc.server.langserve_compat import chat_playground_output_schema, fresh_sse_shutdown_event

PLAYGROUND_ASSETS = Path(langserve.__file__).parent / "chat_playground" / "dist" / "assets"


def test_the_chat_playground_recognises_chat_output_by_an_ai_enum() -> None:
    bundle = "".join(path.read_text(errors="replace") for path in PLAYGROUND_ASSETS.glob("*.js"))
    assert 'enum)==null?void 0:S.includes("ai"' in bundle


def test_pydantic_writes_the_message_type_as_const_so_the_enum_must_be_stated() -> None:
    type_schema = AIMessage.model_json_schema()["properties"]["type"]
    assert "const" in type_schema and "enum" not in type_schema


def test_the_output_schema_states_the_enum_the_playground_needs() -> None:
    schema = chat_playground_output_schema().model_json_schema()
    [member] = schema["anyOf"]
    message = schema["$defs"][member["$ref"].rsplit("/", 1)[1]]
    assert message["properties"]["type"]["enum"] == ["ai"]
    assert {"content", "additional_kwargs", "response_metadata"} <= set(message["properties"])


def test_sse_starlette_keeps_one_shutdown_event_for_the_whole_process() -> None:
    async def a_stream_waits_for_shutdown() -> None:
        if AppStatus.should_exit_event is None:  # what sse-starlette does while it streams
            AppStatus.should_exit_event = anyio.Event()
        with anyio.move_on_after(0.01):
            await AppStatus.should_exit_event.wait()

    fresh_sse_shutdown_event()
    asyncio.run(a_stream_waits_for_shutdown())  # the first app, on its event loop
    later_app_waits = a_stream_waits_for_shutdown
    try:
        with pytest.raises(RuntimeError, match="attached to a different loop|bound to a different event loop"):
            asyncio.run(later_app_waits())
        fresh_sse_shutdown_event()
        asyncio.run(later_app_waits())  # with a fresh event, a later loop streams
    finally:
        fresh_sse_shutdown_event()
