"""The chat model client: ``ChatOpenAI`` pointed at vLLM, keeping the model's reasoning.

Why a subclass: Nemotron reasons before it answers, and vLLM (``--reasoning-parser``) returns
that reasoning in a field of its own (``reasoning_content``; ``reasoning`` in newer releases).
``ChatOpenAI`` converts only the OpenAI fields and drops it silently, both in streamed chunks
and in whole responses. This client copies it into ``additional_kwargs["reasoning_content"]``
so the CLI and the UIs can show the thinking, and lets each request switch thinking off via
vLLM's ``chat_template_kwargs: {"enable_thinking": false}``.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any, AsyncIterator, Mapping, NamedTuple

import httpx
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, PrivateAttr, model_validator

from gpudoc.config import Settings
from gpudoc.graph.stream_reader import DEFAULT_FLUSH_S, REASONING_FIELDS, CoalescingCompletions
from gpudoc.graph.think_tags import StartMode, ThinkSplitter, split_think_tags

#: where this client puts it on the LangChain message
REASONING_KEY = "reasoning_content"


def content_text(content: Any) -> str:
    """The text of message content that may be a string or a list of content blocks."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    return "".join(
        block if isinstance(block, str) else str(block.get("text", ""))
        for block in content
        if isinstance(block, str) or (isinstance(block, dict) and block.get("type") == "text")
    )


def message_text(message: BaseMessage) -> str:
    return content_text(message.content)


def reasoning_of(payload: Mapping[str, Any] | None) -> str:
    """The reasoning text of one message or delta dict, whichever field name vLLM used."""
    if not payload:
        return ""
    for name in REASONING_FIELDS:
        value = payload.get(name)
        if isinstance(value, str) and value:
            return value
    return ""


class _StreamState:
    """What one stream has shown so far: its ``<think>`` splitter, a reasoning field, answer content."""

    def __init__(self, splitter: ThinkSplitter) -> None:
        self.splitter = splitter
        self.reasoning_field = False
        self.content_seen = False


#: the stream the current task is reading (one per concurrent turn)
_STREAM_SPLITTER: ContextVar[_StreamState | None] = ContextVar("gpudoc_stream_splitter", default=None)


def _with_parts(generation: ChatGenerationChunk, reasoning: str, answer: str) -> ChatGenerationChunk:
    """The chunk with its content replaced by ``answer`` and ``reasoning`` added to the reasoning channel."""
    message = generation.message
    extra = dict(message.additional_kwargs)
    if reasoning:
        extra[REASONING_KEY] = extra.get(REASONING_KEY, "") + reasoning
    return ChatGenerationChunk(
        message=message.model_copy(update={"content": answer, "additional_kwargs": extra}),
        generation_info=generation.generation_info,
    )


