"""Conversation threads over HTTP, in process: a thread continues by header or config and
survives a restart; stateless turns keep nothing.

The language model is the stub vLLM server of ``tests/doubles`` (a TEST DOUBLE that speaks vLLM's
wire format; the ``stub`` fixture of ``tests/conftest.py``); the cluster is the simulator with its
clock frozen (``tests/served_app.py``).
"""

from __future__ import annotations

from pathlib import Path

from tests.doubles.stub_vllm import StubVllmServer
from tests.served_app import HOT_QUESTION, human, questions_sent_to_llm, serving, settings_for


async def test_thread_continues_across_requests_by_header_and_by_config(tmp_path: Path, stub: StubVllmServer) -> None:
    async with serving(settings_for(tmp_path, stub.url)) as client:
        first = await client.post("/agent/invoke", json={"input": {"messages": [human("Why are jobs pending?")]}},
                                  headers={"X-Thread-Id": "ops-1"})
        second = await client.post(
            "/agent/invoke",
            json={"input": {"messages": [human(HOT_QUESTION)]}, "config": {"configurable": {"thread_id": "ops-1"}}},
        )
        assert questions_sent_to_llm(stub) == ["Why are jobs pending?", HOT_QUESTION]
        other = await client.post("/agent/invoke", json={"input": {"messages": [human(HOT_QUESTION)]}},
                                  headers={"X-Thread-Id": "ops-2"})
        assert questions_sent_to_llm(stub) == [HOT_QUESTION]
    for response in (first, second, other):
        assert response.status_code == 200, response.text
    assert second.json()["output"]["response_metadata"]["gpudoc_turn"]["thread_id"] == "ops-1"


async def test_thread_survives_a_restart(tmp_path: Path, stub: StubVllmServer) -> None:
    settings = settings_for(tmp_path, stub.url)
    async with serving(settings) as client:
        response = await client.post("/agent/invoke", json={"input": {"messages": [human("Why are jobs pending?")]}},
                                     headers={"X-Thread-Id": "night-shift"})
        assert response.status_code == 200
    async with serving(settings) as client:  # a new app, the same SQLite file
        response = await client.post("/agent/invoke", json={"input": {"messages": [human(HOT_QUESTION)]}},
                                     headers={"X-Thread-Id": "night-shift"})
        assert response.status_code == 200
    assert questions_sent_to_llm(stub) == ["Why are jobs pending?", HOT_QUESTION]


async def test_stateless_turns_leave_no_threads_behind(tmp_path: Path, stub: StubVllmServer) -> None:
    """The original API and thread-less /agent calls carry their history: nothing is kept for them."""
    import sqlite3

    settings = settings_for(tmp_path, stub.url)
    async with serving(settings) as client:
        chat = await client.post("/api/agent/chat", json={"message": HOT_QUESTION})
        invoke = await client.post("/agent/invoke", json={"input": {"messages": [human(HOT_QUESTION)]}})
        kept = await client.post("/agent/invoke", json={"input": {"messages": [human(HOT_QUESTION)]}},
                                 headers={"X-Thread-Id": "ops-kept"})
    assert [r.status_code for r in (chat, invoke, kept)] == [200, 200, 200]
    with sqlite3.connect(settings.db_path) as db:
        threads = {row[0] for row in db.execute("SELECT DISTINCT thread_id FROM checkpoints")}
    assert threads == {"ops-kept"}
