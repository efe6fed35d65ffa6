"""The answer a client streams is the answer the turn returns: planning text, drafts, cut-short answers.

Driven by the scripted chat model (a TEST DOUBLE) over the simulator.
"""

from __future__ import annotations

import httpx
import openai

from gpudoc.graph.contracts import DoneEvent, ReasoningEvent, TokenEvent
from gpudoc.graph.runner import stream_turn
from tests.doubles.scripted_chat_model import CutOff, calls, text, tool_call
from tests.test_graph_agent import agent_with, sim


async def turn(agent, question: str):
    events = [e async for e in stream_turn(agent, question)]
    done = events[-1]
    assert isinstance(done, DoneEvent), events[-1]
    streamed = "".join(e.text for e in events if isinstance(e, TokenEvent))
    reasoning = "".join(e.text for e in events if isinstance(e, ReasoningEvent))
    return streamed, reasoning, done.result


def endpoint_died() -> openai.APIConnectionError:
    return openai.APIConnectionError(request=httpx.Request("POST", "http://127.0.0.1:9/v1/chat/completions"))


async def test_text_beside_tool_calls_is_thinking_not_answer():
    agent, _ = agent_with([
        calls(tool_call("get_node_details", node_id="node-0"), content="node-0 is fine, 40 C."),
        text("node-0: see the readings."),
    ])
    streamed, reasoning, result = await turn(agent, "Is node-0 running hot?")
    assert streamed == result.answer == "node-0: see the readings."
    assert "node-0 is fine, 40 C." in reasoning and "node-0 is fine" in result.reasoning


async def test_draft_without_evidence_never_streams():
    agent, _ = agent_with([text("node-0 is fine, 40 C."), text("node-0: see the readings.")])
    streamed, _, result = await turn(agent, "Is node-0 running hot?")
    assert streamed == result.answer == "node-0: see the readings."


async def test_accepted_draft_streams_as_the_answer_once():
    agent, _ = agent_with([text("  Hello! Ask me about the cluster.\n")])
    streamed, _, result = await turn(agent, "hello")
    assert streamed == result.answer == "Hello! Ask me about the cluster."


async def test_blank_space_around_the_answer_is_trimmed_in_the_stream_too():
    agent, _ = agent_with([calls(tool_call("get_cluster_status")), text("\n\n  All 32 GPUs report.  \n")])
    streamed, _, result = await turn(agent, "How is the cluster doing?")
    assert streamed == result.answer == "All 32 GPUs report."


async def test_answer_cut_short_is_labelled_and_not_glued_to_another():
    partial = text("GPU 3 of node-2 reads 88.6 C and")
    agent, _ = agent_with([calls(tool_call("get_node_details", node_id="node-2")), CutOff(partial, endpoint_died())],
                          source=sim("thermal-throttle@node-2/gpu-3"))
    streamed, _, result = await turn(agent, "Is node-2 running hot?")
    assert streamed == result.answer
    assert result.answer.startswith("GPU 3 of node-2 reads 88.6 C and")
    assert "cut short" in result.answer and "unreachable" in result.answer
    assert result.answer_cut_short and not result.degraded
    assert "Answered without the language model" not in result.answer  # no second answer glued on


async def test_answer_call_failing_before_any_text_gives_the_labelled_diagnosis_only():
    agent, _ = agent_with([calls(tool_call("get_node_details", node_id="node-2")), endpoint_died()],
                          source=sim("thermal-throttle@node-2/gpu-3"))
    streamed, _, result = await turn(agent, "Is node-2 running hot?")
    assert result.degraded and streamed == result.answer
    assert result.answer.startswith("> **Answered without the language model.**")
