"""Conversations kept by the SQLite checkpointer, across two agent instances (a restart)."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from gpudoc.config import Settings
from gpudoc.graph.agent import build_agent
from gpudoc.graph.checkpoint import ThreadStoreError, open_checkpointer
from gpudoc.graph.runner import run_turn
from gpudoc.tools.sim.source import SimSource
from tests.doubles.scripted_chat_model import ScriptedChatModel, calls, text, tool_call

SETTINGS = Settings(LLM_BASE_URL="http://127.0.0.1:9/v1")


def sim() -> SimSource:
    return SimSource.create(seed=42, nodes=4, realtime=False)


async def test_thread_continues_after_a_restart(tmp_path):
    db = tmp_path / "threads" / "gpudoc.sqlite"
    first_model = ScriptedChatModel(script=[calls(tool_call("get_node_details", node_id="node-1")),
                                            text("node-1 peaks at its usual temperature.")])
    async with open_checkpointer(db) as saver:
        agent = build_agent(source=sim(), llm=first_model, checkpointer=saver, settings=SETTINGS)
        first = await run_turn(agent, "Is node-1 running hot?", thread_id="ops-1")
    assert db.exists() and first.thread_id == "ops-1"

    second_model = ScriptedChatModel(script=[text("Same node as before: node-1.")])
    async with open_checkpointer(db) as saver:
        agent = build_agent(source=sim(), llm=second_model, checkpointer=saver, settings=SETTINGS)
        second = await run_turn(agent, "Which node did I ask about?", thread_id="ops-1")
        other = ScriptedChatModel(script=[text("New thread.")])
        fresh = build_agent(source=sim(), llm=other, checkpointer=saver, settings=SETTINGS)
        await run_turn(fresh, "Which node did I ask about?", thread_id="ops-2")
        stored = await agent.aget_state({"configurable": {"thread_id": "ops-1"}})

    prompt = second_model.prompts[0]
    assert [m.content for m in prompt if isinstance(m, HumanMessage)] == ["Is node-1 running hot?",
                                                                         "Which node did I ask about?"]
    assert any(isinstance(m, AIMessage) and m.content == "node-1 peaks at its usual temperature." for m in prompt)
    assert not any(isinstance(m, ToolMessage) for m in prompt)  # earlier turns' raw results are compacted away
    assert second.tool_calls == [] and second.llm_round_trips == 1  # per-turn evidence was reset
    assert len([m for m in other.prompts[0] if isinstance(m, HumanMessage)]) == 1
    assert stored.values["outcome"].answer == "Same node as before: node-1."


async def test_old_turns_are_trimmed_to_the_context_window(tmp_path):
    settings = Settings(LLM_BASE_URL="http://127.0.0.1:9/v1", LLM_CONTEXT_TOKENS=14000, LLM_MAX_TOKENS=8192)
    long_answer = "word " * 800
    model = ScriptedChatModel(script=[text(long_answer)], repeat_last=True)
    async with open_checkpointer(tmp_path / "t.sqlite") as saver:
        agent = build_agent(source=sim(), llm=model, checkpointer=saver, settings=settings)
        for index in range(6):
            await run_turn(agent, f"hello {index}", thread_id="long")
    last_prompt = model.prompts[-1]
    questions = [m.content for m in last_prompt if isinstance(m, HumanMessage)]
    assert questions[-1] == "hello 5" and "hello 0" not in questions and len(questions) < 6


async def test_an_unusable_thread_database_is_one_clear_error(tmp_path):
    not_sqlite = tmp_path / "notes.sqlite"
    not_sqlite.write_text("not a database")
    with pytest.raises(ThreadStoreError, match=r"notes\.sqlite: file is not a database\. Point GPUDOC_DB_PATH"):
        async with open_checkpointer(not_sqlite):
            pass
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    with pytest.raises(ThreadStoreError, match=r"cannot open the thread database .*a-file/threads\.sqlite"):
        async with open_checkpointer(blocked / "threads.sqlite"):
            pass
