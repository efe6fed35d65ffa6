"""The turn deadline (``graph/deadline.py``) through the real client path: the stub vLLM server (a
TEST DOUBLE) writes its answer slowly, the deadline ends the turn with what streamed, labelled."""

from __future__ import annotations


from gpudoc.config import Settings
from gpudoc.graph.agent import build_agent
from gpudoc.graph.contracts import DoneEvent, StatusEvent, TokenEvent, ToolEndEvent
from gpudoc.graph.deadline import stream_turn_within
from gpudoc.graph.llm import build_chat_model
from gpudoc.tools.sim.source import SimSource
from tests.doubles.keyword_policy import keyword_then_answer
from tests.doubles.stub_vllm import STUB_MODEL, StubVllmServer

SLOW_ANSWER = "GPU 3 of node-2 reads 89.2 °C and throttles. " * 200


slow_answer_policy = keyword_then_answer(SLOW_ANSWER)


async def test_a_turn_past_its_deadline_ends_with_the_streamed_answer_and_a_note() -> None:
    with StubVllmServer(policy=slow_answer_policy, token_delay=0.01) as llm_url:
        settings = Settings(llm_base_url=llm_url, llm_model=STUB_MODEL, llm_max_retries=0)
        agent = build_agent(source=SimSource.create(nodes=4, scenarios=["thermal-throttle@node-2/gpu-3"],
                                                    realtime=False),
                            llm=build_chat_model(settings), settings=settings)
        events = [event async for event in stream_turn_within(agent, "Is node-2 running hot?", deadline_s=1.5,
                                                              thread_id="deadline-1")]
    done = events[-1]
    assert isinstance(done, DoneEvent) and done.result.answer_cut_short
    streamed = "".join(e.text for e in events if isinstance(e, TokenEvent))
    assert streamed == done.result.answer  # the tokens a client joined are the answer, note included
    assert done.result.answer.startswith("GPU 3 of node-2 reads 89.2") and len(done.result.answer) < len(SLOW_ANSWER)
    assert "time limit of 1.5 s (GPUDOC_TURN_TIMEOUT_S)" in done.result.answer
    assert {c.name for c in done.result.tool_calls} == {e.name for e in events if isinstance(e, ToolEndEvent)} != set()
    assert any(isinstance(e, StatusEvent) and e.stage == "deadline" for e in events)


async def test_a_turn_within_its_deadline_is_untouched() -> None:
    with StubVllmServer() as llm_url:
        settings = Settings(llm_base_url=llm_url, llm_model=STUB_MODEL, llm_max_retries=0)
        agent = build_agent(source=SimSource.create(nodes=4, realtime=False), llm=build_chat_model(settings),
                            settings=settings)
        events = [event async for event in stream_turn_within(agent, "Is node-2 running hot?", deadline_s=60,
                                                              thread_id="deadline-2")]
    done = events[-1]
    assert isinstance(done, DoneEvent) and not done.result.answer_cut_short
    assert "GPUDOC_TURN_TIMEOUT_S" not in done.result.answer
