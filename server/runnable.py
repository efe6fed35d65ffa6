"""The agent as a LangChain ``Runnable`` for LangServe: messages in, a streamed AI message out.

Why a wrapper rather than the compiled graph itself: ``add_routes(graph)`` would stream whole
node updates after each node finishes, so a client would see the answer only at the end and
the tool calls only as state diffs. This runnable streams what an operator wants to watch, as
it happens, in the shape LangChain clients and LangServe's chat playground understand:

- answer tokens as the ``content`` of ``AIMessageChunk``\\ s;
- the model's thinking in ``additional_kwargs["reasoning_content"]`` (concatenates on ``+``);
- tool calls, tool results, progress and errors as one-element lists in
  ``additional_kwargs["gpudoc_events"]`` (the event models of ``gpudoc.graph.contracts``;
  lists concatenate on ``+``, so an aggregated message keeps every step in order);
- the whole ``TurnResult`` (findings, degraded, unverified numbers, thread id) in the last
  chunk's ``response_metadata["gpudoc_turn"]``.

``invoke`` returns the aggregate of the stream as an ``AIMessage``. The conversation is the
graph's own input, ``{"messages": [...]}``: with a thread id (``configurable.thread_id`` or the
``X-Thread-Id`` header) the checkpointer holds earlier turns, so clients send only the new
message; without one, the messages before the last are the history of a one-off thread (what
the chat playground sends).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from typing import Any, ClassVar

from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    AnyMessage,
    BaseMessage,
    HumanMessage,
    message_chunk_to_message,
)
from langchain_core.runnables import ConfigurableFieldSpec, Runnable, RunnableConfig
from langchain_core.runnables.utils import Input
from pydantic import BaseModel, ConfigDict, Field, RootModel, field_validator

from gpudoc.graph.contracts import (
    AgentEvent,
    DoneEvent,
    ReasoningEvent,
    TokenEvent,
)
from gpudoc.graph.llm import message_text
from gpudoc.server.turns import TurnService

EVENTS_KEY = "gpudoc_events"
TURN_KEY = "gpudoc_turn"
REASONING_KEY = "reasoning_content"


class AgentInput(BaseModel):
    """The graph's own input: the conversation as LangChain message dicts."""

    model_config = ConfigDict(title="AgentInput")

    #: set per server by ``build_input_model``
    max_message_chars: ClassVar[int] = 8000
    max_history_messages: ClassVar[int] = 50

    messages: list[AnyMessage] = Field(
        description=(
            "The conversation, e.g. [{\"type\": \"human\", \"content\": \"Is node-0 running hot?\"}]. "
            "The last message is the question. With a thread id send only the new message: the "
            "server keeps the thread's history."
        ),
    )

    @field_validator("messages")
    @classmethod
    def _within_limits(cls, messages: list[BaseMessage]) -> list[BaseMessage]:
        if not messages:
            raise ValueError("messages is empty: send at least the question as a human message")
        last = messages[-1]
        if not isinstance(last, HumanMessage):
            raise ValueError(f"the last message must be the question (type 'human'), not '{last.type}'")
        question = message_text(last).strip()
        if not question:
            raise ValueError("the question (last message) is empty")
        if len(question) > cls.max_message_chars:
            raise ValueError(
                f"the question is {len(question)} characters; the limit is {cls.max_message_chars} "
                "(GPUDOC_MAX_MESSAGE_CHARS)"
            )
        if len(messages) - 1 > cls.max_history_messages:
            raise ValueError(
                f"{len(messages) - 1} history messages; the limit is {cls.max_history_messages} "
                "(GPUDOC_MAX_HISTORY_MESSAGES): use a thread id instead of resending the history"
            )
        return messages


def build_input_model(*, max_message_chars: int, max_history_messages: int) -> type[AgentInput]:
    """``AgentInput`` with this server's limits; violations answer 422 with the reason.

    Why a subclass per limit pair, named and documented with its limits: LangServe caches input
    models by class name and schema, and re-creates (without validators) a model whose name it
    has seen with another schema. Distinct names and docstrings keep each app's limits its own.
    """
    doc = (
        f"The conversation; the question (last message) has at most {max_message_chars} characters "
        f"and at most {max_history_messages} messages precede it."
    )
    return type(
        f"AgentInput{max_message_chars}x{max_history_messages}",
        (AgentInput,),
        {"__doc__": doc, "max_message_chars": max_message_chars, "max_history_messages": max_history_messages},
    )


class AgentOutput(RootModel[AIMessage]):
    """The answer as an ``AIMessage``.

    The JSON schema lists the message as the single member of an ``anyOf`` with ``type`` as an
    ``enum``: that is how LangServe's chat playground recognises a chat runnable, and pydantic
    now writes a one-value ``Literal`` as ``const`` only.
    """

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


def event_to_chunk(event: AgentEvent) -> AIMessageChunk:
    """One stream event as one message chunk (see the module docstring for the encoding)."""
    if isinstance(event, TokenEvent):
        return AIMessageChunk(content=event.text)
    if isinstance(event, ReasoningEvent):
        return AIMessageChunk(content="", additional_kwargs={REASONING_KEY: event.text})
    if isinstance(event, DoneEvent):
        return AIMessageChunk(content="", response_metadata={TURN_KEY: event.result.model_dump(mode="json")})
    return AIMessageChunk(content="", additional_kwargs={EVENTS_KEY: [event.model_dump(mode="json")]})


class AgentRunnable(Runnable[dict[str, Any], AIMessage]):
    """The agent behind ``/agent``; see the module docstring for what it streams."""

    name = "gpudoc_agent"

    def __init__(self, service: Callable[[], TurnService], input_model: type[AgentInput]) -> None:
        self._service = service  # resolved per call: the agent is built in the app's lifespan
        self._input_model = input_model

    @property
    def InputType(self) -> type[AgentInput]:  # noqa: N802 - LangChain's name
        return self._input_model

    @property
    def OutputType(self) -> type[AIMessage]:  # noqa: N802 - LangChain's name
        return AIMessage

    def get_input_schema(self, config: RunnableConfig | None = None) -> type[AgentInput]:
        return self._input_model

    def get_output_schema(self, config: RunnableConfig | None = None) -> type[BaseModel]:
        return AgentOutput

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

    def invoke(self, input: Input, config: RunnableConfig | None = None, **kwargs: Any) -> AIMessage:
        raise NotImplementedError("the agent runs on the event loop: use ainvoke, astream or the HTTP routes")

    async def ainvoke(self, input: Input, config: RunnableConfig | None = None, **kwargs: Any) -> AIMessage:
        aggregate: AIMessageChunk | None = None
        async for chunk in self.astream(input, config, **kwargs):
            aggregate = chunk if aggregate is None else aggregate + chunk
        return message_chunk_to_message(aggregate or AIMessageChunk(content=""))

    async def astream(
        self, input: Input, config: RunnableConfig | None = None, **kwargs: Any
    ) -> AsyncIterator[AIMessageChunk]:
        async def single_input() -> AsyncIterator[Input]:
            yield input

        stream = self._atransform_stream_with_config(single_input(), self._turn_chunks, config, **kwargs)
        async with aclosing(stream):
            async for chunk in stream:
                yield chunk

    async def _turn_chunks(
        self, inputs: AsyncIterator[Input], config: RunnableConfig
    ) -> AsyncIterator[AIMessageChunk]:
        raw = None
        async for raw in inputs:
            pass
        request = raw if isinstance(raw, self._input_model) else self._input_model.model_validate(raw)
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