class ReasoningChatOpenAI(ChatOpenAI):
    """``ChatOpenAI`` for vLLM: keeps ``reasoning``/``reasoning_content`` and honours ``enable_thinking``.

    ``enable_thinking`` (field, or a per-call keyword such as ``model.bind(enable_thinking=False)``)
    becomes ``extra_body.chat_template_kwargs.enable_thinking``; ``None`` leaves the server default.
    Streamed responses are read by ``graph/stream_reader.py``: the first chunk is passed on at
    once, then what arrives within ``stream_flush_s`` of the last chunk passed on goes as one.
    """

    enable_thinking: bool | None = None
    #: longest wait before streamed tokens are passed on together (0: only those read together)
    stream_flush_s: float = DEFAULT_FLUSH_S
    #: how this server returns thinking, learnt from its streams: unknown, parser (a field of its
    #: own), tags (``<think>…</think>`` in the content), opened (only ``</think>``: the chat
    #: template opened the tag) or none (no thinking in the content)
    _think_shape: str = PrivateAttr(default="unknown")

    @model_validator(mode="after")
    def _read_streams_cheaply(self) -> "ReasoningChatOpenAI":
        if self.async_client is not None and not isinstance(self.async_client, CoalescingCompletions):
            self.async_client = CoalescingCompletions(self.async_client, flush_s=self.stream_flush_s)
        return self

    def _stream_start(self, thinking: bool | None) -> StartMode:
        """How a stream's content may begin, from what earlier streams showed of this server."""
        if thinking is False:
            return "plain"
        return {"unknown": "undecided", "opened": "thinking"}.get(self._think_shape, "plain")

    def _learn_think_shape(self, splitter: ThinkSplitter, reasoning_field: bool, content_seen: bool) -> None:
        if reasoning_field:
            self._think_shape = "parser"
        elif splitter.orphan_close_seen:
            self._think_shape = "opened"
        elif splitter.open_seen:
            self._think_shape = "tags"
        elif content_seen and self._think_shape == "unknown":
            self._think_shape = "none"

    def _get_request_payload(self, input_: Any, *, stop: list[str] | None = None, **kwargs: Any) -> dict:
        thinking = kwargs.pop("enable_thinking", self.enable_thinking)
        if thinking is not None:
            extra_body = dict(kwargs.get("extra_body") or self.extra_body or {})
            template_kwargs = dict(extra_body.get("chat_template_kwargs") or {})
            template_kwargs["enable_thinking"] = bool(thinking)
            extra_body["chat_template_kwargs"] = template_kwargs
            kwargs["extra_body"] = extra_body
        return super()._get_request_payload(input_, stop=stop, **kwargs)

    def _convert_chunk_to_generation_chunk(
        self, chunk: dict, default_chunk_class: type, base_generation_info: dict | None
    ) -> ChatGenerationChunk | None:
        generation = super()._convert_chunk_to_generation_chunk(chunk, default_chunk_class, base_generation_info)
        if generation is None:
            return None
        choices = chunk.get("choices") or (chunk.get("chunk") or {}).get("choices") or []
        stream = _STREAM_SPLITTER.get()
        if choices:
            text = reasoning_of(choices[0].get("delta"))
            if text:
                generation.message.additional_kwargs[REASONING_KEY] = text
                if stream is not None:
                    stream.reasoning_field = True
                    stream.splitter.reasoning_field_seen()
        content = generation.message.content
        if stream is not None and isinstance(content, str):
            splitter = stream.splitter
            stream.content_seen = stream.content_seen or bool(content.strip())
            reasoning, answer = splitter.feed(content)
            finish_reason = choices[0].get("finish_reason") if choices else None
            if finish_reason:
                rest_reasoning, rest_answer = splitter.finish(cut_off=finish_reason == "length")
                reasoning, answer = reasoning + rest_reasoning, answer + rest_answer
            if (reasoning, answer) != ("", content):
                generation = _with_parts(generation, reasoning, answer)
        return generation

    async def _astream(self, *args: Any, **kwargs: Any) -> AsyncIterator[ChatGenerationChunk]:
        # Thinking left inline in the content (no reasoning parser on the server) is moved to
        # the reasoning channel chunk by chunk, before callbacks and the graph's stream see it.
        stream = _StreamState(ThinkSplitter(self._stream_start(kwargs.get("enable_thinking", self.enable_thinking))))
        _STREAM_SPLITTER.set(stream)
        try:
            async for generation in super()._astream(*args, **kwargs):
                yield generation
        finally:
            _STREAM_SPLITTER.set(None)
            self._learn_think_shape(stream.splitter, stream.reasoning_field, stream.content_seen)

    def _create_chat_result(self, response: dict | BaseModel, generation_info: dict | None = None) -> ChatResult:
        result = super()._create_chat_result(response, generation_info)
        raw = response if isinstance(response, dict) else response.model_dump()
        for index, choice in enumerate((raw.get("choices") or [])[: len(result.generations)]):
            generation = result.generations[index]
            message, text = generation.message, reasoning_of(choice.get("message"))
            content = message.content
            if isinstance(content, str) and "think>" in content:
                inline, content = split_think_tags(content)
                text = "\n".join(part for part in (text, inline) if part)
            if text:
                extra = {**message.additional_kwargs, REASONING_KEY: text}
                result.generations[index] = ChatGeneration(
                    message=message.model_copy(update={"content": content, "additional_kwargs": extra}),
                    generation_info=generation.generation_info,
                )
        return result


