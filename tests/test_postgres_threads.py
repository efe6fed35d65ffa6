"""Threads in a real PostgreSQL 15: the checkpointer, the per-thread lock across processes, and
two server apps (two workers) sharing one database.

Each test takes a database of its own on the session's server (``postgres_server``). The model
is the stub vLLM server (a TEST DOUBLE) in this process, so the tests can read what each turn
sent it: a turn that continues a thread sends the model the thread's earlier questions.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI
from langchain_core.messages import AIMessage, HumanMessage

from gpudoc.graph.checkpoint import ThreadStoreError, probe_store
from gpudoc.graph.checkpoint_postgres import connect, open_postgres_checkpointer
from gpudoc.graph.pg_locks import PostgresThreadLocks
from gpudoc.server.settings import ServerSettings
from gpudoc.server.turns import valid_thread_id
from tests.doubles.stub_vllm import STUB_MODEL, StubVllmServer, keyword_policy
from tests.served_app import running
from tests.services import free_port


def server_settings(db_url: str, llm_url: str) -> ServerSettings:
    return ServerSettings(llm_base_url=llm_url, llm_model=STUB_MODEL, llm_max_retries=0, db_url=db_url,
                          db_pool_size=4, api_token=None, cors_origins="", readiness_timeout_s=2.0)


async def ask(client: httpx.AsyncClient, question: str, thread_id: str) -> str:
    response = await client.post("/agent/invoke", headers={"X-Thread-Id": thread_id},
                                 json={"input": {"messages": [{"type": "human", "content": question}]}})
    assert response.status_code == 200, response.text
    return response.json()["output"]["content"]


async def thread_messages(app: FastAPI, thread_id: str) -> list[Any]:
    agent = app.state.runtime.turns.agent
    state = await agent.aget_state({"configurable": {"thread_id": thread_id}})
    return list(state.values.get("messages") or [])


def questions_sent(stub: StubVllmServer) -> list[list[str]]:
    """The user messages of each request the model received, in order."""
    return [[m["content"] for m in body["messages"] if m.get("role") == "user"] for body in stub.requests]


# ---- the checkpointer ------------------------------------------------------------------------


async def test_replicas_starting_together_migrate_the_database_once(db_url: str) -> None:
    async def start_one() -> bool:
        async with open_postgres_checkpointer(db_url, pool_size=2):
            return True

    assert await asyncio.gather(*(start_one() for _ in range(3))) == [True, True, True]
    async with await psycopg.AsyncConnection.connect(db_url) as connection:
        rows = await (await connection.execute("SELECT v FROM checkpoint_migrations ORDER BY v")).fetchall()
    versions = [v for (v,) in rows]
    assert versions == list(range(len(versions))) and len(versions) > 3


async def test_readiness_probes_of_several_workers_at_once_do_not_see_each_other(db_url: str) -> None:
    async with open_postgres_checkpointer(db_url, pool_size=4) as one, \
            open_postgres_checkpointer(db_url, pool_size=4) as other:
        await asyncio.gather(*(probe_store(saver) for _ in range(8) for saver in (one, other)))
    # each probe writes a thread of its own, which no client may name
    assert not valid_thread_id("gpudoc:store-probe") and not valid_thread_id("gpudoc:store-probe:0a1b2c")
    assert valid_thread_id("gpudoc:store-probes")


async def test_an_unreachable_database_is_one_line_naming_it_without_its_password() -> None:
    url = f"postgresql://gpudoc:s3cret@127.0.0.1:{free_port()}/threads"
    with pytest.raises(ThreadStoreError) as caught:
        async with open_postgres_checkpointer(url, timeout_s=2):
            pass
    message = str(caught.value)
    assert message.startswith(f"cannot use the thread database postgresql://gpudoc@127.0.0.1:{url.split(':')[3]}")
    assert "refused" in message and "GPUDOC_DB_URL" in message and "s3cret" not in message


# ---- the per-thread lock across lock sessions (processes) ------------------------------------


async def test_a_thread_is_locked_across_sessions_and_other_threads_are_not(db_url: str) -> None:
    one, two = (PostgresThreadLocks(lambda: connect(db_url, timeout_s=5)) for _ in range(2))
    try:
        release = await one.acquire("thread-a")
        waiting = asyncio.create_task(two.acquire("thread-a"))
        release_other = await asyncio.wait_for(two.acquire("thread-b"), 5)  # another thread is free
        await asyncio.sleep(0.3)
        assert not waiting.done()  # thread-a is busy in the other session
        await release()
        release_waiting = await asyncio.wait_for(waiting, 5)
        await release_waiting()
        await release_other()
    finally:
        await one.aclose()
        await two.aclose()


async def test_turns_of_one_process_on_one_thread_queue_as_well(db_url: str) -> None:
    locks = PostgresThreadLocks(lambda: connect(db_url, timeout_s=5))
    try:
        release = await locks.acquire("thread-a")
        second = asyncio.create_task(locks.acquire("thread-a"))  # the same session would be granted it again
        await asyncio.sleep(0.2)
        assert not second.done()
        await release()
        await (await asyncio.wait_for(second, 5))()
    finally:
        await locks.aclose()


async def test_a_lost_lock_session_frees_its_threads_and_the_next_turn_reconnects(db_url: str) -> None:
    one, two = (PostgresThreadLocks(lambda: connect(db_url, timeout_s=5)) for _ in range(2))
    try:
        stale = await one.acquire("thread-a")
        async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as admin:
            await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory'")
        await (await asyncio.wait_for(two.acquire("thread-a"), 5))()  # the server freed it with the session
        await (await asyncio.wait_for(one.acquire("thread-c"), 5))()  # a new session for the next turn
        await stale()  # releasing a lock of the lost session is harmless
    finally:
        await one.aclose()
        await two.aclose()


class LateAnswers:
    """A lock session whose answers arrive late: a cancellation lands after the server has acted."""

    def __init__(self, connection: psycopg.AsyncConnection) -> None:
        self.connection = connection

    @property
    def closed(self) -> bool:
        return self.connection.closed

    async def execute(self, sql: str, params: Any) -> Any:
        cursor = await self.connection.execute(sql, params)
        await asyncio.sleep(0.4)
        return cursor

    async def close(self) -> None:
        await self.connection.close()


async def test_a_turn_cancelled_while_taking_its_lock_gives_the_lock_back(db_url: str) -> None:
    async def late() -> Any:
        return LateAnswers(await connect(db_url, timeout_s=5))

    leaving, other = PostgresThreadLocks(late), PostgresThreadLocks(lambda: connect(db_url, timeout_s=5))
    try:
        acquiring = asyncio.create_task(leaving.acquire("thread-a"))
        await asyncio.sleep(0.25)  # the lock is taken on the server; the answer is on its way
        acquiring.cancel()
        with pytest.raises(asyncio.CancelledError):
            await acquiring
        await (await asyncio.wait_for(other.acquire("thread-a"), 5))()
    finally:
        await leaving.aclose()
        await other.aclose()


# ---- two workers sharing the database ---------------------------------------------------------


async def test_a_thread_written_through_one_worker_continues_through_another_and_after_a_restart(
    db_url: str,
) -> None:
    thread = f"thread-{uuid.uuid4().hex}"
    stub = StubVllmServer()
    with stub as llm_url:
        settings = server_settings(db_url, llm_url)
        async with running(settings) as (_, first), running(settings) as (_, second):
            await ask(first, "Is node-2 running hot?", thread)
            await ask(second, "And node-3?", thread)
        assert questions_sent(stub)[-1] == ["Is node-2 running hot?", "And node-3?"]
        async with running(settings) as (app, restarted):  # every pool and session of the others is closed
            await ask(restarted, "Which GPUs need an RMA?", thread)
            messages = await thread_messages(app, thread)
    assert questions_sent(stub)[-1] == ["Is node-2 running hot?", "And node-3?", "Which GPUs need an RMA?"]
    kept = [(type(m).__name__, m.content) for m in messages if isinstance(m, HumanMessage)
            or (isinstance(m, AIMessage) and not m.tool_calls)]
    assert [text for kind, text in kept if kind == "HumanMessage"] == [
        "Is node-2 running hot?", "And node-3?", "Which GPUs need an RMA?"]
    assert [kind for kind, _ in kept] == ["HumanMessage", "AIMessage"] * 3


async def test_concurrent_turns_of_one_thread_on_two_workers_are_all_kept(db_url: str) -> None:
    thread = f"thread-{uuid.uuid4().hex}"
    questions = [f"Is node-{n} running hot?" for n in range(6)]
    with StubVllmServer(token_delay=0.002) as llm_url:  # turns long enough to overlap
        settings = server_settings(db_url, llm_url)
        async with running(settings) as (app, first), running(settings) as (_, second):
            answers = await asyncio.gather(*(ask((first, second)[n % 2], q, thread) for n, q in enumerate(questions)))
            messages = await thread_messages(app, thread)
    assert all(answers)
    asked = [m.content for m in messages if isinstance(m, HumanMessage)]
    assert sorted(asked) == sorted(questions)  # none lost, none twice
    assert sum(isinstance(m, AIMessage) and not m.tool_calls for m in messages) == len(questions)


async def test_readyz_reports_the_database_down_and_back(db_url: str, postgres_server: Any) -> None:
    with StubVllmServer() as llm_url:
        async with running(server_settings(db_url, llm_url)) as (_, client):
            assert (await client.get("/readyz")).json()["checks"]["store"]["ok"] is True
            postgres_server.stop()
            try:
                down = await client.get("/readyz")
            finally:
                postgres_server.start()
            back = await client.get("/readyz")
    assert down.status_code == 503
    store = down.json()["checks"]["store"]
    assert store["ok"] is False and "PostgreSQL is running" in store["detail"]
    assert "postgresql://postgres@127.0.0.1" in store["detail"] and "refused" in store["detail"]
    assert back.status_code == 200 and back.json()["checks"]["store"]["ok"] is True


async def test_a_turn_on_a_thread_with_the_database_down_fails_visibly_and_names_it(
    db_url: str, postgres_server: Any
) -> None:
    body = {"input": {"messages": [{"type": "human", "content": "Is node-2 running hot?"}]}}
    with StubVllmServer() as llm_url:
        async with running(server_settings(db_url, llm_url)) as (_, client):
            postgres_server.stop()
            try:
                invoked = await client.post("/agent/invoke", headers={"X-Thread-Id": "thread-down-1"}, json=body)
                streamed = await client.post("/agent/stream", headers={"X-Thread-Id": "thread-down-2"}, json=body)
            finally:
                postgres_server.start()
            again = await client.post("/agent/invoke", headers={"X-Thread-Id": "thread-down-1"}, json=body)
    assert invoked.status_code == 503
    assert "The turn was not saved" in invoked.text and "postgresql://postgres@127.0.0.1" in invoked.text
    assert streamed.status_code == 200 and '"kind":"store"' in streamed.text.replace(" ", "")
    assert again.status_code == 200  # the database is back: so are the turns


async def test_turns_without_a_thread_are_refused_at_once_when_the_database_is_down(
    db_url: str, postgres_server: Any
) -> None:
    # A pool wait of a minute: an answer before it elapses cannot have come from a pool timeout.
    patient = 60.0
    chat = {"message": "Is node-2 running hot?"}
    body = {"input": {"messages": [{"type": "human", "content": "Is node-2 running hot?"}]}}
    stub = StubVllmServer()
    with stub as llm_url:
        settings = server_settings(db_url, llm_url).model_copy(update={"db_timeout_s": patient})
        async with running(settings) as (_, client):
            postgres_server.stop()
            try:
                chatted, invoked, streamed = await asyncio.wait_for(asyncio.gather(
                    client.post("/api/agent/chat", json=chat),
                    client.post("/agent/invoke", json=body),
                    client.post("/agent/stream", json=body),
                ), timeout=patient)
            finally:
                postgres_server.start()
            asked_while_down = len(stub.requests)
            again = await client.post("/api/agent/chat", json=chat)
    database = "postgresql://postgres@127.0.0.1"
    assert chatted.status_code == 503 and invoked.status_code == 503
    for answer in (chatted.text, invoked.text, streamed.text):
        assert "The turn was not saved" in answer and database in answer and "Nothing of this turn ran" in answer
    assert '"kind":"store"' in streamed.text.replace(" ", "")
    assert asked_while_down == 0  # the model was never asked: no turn ran
    assert again.status_code == 200  # the database is back: so are the turns


async def test_a_database_lost_during_a_turn_is_named_and_its_clean_up_does_not_hold_the_answer(
    db_url: str, postgres_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    def database_goes_down(body: dict[str, Any]) -> Any:
        if postgres_server.process is not None:
            postgres_server.stop()  # after the turn read its thread, before it writes it
        return keyword_policy(body)

    with StubVllmServer(policy=database_goes_down) as llm_url:
        settings = server_settings(db_url, llm_url).model_copy(update={"db_timeout_s": 5.0})
        async with running(settings) as (_, client):
            try:
                chatted = await client.post("/api/agent/chat", json={"message": "Is node-2 running hot?"})
                cleaned_up_before_the_answer = "a private thread could not be deleted" in caplog.text
            finally:
                postgres_server.start()
    assert chatted.status_code == 503
    assert "The turn was not saved" in chatted.text and "postgresql://postgres@127.0.0.1" in chatted.text
    assert "PostgreSQL is running" in chatted.text
    # deleting the private thread waits for the same pool: it goes on after the answer
    assert not cleaned_up_before_the_answer
