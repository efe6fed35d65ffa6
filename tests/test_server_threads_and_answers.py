"""Every route streams or returns exactly the turn's answer, and a thread never stores a message twice.

The model is the stub vLLM server of ``tests/doubles`` (a TEST DOUBLE speaking vLLM's wire format);
its planning replies carry text beside their tool calls, as small models' often do.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langserve import RemoteRunnable

from gpudoc.server.app import create_app
from gpudoc.server.turns import ThreadConflictError, history_to_add
from gpudoc.tools.sim.source import SimSource
from tests.doubles.stub_vllm import PLANNING_TEXT, StubVllmServer, planning_text_policy
from tests.served_app import HOT_QUESTION, human, serving, settings_for, sse_records

@pytest.fixture
def chatty() -> Any:
    server = StubVllmServer(policy=planning_text_policy)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def conversation_of(request: dict[str, Any]) -> list[tuple[str, str]]:
    """(role, text) of the user and assistant messages of a request the model received."""
    return [(m["role"], m["content"]) for m in request["messages"]
            if m["role"] in ("user", "assistant") and m.get("content") and not m.get("tool_calls")]


# ------------------------------------------------------------------------------------------------
# One answer, one truth
# ------------------------------------------------------------------------------------------------


async def test_stream_and_invoke_carry_exactly_the_answer(tmp_path: Path, chatty: StubVllmServer) -> None:
    async with serving(settings_for(tmp_path, chatty.url)) as client:
        stream = await client.post("/agent/stream", json={"input": {"messages": [human(HOT_QUESTION)]}})
        invoke = await client.post("/agent/invoke", json={"input": {"messages": [human(HOT_QUESTION)]}})
        chat = await client.post("/api/agent/chat", json={"message": HOT_QUESTION})
    chunks = [data for event, data in sse_records(stream.text) if event == "data"]
    streamed = "".join(chunk["content"] for chunk in chunks)
    turn = chunks[-1]["response_metadata"]["gpudoc_turn"]
    assert streamed == turn["answer"] and PLANNING_TEXT not in streamed
    assert any(PLANNING_TEXT in (c["additional_kwargs"].get("reasoning_content") or "") for c in chunks)
    output = invoke.json()["output"]
    assert output["content"] == output["response_metadata"]["gpudoc_turn"]["answer"] == turn["answer"]
    assert chat.json()["response"] == turn["answer"]


def test_ask_prints_the_planning_text_as_thinking_only(capsys: pytest.CaptureFixture[str]) -> None:
    from gpudoc.cli import main

    arguments = [HOT_QUESTION, "--nodes", "4", "--scenario", "thermal-throttle@node-2/gpu-3", "--llm-base-url"]
    with StubVllmServer(policy=planning_text_policy) as url:  # one server per run: the OpenAI client caches per loop
        assert main(["ask", *arguments, url]) == 0
    printed = capsys.readouterr().out
    with StubVllmServer(policy=planning_text_policy) as url:
        assert main(["ask", "--json", *arguments, url]) == 0
    result = json.loads(capsys.readouterr().out)
    thinking_lines = [line for line in printed.splitlines() if PLANNING_TEXT in line]
    assert thinking_lines and all("thinking: " in line for line in thinking_lines)
    assert result["answer"] in printed and PLANNING_TEXT not in result["answer"]


# ------------------------------------------------------------------------------------------------
# Threads with clients that resend the history
# ------------------------------------------------------------------------------------------------


class InProcessTransport(httpx.ASGITransport):
    """The app in process for RemoteRunnable, which makes a sync client too (unused here) and closes both."""

    def close(self) -> None:
        return None


def remote(app: Any) -> RemoteRunnable:
    return RemoteRunnable("http://gpudoc.test/agent/", timeout=30,
                          client_kwargs={"transport": InProcessTransport(app=app)})


async def test_remote_runnable_resending_the_conversation_stores_each_message_once(
    tmp_path: Path, chatty: StubVllmServer
) -> None:
    settings = settings_for(tmp_path, chatty.url)
    app = create_app(settings, source=SimSource.create(nodes=4, realtime=False))
    config = {"configurable": {"thread_id": "remote-1"}}
    async with app.router.lifespan_context(app):
        agent = remote(app)
        first = await agent.ainvoke({"messages": [HumanMessage("hello")]}, config)
        second = await agent.ainvoke({"messages": [HumanMessage("hello"), first, HumanMessage("again")]}, config)
        state = await app.state.runtime.turns.agent.aget_state(config)
    assert isinstance(second, AIMessage) and second.content
    assert conversation_of(chatty.requests[-1]) == [("user", "hello"), ("assistant", first.content),
                                                     ("user", "again")]
    kept = [(m.type, m.content) for m in state.values["messages"] if m.type == "human" or
            (m.type == "ai" and not m.tool_calls)]
    assert kept == [("human", "hello"), ("ai", first.content), ("human", "again"), ("ai", second.content)]


async def test_playground_stream_log_with_a_thread_and_the_whole_history(tmp_path: Path, chatty: StubVllmServer) -> None:
    config = {"configurable": {"thread_id": "pg-1"}}
    async with serving(settings_for(tmp_path, chatty.url)) as client:
        first = await client.post("/agent/invoke", json={"input": {"messages": [human("hello")]}, "config": config})
        answer = first.json()["output"]["content"]
        resent = [human("hello"), {"type": "ai", "content": answer}, human(HOT_QUESTION)]
        again = await client.post("/agent/stream_log", json={"input": {"messages": resent}, "config": config})
    assert again.status_code == 200
    assert conversation_of(chatty.requests[-1]) == [("user", "hello"), ("assistant", answer), ("user", HOT_QUESTION)]


async def test_a_history_contradicting_the_thread_is_refused(tmp_path: Path, chatty: StubVllmServer) -> None:
    config = {"configurable": {"thread_id": "ops-7"}}
    async with serving(settings_for(tmp_path, chatty.url)) as client:
        await client.post("/agent/invoke", json={"input": {"messages": [human("hello")]}, "config": config})
        calls_before = len(chatty.requests)
        other = [human("something else"), {"type": "ai", "content": "x"}, human(HOT_QUESTION)]
        refused = await client.post("/agent/stream", json={"input": {"messages": other}, "config": config})
    assert refused.status_code == 409
    assert "differs from the conversation the server keeps" in refused.json()["detail"]
    assert len(chatty.requests) == calls_before


async def test_original_chat_history_reaches_the_model_once(tmp_path: Path, chatty: StubVllmServer) -> None:
    history = [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "Hi."}]
    async with serving(settings_for(tmp_path, chatty.url)) as client:
        response = await client.post("/api/agent/chat", json={"message": HOT_QUESTION, "history": history})
    assert response.status_code == 200
    assert conversation_of(chatty.requests[-1]) == [("user", "hello"), ("assistant", "Hi."), ("user", HOT_QUESTION)]


def test_history_to_add_takes_only_what_the_thread_lacks() -> None:
    kept = [HumanMessage("a"), AIMessage("b", tool_calls=[{"name": "t", "args": {}, "id": "1"}]), AIMessage("b"),
            HumanMessage("c"), AIMessage("d")]
    assert history_to_add(kept, [HumanMessage("a"), AIMessage("b"), HumanMessage("c"), AIMessage("d")],
                          thread_id="t") == []
    assert history_to_add(kept, [HumanMessage("c"), AIMessage(" d ")], thread_id="t") == []  # the recent part
    more = history_to_add(kept, [HumanMessage("a"), AIMessage("b"), HumanMessage("c"), AIMessage("d"),
                                 HumanMessage("e"), AIMessage("f")], thread_id="t")
    assert [m.content for m in more] == ["e", "f"]
    assert [m.content for m in history_to_add([], [HumanMessage("x")], thread_id="t")] == ["x"]
    with pytest.raises(ThreadConflictError, match="message 2"):
        history_to_add(kept, [HumanMessage("a"), AIMessage("not b")], thread_id="t")