def build_chat_model(settings: Settings, *, enable_thinking: bool | None = None) -> ReasoningChatOpenAI:
    """The client the agent uses, configured from ``Settings`` (LLM_BASE_URL, LLM_MODEL, ...)."""
    thinking = settings.llm_enable_thinking if enable_thinking is None else enable_thinking
    return ReasoningChatOpenAI(
        model=settings.llm_model,
        base_url=settings.llm_base_url,
        api_key=settings.llm_api_key or "EMPTY",
        temperature=settings.llm_temperature,
        top_p=settings.llm_top_p,
        max_tokens=settings.llm_max_tokens,
        timeout=settings.llm_timeout_s,
        max_retries=settings.llm_max_retries,
        stream_usage=True,
        enable_thinking=None if thinking else False,
        stream_flush_s=settings.stream_flush_ms / 1000,
    )


#: ``owned_by`` of a model card served by a test double (the stub vLLM server of ``tests/doubles``)
TEST_DOUBLE_OWNER = "gpudoc-test-double"
#: response header in which a test double names itself (``stub vLLM, keyword policy``)
TEST_DOUBLE_HEADER = "X-Gpudoc-Test-Double"
#: what a server that marks its model card but gives no name is called
UNNAMED_TEST_DOUBLE = "an OpenAI-compatible test double"


class LlmProbe(NamedTuple):
    """Whether the LLM endpoint answers, as ``GET /api/agent/health`` and ``/readyz`` report it.

    A named tuple so callers may unpack ``available, model, error, test_double`` or read the
    attributes. ``test_double`` is the name a server gives itself when it says it is a test
    double rather than a model (``TEST_DOUBLE_OWNER``, ``TEST_DOUBLE_HEADER``): an evaluation
    against it must not be recorded as the model it imitates.
    """

    available: bool
    model: str | None = None
    error: str | None = None
    test_double: str | None = None


def announced_test_double(response: httpx.Response, card: Mapping[str, Any] | None) -> str | None:
    """The name a server answering ``/models`` gives itself as a test double, or ``None`` for a model server."""
    name = " ".join(response.headers.get(TEST_DOUBLE_HEADER, "").split())[:120]
    if name:
        return name
    if card is not None and card.get("owned_by") == TEST_DOUBLE_OWNER:
        return UNNAMED_TEST_DOUBLE
    return None


async def llm_available(settings: Settings, *, timeout_s: float = 3.0) -> LlmProbe:
    """Probe ``GET {LLM_BASE_URL}/models`` quickly; never raises.

    ``model`` is the configured model when the server serves it, else the first one it lists
    (with an ``error`` saying the configured name is missing, which vLLM would reject).
    """
    url = settings.llm_base_url.rstrip("/") + "/models"
    headers = {"Authorization": f"Bearer {settings.llm_api_key}"} if settings.llm_api_key else {}
    try:
        async with httpx.AsyncClient(timeout=timeout_s) as client:
            response = await client.get(url, headers=headers)
    except httpx.HTTPError as exc:
        return LlmProbe(available=False, error=f"LLM endpoint {url} unreachable ({type(exc).__name__}: {exc}). "
                        "Start vLLM or set LLM_BASE_URL / --llm-base-url.")
    if response.status_code != 200:
        return LlmProbe(available=False, error=f"LLM endpoint {url} answered HTTP {response.status_code}.")
    try:
        cards = {item["id"]: item for item in response.json().get("data", [])}
    except (ValueError, KeyError, TypeError, AttributeError):
        return LlmProbe(available=False, error=f"LLM endpoint {url} did not answer with an OpenAI model list.")
    served = list(cards)
    if settings.llm_model in served:
        return LlmProbe(available=True, model=settings.llm_model,
                        test_double=announced_test_double(response, cards[settings.llm_model]))
    if not served:
        return LlmProbe(available=False, error=f"LLM endpoint {url} serves no model.")
    return LlmProbe(available=False, model=served[0],
                    error=f"model {settings.llm_model!r} not served at {url}; it serves: {', '.join(served)}. "
                          "Set LLM_MODEL / --model.")
