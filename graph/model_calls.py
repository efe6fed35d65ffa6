"""One model call of the agent, streamed, with everything the graph needs to know about how it ended.

Why stream and aggregate here rather than ``ainvoke``: when the endpoint fails halfway through
an answer, the text already streamed to the operator must be known, so the turn can end with
that text labelled as cut short instead of gluing another answer to it. The chunks also reach
LangGraph's ``messages`` stream as they arrive (the callbacks of the node's config).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Sequence

from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, message_chunk_to_message
from langchain_core.runnables import RunnableConfig

from gpudoc.graph.contracts import TokenUsage
from gpudoc.graph.degraded import LLM_FAILURES, describe_llm_failure
from gpudoc.graph.llm import REASONING_KEY, message_text


@dataclass(frozen=True)
class ModelReply:
    """What one call produced: the message (``None`` when nothing came back) or the failure."""

    message: AIMessage | None
    failure: str | None = None

    @property
    def text(self) -> str:
        return message_text(self.message) if self.message is not None else ""

    @property
    def reasoning(self) -> str:
        return str(self.message.additional_kwargs.get(REASONING_KEY) or "") if self.message is not None else ""

    @property
    def finish_reason(self) -> str | None:
        return (self.message.response_metadata or {}).get("finish_reason") if self.message is not None else None

    @property
    def ran_out_of_tokens(self) -> bool:
        return self.finish_reason == "length"

    @property
    def has_tool_calls(self) -> bool:
        return self.message is not None and bool(self.message.tool_calls or self.message.invalid_tool_calls)

    @property
    def tokens(self) -> TokenUsage:
        usage = self.message.usage_metadata if self.message is not None else None
        if not usage:
            return TokenUsage()
        return TokenUsage(input_tokens=usage.get("input_tokens", 0), output_tokens=usage.get("output_tokens", 0))


def _with_call_ids(message: AIMessage) -> AIMessage:
    """Give every tool call an id (some servers omit them); tool messages must refer to one."""
    if all(c.get("id") for c in message.tool_calls) and all(c.get("id") for c in message.invalid_tool_calls):
        return message
    calls = [{**c, "id": c.get("id") or f"call_{uuid.uuid4().hex[:16]}"} for c in message.tool_calls]
    invalid = [{**c, "id": c.get("id") or f"call_{uuid.uuid4().hex[:16]}"} for c in message.invalid_tool_calls]
    return message.model_copy(update={"tool_calls": calls, "invalid_tool_calls": invalid})


def _message(aggregate: AIMessageChunk | None) -> AIMessage | None:
    if aggregate is None:
        return None
    message = message_chunk_to_message(aggregate)
    if not isinstance(message, AIMessage):
        message = AIMessage(content=message.content, additional_kwargs=message.additional_kwargs,
                            response_metadata=message.response_metadata)
    if not message.id:
        message = message.model_copy(update={"id": f"run-{uuid.uuid4().hex}"})
    return _with_call_ids(message)


async def call_model(runnable: Any, prompt: Sequence[BaseMessage], config: RunnableConfig,
                     base_url: str | None) -> ModelReply:
    """Stream one call of ``runnable``; a failing endpoint is a ``failure`` line, never an exception.

    When the endpoint fails midway, ``message`` holds what had arrived (a partial answer).
    """
    aggregate: AIMessageChunk | None = None
    try:
        async for chunk in runnable.astream(list(prompt), config):
            aggregate = chunk if aggregate is None else aggregate + chunk
    except LLM_FAILURES as error:
        return ModelReply(message=_message(aggregate), failure=describe_llm_failure(error, base_url))
    return ModelReply(message=_message(aggregate) or AIMessage(content=""))
