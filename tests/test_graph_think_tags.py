"""Inline <think> reasoning (a server without a reasoning parser) is kept out of the answer."""

from __future__ import annotations

import pytest

from gpudoc.config import Settings
from gpudoc.graph.llm import build_chat_model
from gpudoc.graph.think_tags import ThinkSplitter, split_think_tags
from tests.doubles.stub_vllm import StubReply, StubVllmServer

INLINE = "<think>node-2 GPU 3 reads 90; limit 85.</think>\n\nnode-2 is hot: GPU 3 at 90 °C."


def stream_through(chunks: list[str]) -> tuple[str, str]:
    splitter = ThinkSplitter()
    reasoning = answer = ""
    for chunk in chunks:
        r, a = splitter.feed(chunk)
        reasoning, answer = reasoning + r, answer + a
    r, a = splitter.finish()
    return reasoning + r, answer + a


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8, 1000])
def test_tags_split_anywhere_across_chunks(size: int) -> None:
    chunks = [INLINE[i : i + size] for i in range(0, len(INLINE), size)]
    reasoning, answer = stream_through(chunks)
    assert reasoning == "node-2 GPU 3 reads 90; limit 85."
    assert answer == "node-2 is hot: GPU 3 at 90 °C."


def test_content_without_tags_passes_through_untouched() -> None:
    text = "node-2 is fine: 41 °C <not a tag> and a < sign."
    assert stream_through([text[i : i + 3] for i in range(0, len(text), 3)]) == ("", text)
    assert split_think_tags(text) == ("", text)


def test_unfinished_thinking_stays_reasoning() -> None:
    assert stream_through(["<think>still ", "working</th"]) == ("still working</th", "")


def test_template_opened_tag_is_split_in_whole_messages() -> None:
    assert split_think_tags("check GPU 3 first\n</think>\nGPU 3 is at 90 °C.") == (
        "check GPU 3 first",
        "GPU 3 is at 90 °C.",
    )


def test_a_lone_angle_bracket_answer_is_not_swallowed() -> None:
    assert stream_through(["<", "5 % of GPUs are idle"]) == ("", "<5 % of GPUs are idle")


async def test_client_moves_inline_thinking_to_the_reasoning_channel() -> None:
    """Over HTTP, streamed and whole: the answer carries no thinking, the reasoning channel does."""
    with StubVllmServer(policy=lambda body: StubReply(content=INLINE)) as url:
        model = build_chat_model(Settings(LLM_BASE_URL=url, LLM_MAX_RETRIES=0))
        whole = await model.ainvoke("Is node-2 running hot?")
        chunks = [chunk async for chunk in model.astream("Is node-2 running hot?")]
    merged = chunks[0]
    for chunk in chunks[1:]:
        merged = merged + chunk
    for message in (whole, merged):
        assert message.content == "node-2 is hot: GPU 3 at 90 °C."
        assert message.additional_kwargs["reasoning_content"].strip() == "node-2 GPU 3 reads 90; limit 85."
    assert not any("think>" in str(chunk.content) for chunk in chunks)


async def test_agent_answer_drops_thinking_before_a_lone_closing_tag() -> None:
    """The chat template opened <think> in the prompt: only '</think>' shows up in the output."""
    from gpudoc.graph.agent import build_agent
    from gpudoc.graph.runner import run_turn
    from gpudoc.tools.sim.source import SimSource
    from tests.doubles.stub_vllm import StubToolCall

    def template_opened(body: dict) -> StubReply:
        if any(m.get("role") == "tool" for m in body.get("messages") or []):
            return StubReply(content="GPU 3 reads 90 so it is over 85.\n</think>\nnode-2 GPU 3 is hot.")
        return StubReply(tool_calls=[StubToolCall(id="c1", name="get_node_details", arguments='{"node_id": "node-2"}')])

    with StubVllmServer(policy=template_opened) as url:
        settings = Settings(LLM_BASE_URL=url, LLM_MAX_RETRIES=0)
        source = SimSource.create(nodes=4, realtime=False, scenarios=["thermal-throttle@node-2/gpu-3"])
        agent = build_agent(source=source, llm=build_chat_model(settings), settings=settings)
        result = await run_turn(agent, "Is node-2 running hot?")
    assert result.answer == "node-2 GPU 3 is hot."
    assert "GPU 3 reads 90 so it is over 85." in result.reasoning
