"""The model client over HTTP against the stub vLLM server (a test double speaking vLLM's wire format)."""

from __future__ import annotations

import httpx
import pytest
from langchain_core.tools import tool

from gpudoc.config import Settings
from gpudoc.graph.agent import build_agent
from gpudoc.graph.contracts import DoneEvent, ReasoningEvent, TokenEvent
from gpudoc.graph.llm import (
    TEST_DOUBLE_HEADER,
    TEST_DOUBLE_OWNER,
    UNNAMED_TEST_DOUBLE,
    announced_test_double,
    build_chat_model,
    llm_available,
)
from gpudoc.graph.runner import stream_turn
from gpudoc.tools.sim.source import SimSource
from tests.doubles.stub_vllm import StubVllmServer


@tool
def get_node_details(node_id: str) -> str:
    """One node's readings."""
    return "{}"


def settings_for(url: str) -> Settings:
    return Settings(LLM_BASE_URL=url, LLM_MAX_RETRIES=0)


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
async def test_reasoning_survives_streaming_and_whole_responses(field):
    with StubVllmServer(reasoning_field=field) as url:
        model = build_chat_model(settings_for(url)).bind_tools([get_node_details])
        whole = await model.ainvoke("Is node-2 running hot?")
        merged = None
        async for chunk in model.astream("Is node-2 running hot?"):
            merged = chunk if merged is None else merged + chunk
    for message in (whole, merged):
        assert message.additional_kwargs["reasoning_content"].startswith("To answer 'Is node-2 running hot?'")
        assert [c["name"] for c in message.tool_calls] == ["get_node_details"]
        assert message.tool_calls[0]["args"] == {"node_id": "node-2"}


async def test_enable_thinking_false_reaches_the_server_and_no_reasoning_comes_back():
    stub = StubVllmServer()
    with stub as url:
        model = build_chat_model(settings_for(url), enable_thinking=False)
        message = await model.ainvoke("hello")
        per_call = await build_chat_model(settings_for(url)).bind(enable_thinking=False).ainvoke("hello")
    assert "reasoning_content" not in message.additional_kwargs and "reasoning_content" not in per_call.additional_kwargs
    assert [r["chat_template_kwargs"] for r in stub.requests] == [{"enable_thinking": False}] * 2


async def test_agent_streams_reasoning_tokens_and_tools_through_the_http_client():
    stub = StubVllmServer(token_delay=0.004)  # paced like a model, so that flushes (30 ms) are many
    with stub as url:
        settings = settings_for(url)
        source = SimSource.create(seed=42, nodes=4, scenarios=["thermal-throttle@node-2/gpu-3"], realtime=False)
        agent = build_agent(source=source, llm=build_chat_model(settings), settings=settings)
        events = [e async for e in stream_turn(agent, "Is node-2 running hot?")]
        thinking_off = [e async for e in stream_turn(agent, "Is node-2 running hot?", enable_thinking=False)]
    result = events[-1].result
    assert isinstance(events[-1], DoneEvent) and not result.degraded
    assert sum(isinstance(e, ReasoningEvent) for e in events) > 3  # streamed progressively
    assert sum(isinstance(e, TokenEvent) for e in events) > 3
    assert "I called get_gpu_history, get_node_details" in result.reasoning
    assert {c.name for c in result.tool_calls} == {"get_gpu_history", "get_node_details"}
    assert result.llm_round_trips == 2 and result.unverified_numbers == []
    assert "node-2" in result.answer
    assert stub.requests[-1]["chat_template_kwargs"] == {"enable_thinking": False}
    assert not any(isinstance(e, ReasoningEvent) for e in thinking_off) and thinking_off[-1].result.reasoning == ""


async def test_server_errors_turn_into_the_degraded_answer():
    with StubVllmServer(fail_status=503) as url:
        settings = settings_for(url)
        source = SimSource.create(seed=42, nodes=4, scenarios=["xid79-fell-off-bus@node-3/gpu-5"], realtime=False)
        agent = build_agent(source=source, llm=build_chat_model(settings), settings=settings)
        events = [e async for e in stream_turn(agent, "Which GPUs need an RMA?")]
    result = events[-1].result
    assert result.degraded and "HTTP 503" in result.degraded_reason
    assert "node-3/gpu-5" in result.answer and "Answered without the language model" in result.answer
    assert any(isinstance(e, TokenEvent) and e.text == result.answer for e in events)


async def test_probe_reports_up_down_and_a_wrong_model_name():
    with StubVllmServer() as url:
        up = await llm_available(settings_for(url))
        wrong = await llm_available(Settings(LLM_BASE_URL=url, LLM_MODEL="other/model"))
    down = await llm_available(settings_for(url), timeout_s=1.0)  # the server is gone now
    assert up.available and up.model == "nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16" and up.error is None
    assert not wrong.available and "other/model" in wrong.error and wrong.model
    available, model, error, test_double = down
    assert not available and model is None and "unreachable" in error and test_double is None


def test_a_server_is_a_test_double_only_when_it_says_so():
    card = {"id": "nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16", "object": "model", "owned_by": "vllm"}
    models = httpx.Response(200, json={"object": "list", "data": [card]})
    assert announced_test_double(models, card) is None  # vLLM's own card: a model
    marked = {**card, "owned_by": TEST_DOUBLE_OWNER}
    assert announced_test_double(models, marked) == UNNAMED_TEST_DOUBLE
    named = httpx.Response(200, headers={TEST_DOUBLE_HEADER: "stub vLLM,   keyword\tpolicy"}, json={})
    assert announced_test_double(named, card) == "stub vLLM, keyword policy"


async def test_the_stub_vllm_server_says_it_is_a_test_double_and_serves_the_model_asked_for():
    with StubVllmServer() as url:
        probe = await llm_available(settings_for(url))
    assert probe.available and probe.model == "nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16"
    assert probe.test_double == "stub vLLM, keyword policy"
