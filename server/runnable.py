"""The agent as a LangChain ``Runnable`` for LangServe: messages in, a streamed AI message out.

Why a runnable of our own rather than the compiled graph itself: ``add_routes(graph)`` would
stream whole node updates after each node finishes, so a client would see the answer only at
the end and the tool calls only as state diffs. This runnable streams what an operator wants to
watch, as it happens, in the shape LangChain clients and LangServe's chat playground understand:

- answer tokens as the ``content`` of ``AIMessageChunk``\\ s (joined, exactly the turn's answer);
- the model's thinking in ``additional_kwargs["reasoning_content"]`` (concatenates on ``+``);
- tool calls, tool results, progress and errors as one-element lists in
  ``additional_kwargs["gpudoc_events"]`` (the event models of ``gpudoc.graph.contracts``;
  lists concatenate on ``+``, so an aggregated message keeps every step in order);
- the whole ``TurnResult`` (findings, degraded, unverified numbers, thread id) in the last
  chunk's ``response_metadata["gpudoc_turn"]``.

It is a ``RunnableGenerator`` (LangChain's public way to stream from an async generator, with
the run, its callbacks and ``astream_events`` handled by LangChain); ``invoke`` returns the
aggregate of the stream as an ``AIMessage``. Thread semantics are in ``server/turns.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from typing import Any

from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    AnyMessage,
    BaseMessage,
    HumanMessage,
    message_chunk_to_message,
)
from langchain_core.runnables import ConfigurableFieldSpec, RunnableConfig, RunnableGenerator
from pydantic import BaseModel, ConfigDict, Field, field_validator

from gpudoc.graph.contracts import AgentEvent, DoneEvent, ReasoningEvent, TokenEvent
from gpudoc.graph.llm import message_text
from gpudoc.server.langserve_compat import chat_playground_output_schema
from gpudoc.server.turns import TurnService

EVENTS_KEY = "gpudoc_events"
TURN_KEY = "gpudoc_turn"
REASONING_KEY = "reasoning_content"


class AgentInput(BaseModel):
    """The graph's own input: the conversation as LangChain message dicts.

    The server's size limits (GPUDOC_MAX_MESSAGE_CHARS, GPUDOC_MAX_HISTORY_MESSAGES) are checked
    per request in front of the routes (``server/agent_requests.py``), not here.
    """

    model_config = ConfigDict(title="AgentInput")

    messages: list[AnyMessage] = Field(
        description=(
            "The conversation, e.g. [{\"type\": \"human\", \"content\": \"Is node-0 running hot?\"}]. "
            "The last message is the question. With a thread id the server keeps the history: send "
            "only the new message, or the whole conversation (messages the thread already holds are "
            "not added twice)."
        ),
    )

    @field_validator("messages")
    @classmethod
    def _a_question_last(cls, messages: list[BaseMessage]) -> list[BaseMessage]:
        if not messages:
            raise ValueError("messages is empty: send at least the question as a human message")
        last = messages[-1]
        if not isinstance(last, HumanMessage):
            raise ValueError(f"the last message must be the question (type 'human'), not '{last.type}'")
        if not message_text(last).strip():
            raise ValueError("the question (last message) is empty")
        return messages


def event_to_chunk(event: AgentEvent) -> AIMessageChunk:
    """One stream event as one message chunk (see the module docstring for the encoding)."""
    if isinstance(event, TokenEvent):
        return AIMessageChunk(content=event.text)
    if isinstance(event, ReasoningEvent):
        return AIMessageChunk(content="", additional_kwargs={REASONING_KEY: event.text})
    if isinstance(event, DoneEvent):
        return AIMessageChunk(content="", response_metadata={TURN_KEY: event.result.model_dump(mode="json")})
    return AIMessageChunk(content="", additional_kwargs={EVENTS_KEY: [event.model_dump(mode="json")]})


class AgentRunnable(RunnableGenerator):
    """The agent behind ``/agent``; see the module docstring for what it streams."""

    def __init__(self, service: Callable[[], TurnService]) -> None:
        super().__init__(self._turn_chunks, name="gpudoc_agent")
        self._service = service  # resolved per call: the agent is built in the app's lifespan

    @property
    def InputType(self) -> type[AgentInput]:  # noqa: N802 - LangChain's name
        return AgentInput

    @property
    def OutputType(self) -> type[AIMessage]:  # noqa: N802 - LangChain's name
        return AIMessage

    def get_input_schema(self, config: RunnableConfig | None = None) -> type[AgentInput]:
        return AgentInput

    def get_output_schema(self, config: RunnableConfig | None = None) -> type[BaseModel]:
        return chat_playground_output_schema()

    @property
    def config_specs(self) -> list[ConfigurableFieldSpec]:
        return [
            ConfigurableFieldSpec(
                id="thread_id", annotation=str, name="Thread id", default="",
                description="Continue this conversation (kept by the server); empty for a one-off question.",
            ),
            ConfigurableFieldSpec(
                id="enable_thinking", annotation=bool | None, name="Enable thinking", default=None,
                description="Let the model reason before answering (default: LLM_ENABLE_THINKING).",
            ),
        ]

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> AIMessage:
        raise NotImplementedError("the agent runs on the event loop: use ainvoke, astream or the HTTP routes")

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> AIMessage:
        aggregate = await super().ainvoke(input, config, **kwargs)
        return message_chunk_to_message(aggregate or AIMessageChunk(content=""))

    async def _turn_chunks(self, inputs: AsyncIterator[Any], config: RunnableConfig) -> AsyncIterator[AIMessageChunk]:
        raw = None
        async for raw in inputs:
            pass
        request = raw if isinstance(raw, AgentInput) else AgentInput.model_validate(raw)
        messages: list[BaseMessage] = list(request.messages)
        configurable = (config or {}).get("configurable") or {}
        events = self._service().stream(
            message_text(messages[-1]).strip(),
            thread_id=configurable.get("thread_id") or None,
            history=messages[:-1],
            enable_thinking=configurable.get("enable_thinking"),
        )
        async with aclosing(events):
            async for event in events:
                yield event_to_chunk(event)
