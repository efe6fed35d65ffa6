"""Reading streamed completions cheaply (``graph/stream_reader.py``): events parsed from the raw
body, merged per flush interval, with exactly the text the server sent, and failures reported as
the OpenAI SDK reports them.

The model side is either a scripted byte stream (exact control over how events are split across
network reads) or the stub vLLM server (a TEST DOUBLE) over HTTP.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai
import pytest

from gpudoc.config import Settings
from gpudoc.graph.llm import build_chat_model
from gpudoc.graph.stream_reader import _events, coalesce, merge_chunk
from tests.doubles.stub_vllm import STUB_MODEL, StubReply, StubToolCall, StubVllmServer


def chunk(**delta: Any) -> dict[str, Any]:
    finish = delta.pop("finish_reason", None)
    return {"id": "c1", "object": "chat.completion.chunk", "model": "m",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}


def sse(*events: dict[str, Any] | str) -> bytes:
    return b"".join(f"data: {e if isinstance(e, str) else json.dumps(e)}\n\n".encode() for e in events)


class ScriptedBody:
    """A response whose body arrives in the given blocks, with ``pause_s`` between them."""

    def __init__(self, blocks: list[bytes], pause_s: float = 0.0, fail_with: BaseException | None = None) -> None:
        self.blocks, self.pause_s, self.fail_with = blocks, pause_s, fail_with
        self.request = httpx.Request("POST", "http://model.test/v1/chat/completions")

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        for block in self.blocks:
            if self.pause_s:
                await asyncio.sleep(self.pause_s)
            yield block
        if self.fail_with is not None:
            raise self.fail_with


async def read_all(body: ScriptedBody, flush_s: float) -> list[dict[str, Any]]:
    return [c async for c in coalesce(_events(body), flush_s)]


def text_of(chunks: list[dict[str, Any]], field: str = "content") -> str:
    return "".join((c["choices"][0]["delta"].get(field) or "") for c in chunks if c.get("choices"))


# ---- merging ---------------------------------------------------------------------------------


def test_merging_concatenates_text_joins_tool_call_fragments_and_keeps_the_last_finish_reason() -> None:
    merged = chunk(role="assistant", content="")
    for event in (chunk(reasoning_content="Look "), chunk(reasoning_content="first."), chunk(content="node-2 "),
                  chunk(tool_calls=[{"index": 0, "id": "call_1", "type": "function",
                                     "function": {"name": "get_node_details", "arguments": ""}}]),
                  chunk(tool_calls=[{"index": 0, "function": {"arguments": '{"node_id": '}}]),
                  chunk(tool_calls=[{"index": 0, "function": {"arguments": '"node-2"}'}},
                                    {"index": 1, "id": "call_2", "type": "function",
                                     "function": {"name": "get_gpu_history", "arguments": "{}"}}]),
                  chunk(finish_reason="tool_calls"),
                  {"id": "c1", "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 9}}):
        assert merge_chunk(merged, event)
    delta = merged["choices"][0]["delta"]
    assert delta["role"] == "assistant" and delta["content"] == "node-2 "
    assert delta["reasoning_content"] == "Look first."
    assert delta["tool_calls"] == [
        {"index": 0, "id": "call_1", "type": "function",
         "function": {"name": "get_node_details", "arguments": '{"node_id": "node-2"}'}},
        {"index": 1, "id": "call_2", "type": "function", "function": {"name": "get_gpu_history", "arguments": "{}"}},
    ]
    assert merged["choices"][0]["finish_reason"] == "tool_calls" and merged["usage"]["completion_tokens"] == 9


def test_events_that_disagree_are_not_merged_and_the_target_is_left_unchanged() -> None:
    merged = chunk(content="a")
    with_logprobs = chunk(content="b")
    with_logprobs["choices"][0]["logprobs"] = {"content": [{"token": "b", "logprob": -0.1}]}
    two_choices = {"choices": [{"index": 0, "delta": {"content": "x"}}, {"index": 1, "delta": {"content": "y"}}]}
    other_choice = {"choices": [{"index": 1, "delta": {"content": "z"}}]}
    for event in (with_logprobs, two_choices, other_choice):
        assert not merge_chunk(merged, event)
    assert merged == chunk(content="a")


# ---- reading and coalescing -------------------------------------------------------------------


async def test_events_read_together_become_one_chunk_with_exactly_their_text() -> None:
    words = [f"w{n} " for n in range(50)]
    body = ScriptedBody([sse(chunk(role="assistant", content=""), *(chunk(content=w) for w in words),
                             chunk(finish_reason="stop"), "[DONE]")])
    chunks = await read_all(body, flush_s=0.03)
    assert text_of(chunks) == "".join(words)
    assert len(chunks) <= 3  # the role chunk may go alone; the fifty words go together
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


async def test_the_first_text_goes_at_once_and_the_rest_at_most_once_per_interval() -> None:
    words = [f"w{n} " for n in range(40)]
    body = ScriptedBody([sse(chunk(content=w)) for w in words] + [sse("[DONE]")], pause_s=0.005)
    started = time.monotonic()
    arrivals: list[tuple[float, str]] = []
    async for merged in coalesce(_events(body), 0.05):
        arrivals.append((time.monotonic() - started, merged["choices"][0]["delta"]["content"]))
    assert arrivals[0][1] == "w0 "  # not held back for the interval
    assert "".join(text for _, text in arrivals) == "".join(words)
    assert 1 < len(arrivals) < len(words)  # progressively, but merged


async def test_event_lines_split_across_reads_with_crlf_comments_and_multiline_data() -> None:
    raw = (b": keep-alive\r\n\r\n" + b"event: message\r\ndata: " + json.dumps(chunk(content="he")).encode()
           + b"\r\n\r\ndata: " + json.dumps(chunk(content="llo")).encode() + b"\n\n"
           + b'data: {"id": "c1", "choices": [{"index": 0,\ndata: "delta": {"content": "!"}}]}\n\n' + b"data: [DONE]\n\n")
    blocks = [raw[i:i + 7] for i in range(0, len(raw), 7)]
    chunks = await read_all(ScriptedBody(blocks), flush_s=0)
    assert text_of(chunks) == "hello!"


async def test_an_error_event_is_the_sdks_api_error() -> None:
    body = ScriptedBody([sse(chunk(content="partial "), {"error": {"message": "model overloaded", "code": 503}})])
    got: list[dict[str, Any]] = []
    with pytest.raises(openai.APIError, match="model overloaded"):
        async for merged in coalesce(_events(body), 0.03):
            got.append(merged)
    assert text_of(got) == "partial "  # what came before the error is passed on first


async def test_a_connection_lost_mid_stream_passes_on_what_came_and_is_the_sdks_connection_error() -> None:
    body = ScriptedBody([sse(chunk(content="cut "), chunk(content="short"))], fail_with=httpx.ReadError("reset"))
    got: list[dict[str, Any]] = []
    with pytest.raises(openai.APIConnectionError):
        async for merged in coalesce(_events(body), 0.03):
            got.append(merged)
    assert text_of(got) == "cut short"


async def test_leaving_early_stops_the_reader() -> None:
    closed = asyncio.Event()

    async def endless() -> AsyncIterator[list[dict[str, Any]]]:
        try:
            while True:
                yield [chunk(content="x")]
                await asyncio.sleep(0.001)
        finally:
            closed.set()

    stream = coalesce(endless(), 0.01)
    async for _ in stream:
        break
    await stream.aclose()
    assert closed.is_set()


# ---- through ChatOpenAI, over HTTP ------------------------------------------------------------


async def test_a_long_fast_stream_reaches_langchain_in_few_chunks_with_every_token() -> None:
    reply = StubReply(content="".join(f"word{n} " for n in range(400)).strip(),
                      reasoning="".join(f"think{n} " for n in range(200)).strip())
    with StubVllmServer(policy=lambda body: reply) as url:
        model = build_chat_model(Settings(llm_base_url=url, llm_model=STUB_MODEL, llm_max_retries=0))
        chunks = [c async for c in model.astream("hello")]
    content = "".join(c.content for c in chunks)
    reasoning = "".join(c.additional_kwargs.get("reasoning_content", "") for c in chunks)
    assert content == reply.content and reasoning == reply.reasoning
    assert len(chunks) < 100  # 600 tokens, merged
    assert sum((c.usage_metadata or {}).get("output_tokens", 0) for c in chunks) == 600


async def test_streamed_calls_reuse_one_connection() -> None:
    stub = StubVllmServer()
    with stub as url:
        model = build_chat_model(Settings(llm_base_url=url, llm_model=STUB_MODEL, llm_max_retries=0))
        for _ in range(3):
            assert "".join([c.content async for c in model.astream("Is node-2 running hot?")])
    assert len(stub.client_ports) == 3 and len(set(stub.client_ports)) == 1  # the body is read to its end


async def test_tool_calls_stream_whole_through_the_merged_chunks() -> None:
    call = StubToolCall("get_node_details", '{"node_id": "node-2"}')
    with StubVllmServer(policy=lambda body: StubReply(reasoning="check node-2", tool_calls=[call])) as url:
        model = build_chat_model(Settings(llm_base_url=url, llm_model=STUB_MODEL, llm_max_retries=0))
        aggregate = None
        async for piece in model.astream("hello"):
            aggregate = piece if aggregate is None else aggregate + piece
    assert aggregate is not None
    assert [(c["name"], c["args"], c["id"]) for c in aggregate.tool_calls] == [
        ("get_node_details", {"node_id": "node-2"}, call.id)]


async def test_a_server_error_status_is_still_the_sdks_status_error() -> None:
    with StubVllmServer(fail_status=503) as url:
        model = build_chat_model(Settings(llm_base_url=url, llm_model=STUB_MODEL, llm_max_retries=0))
        with pytest.raises(openai.APIStatusError) as caught:
            async for _ in model.astream("hello"):
                pass
    assert caught.value.status_code == 503
