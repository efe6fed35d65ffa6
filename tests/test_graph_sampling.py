"""Sampling from the model card, an output budget with room to think, and an answer that ran out of it.

The model server is the stub vLLM server of ``tests/doubles`` (a TEST DOUBLE speaking vLLM's wire
format), so the request bodies gpudoc sends are the ones asserted.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from gpudoc.config import Settings
from gpudoc.graph.agent import build_agent
from gpudoc.graph.contracts import DoneEvent, ReasoningEvent, TokenEvent
from gpudoc.graph.llm import build_chat_model
from gpudoc.graph.runner import stream_turn
from gpudoc.tools.sim.source import SimSource
from tests.doubles.stub_vllm import StubReply, StubToolCall, StubVllmServer

QUESTION = "Is node-2 running hot?"


def settings_for(url: str, **values: Any) -> Settings:
    return Settings(LLM_BASE_URL=url, LLM_MAX_RETRIES=0, **values)


async def run(url: str, settings: Settings | None = None, question: str = QUESTION):
    settings = settings or settings_for(url)
    source = SimSource.create(nodes=4, realtime=False, scenarios=["thermal-throttle@node-2/gpu-3"])
    agent = build_agent(source=source, llm=build_chat_model(settings), settings=settings)
    events = [e async for e in stream_turn(agent, question)]
    assert isinstance(events[-1], DoneEvent), events[-1]
    streamed = "".join(e.text for e in events if isinstance(e, TokenEvent))
    return streamed, events, events[-1].result


def node_details_then(answer: Any):
    """Plan: get_node_details(node-2); then ``answer(body)`` once tool results are in."""

    def policy(body: dict[str, Any]) -> StubReply:
        if any(m.get("role") == "tool" for m in body.get("messages") or []):
            return answer(body)
        return StubReply(tool_calls=[StubToolCall(id="c1", name="get_node_details", arguments='{"node_id": "node-2"}')])

    return policy


def thinking_off(body: dict[str, Any]) -> bool:
    return (body.get("chat_template_kwargs") or {}).get("enable_thinking") is False


def test_defaults_follow_the_model_card_for_tool_calling():
    settings = Settings()
    assert (settings.llm_temperature, settings.llm_top_p) == (0.6, 0.95)
    assert settings.llm_max_tokens is not None and settings.llm_max_tokens >= 8192
    with pytest.raises(ValidationError, match="greater than or equal to 8192"):
        Settings(LLM_MAX_TOKENS=2048)


async def test_requests_carry_the_sampling_and_the_output_budget():
    stub = StubVllmServer()
    with stub as url:
        await run(url)
        await run(url, settings_for(url, LLM_TEMPERATURE=1.0, LLM_TOP_P=1.0, LLM_MAX_TOKENS=None))
    first, later = stub.requests[0], stub.requests[-1]
    assert (first["temperature"], first["top_p"], first["max_completion_tokens"]) == (0.6, 0.95, 32768)
    assert (later["temperature"], later["top_p"]) == (1.0, 1.0) and "max_completion_tokens" not in later


def test_an_unset_budget_is_written_unset_in_the_environment(monkeypatch):
    monkeypatch.setenv("LLM_MAX_TOKENS", "unset")
    assert Settings().llm_max_tokens is None


async def test_answer_that_ran_out_thinking_is_retried_once_without_thinking():
    def answer(body: dict[str, Any]) -> StubReply:
        if thinking_off(body):
            return StubReply(content="node-2 GPU 3 is hot.")
        return StubReply(reasoning="Let me weigh every reading. " * 20, stop="length")

    stub = StubVllmServer(policy=node_details_then(answer))
    with stub as url:
        streamed, events, result = await run(url)
    assert streamed == result.answer == "node-2 GPU 3 is hot."
    assert result.llm_round_trips == 3 and not result.answer_cut_short
    assert result.tokens.input_tokens > 0 and result.tokens.output_tokens > 0  # all three calls counted
    assert thinking_off(stub.requests[-1]) and not thinking_off(stub.requests[1])
    assert any(isinstance(e, ReasoningEvent) for e in events)  # the interrupted thinking stays thinking


async def test_answer_that_runs_out_twice_says_so_plainly():
    stub = StubVllmServer(policy=node_details_then(lambda body: StubReply(reasoning="Hmm. " * 10, stop="length")))
    with stub as url:
        streamed, _, result = await run(url)
    assert streamed == result.answer
    assert "whole output budget (LLM_MAX_TOKENS=32768) thinking" in result.answer
    assert "get_node_details" in result.answer and result.llm_round_trips == 3


async def test_answer_cut_at_the_output_limit_is_labelled():
    reply = StubReply(reasoning="GPU 3 is the hot one.", content="GPU 3 reads", stop="length")
    stub = StubVllmServer(policy=node_details_then(lambda body: reply))
    with stub as url:
        streamed, _, result = await run(url)
    assert streamed == result.answer and result.answer_cut_short
    assert result.answer.startswith("GPU 3 reads") and "output limit (LLM_MAX_TOKENS=32768)" in result.answer
    assert result.llm_round_trips == 2  # text came back: no retry


async def test_thinking_opened_by_the_chat_template_never_streams_as_answer():
    """The server has no reasoning parser and the template opened <think>: only '</think>' shows."""
    answer = StubReply(content="GPU 3 reads 90 so it is over 85.\n</think>\nnode-2 GPU 3 is hot.")
    with StubVllmServer(policy=node_details_then(lambda body: answer)) as url:
        streamed, events, result = await run(url)
    assert streamed == result.answer == "node-2 GPU 3 is hot."
    assert "GPU 3 reads 90 so it is over 85." in "".join(e.text for e in events if isinstance(e, ReasoningEvent))
