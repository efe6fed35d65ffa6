"""A scripted chat model: a TEST DOUBLE that replays pre-set assistant messages, not a model.

Why: the graph's logic (parallel calls, repeats, malformed JSON, round limits, degraded mode)
must be tested with exact, reproducible model behaviour. Each call to the double takes the next
step of its script: an ``AIMessage`` (text, ``tool_calls``, ``invalid_tool_calls``, reasoning in
``additional_kwargs["reasoning_content"]``), an exception to raise (a failing endpoint), or a
function of the prompt returning an ``AIMessage`` (for answers that depend on tool results), or
a ``CutOff`` (some answer text streams, then the endpoint fails). It streams like a real client:
reasoning pieces, then content pieces, then tool-call chunks; the last chunk carries the
message's ``response_metadata`` (``finish_reason``).
"""

from __future__ import annotations

import json
import re
from typing import Any, AsyncIterator, Callable, Iterator, Sequence, Union

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import Field, PrivateAttr

class CutOff:
    """A step that streams ``message`` and then fails with ``error`` (the endpoint died mid-answer)."""

    def __init__(self, message: AIMessage, error: BaseException) -> None:
        self.message, self.error = message, error


Step = Union[AIMessage, BaseException, CutOff, Callable[[list[BaseMessage]], AIMessage]]


def tool_call(name: str, call_id: str | None = None, **args: Any) -> dict[str, Any]:
    """A tool call as an ``AIMessage`` carries it."""
    return {"name": name, "args": args, "id": call_id or f"call_{name}_{abs(hash(repr(args))) % 10**8}",
            "type": "tool_call"}


def calls(*tool_calls: dict[str, Any], content: str = "", reasoning: str = "") -> AIMessage:
    """An assistant message asking for tools."""
    kwargs = {"reasoning_content": reasoning} if reasoning else {}
    return AIMessage(content=content, tool_calls=list(tool_calls), additional_kwargs=kwargs)


def text(content: str, reasoning: str = "") -> AIMessage:
    """An assistant message answering in text."""
    kwargs = {"reasoning_content": reasoning} if reasoning else {}
    return AIMessage(content=content, additional_kwargs=kwargs)


class ScriptExhaustedError(AssertionError):
    """The graph called the double more often than the test scripted."""


class ScriptedChatModel(BaseChatModel):
    """Replays ``script`` one step per call; records every prompt in ``prompts``.

    ``repeat_last`` keeps answering with the last step once the script is used up (for loops
    such as the round-limit test and benchmarks).
    """

    script: list[Any] = Field(default_factory=list)
    repeat_last: bool = False
    prompts: list[list[BaseMessage]] = Field(default_factory=list)
    bound_tool_names: list[list[str]] = Field(default_factory=list)
    call_kwargs: list[dict[str, Any]] = Field(default_factory=list)
    _position: int = PrivateAttr(default=0)

    @property
    def _llm_type(self) -> str:
        return "scripted-chat-model-double"

    @property
    def calls_made(self) -> int:
        return self._position

    def bind_tools(self, tools: Sequence[BaseTool | dict[str, Any]], **kwargs: Any) -> Runnable:
        formatted = [convert_to_openai_tool(t) for t in tools]
        self.bound_tool_names.append([t["function"]["name"] for t in formatted])
        return self.bind(tools=formatted, **kwargs)

    def _next(self, messages: list[BaseMessage], kwargs: dict[str, Any]) -> AIMessage | CutOff:
        self.prompts.append(list(messages))
        self.call_kwargs.append({k: v for k, v in kwargs.items() if k != "tools"} | {"tools": bool(kwargs.get("tools"))})
        if self._position >= len(self.script):
            if not (self.repeat_last and self.script):
                raise ScriptExhaustedError(f"scripted model called {self._position + 1} times; script has {len(self.script)}")
            step = self.script[-1]
        else:
            step = self.script[self._position]
        self._position += 1
        if isinstance(step, BaseException):
            raise step
        if isinstance(step, CutOff):
            return step
        message = step(messages) if callable(step) else step
        return message.model_copy(deep=True)

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        step = self._next(messages, kwargs)
        if isinstance(step, CutOff):
            raise step.error
        return ChatResult(generations=[ChatGeneration(message=step)])

    def _stream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        step = self._next(messages, kwargs)
        for chunk in _chunks(step.message if isinstance(step, CutOff) else step):
            if run_manager:
                run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk
        if isinstance(step, CutOff):
            raise step.error

    async def _astream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                       run_manager: AsyncCallbackManagerForLLMRun | None = None,
                       **kwargs: Any) -> AsyncIterator[ChatGenerationChunk]:
        step = self._next(messages, kwargs)
        for chunk in _chunks(step.message if isinstance(step, CutOff) else step):
            if run_manager:
                await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk
        if isinstance(step, CutOff):
            raise step.error


def _pieces(value: str) -> list[str]:
    return re.findall(r"\S+\s*|\s+", value)


def _chunks(message: AIMessage) -> list[ChatGenerationChunk]:
    """The message as a streaming client would deliver it."""
    chunks: list[AIMessageChunk] = []
    reasoning = message.additional_kwargs.get("reasoning_content", "")
    for piece in _pieces(reasoning):
        chunks.append(AIMessageChunk(content="", additional_kwargs={"reasoning_content": piece}))
    content = message.content if isinstance(message.content, str) else ""
    for piece in _pieces(content):
        chunks.append(AIMessageChunk(content=piece))
    index = 0
    for call in message.tool_calls:
        chunks.append(AIMessageChunk(content="", tool_call_chunks=[tool_call_chunk(
            name=call["name"], args=json.dumps(call["args"]), id=call["id"], index=index)]))
        index += 1
    for bad in message.invalid_tool_calls:
        chunks.append(AIMessageChunk(content="", tool_call_chunks=[tool_call_chunk(
            name=bad.get("name"), args=bad.get("args"), id=bad.get("id"), index=index)]))
        index += 1
    if not chunks:
        chunks.append(AIMessageChunk(content=""))
    chunks[-1].response_metadata = dict(message.response_metadata)
    chunks[-1].chunk_position = "last"  # lets LangChain parse the tool-call fragments of the merged message
    return [ChatGenerationChunk(message=c) for c in chunks]
