"""The server under abuse and on a bad day, in process: malformed requests, turns at once on one
thread, a store that fails, a turn past its deadline, too many turns, health checks that must not
leak, a model that invents tool names.

The language model is the stub vLLM server of ``tests/doubles`` (a TEST DOUBLE); the cluster is
the simulator with its clock frozen.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from gpudoc.graph.agent import build_agent
from gpudoc.graph.checkpoint import open_checkpointer
from gpudoc.graph.runner import run_turn
from gpudoc.tools.sim.source import SimSource
from tests.doubles.stub_vllm import StubReply, StubToolCall, StubVllmServer, keyword_policy
from tests.served_app import closed_port_url, human, metric_value, running, settings_for, sse_records

QUESTION = "Is node-2 running hot?"


# ------------------------------------------------------------------------------------------------
# Malformed requests: a 4xx with a JSON body of the documented shape, never a 500
# ------------------------------------------------------------------------------------------------

MALFORMED = [
    ("/agent/invoke", b'{"input": {"messages": [{"type": "human", "content": "hot? \xff\xfe"}]}}', 422),
    ("/agent/invoke", json.dumps({"input": {"messages": [{"content": "no type"}]}}).encode(), 422),
    ("/agent/stream", json.dumps({"input": {"messages": [
        {"type": "ai", "content": "x", "tool_calls": [{"a": 1}]}, human(QUESTION)]}}).encode(), 422),
    ("/agent/batch", json.dumps({"inputs": [{"messages": []}]}).encode(), 422),
    ("/agent/invoke", b'{"input": ' + b"[" * 40000 + b"]" * 40000 + b"}", 422),
    ("/agent/invoke", b'{"input": {"messages": [{"type": "human", "content": "hot? \\ud800"}]}}', 422),
    ("/api/agent/chat", b'{"message": "hot? \\udfff"}', 400),
    ("/api/agent/chat", b'{"message": ' + b"[" * 40000 + b"]" * 40000 + b"}", 400),
    ("/api/agent/chat", b'{"message": "\xc3\x28"}', 400),
]


@pytest.mark.parametrize(("path", "body", "status"), MALFORMED)
async def test_malformed_requests_get_a_4xx_that_says_why(tmp_path: Path, path: str, body: bytes, status: int):
    with StubVllmServer() as llm_url:
        async with running(settings_for(tmp_path, llm_url)) as (app, client):
            response = await client.post(path, content=body, headers={"content-type": "application/json"})
            schema = app.openapi()
    assert response.status_code == status, response.text
    payload = response.json()
    if status == 422:  # LangServe's routes: FastAPI's validation shape, as declared
        assert [set(item) >= {"loc", "msg", "type"} for item in payload["detail"]] == [True] * len(payload["detail"])
        assert "HTTPValidationError" in json.dumps(schema["paths"][path]["post"]["responses"]["422"])
    else:  # the original API: its error shape, as declared
        assert set(payload) == {"error", "details", "message"} and payload["message"].startswith("Invalid request: ")
        assert "ErrorResponse" in json.dumps(schema["paths"][path]["post"]["responses"]["400"])


async def test_every_status_the_guards_and_handlers_answer_is_documented(tmp_path: Path):
    settings = settings_for(tmp_path, closed_port_url(), api_token="s3cret")
    async with running(settings) as (app, client):
        schema = (await client.get("/openapi.json")).json()
    paths = schema["paths"]
    for path in ("/agent/invoke", "/agent/batch", "/agent/stream", "/agent/stream_events", "/agent/c/{config_hash}/invoke"):
        assert {"401", "409", "413", "422", "429", "500", "503"} <= set(paths[path]["post"]["responses"]), path
    assert {"400", "401", "413", "429", "500", "503"} <= set(paths["/api/agent/chat"]["post"]["responses"])
    assert "401" in paths["/api/agent/health"]["get"]["responses"] and "401" not in paths["/healthz"]["get"]["responses"]
    assert "Retry-After" in paths["/agent/stream"]["post"]["responses"]["429"]["headers"]
    assert set(schema["components"]["schemas"]["ErrorResponse"]["required"]) == {"error", "message"}


# ------------------------------------------------------------------------------------------------
# Turns at once on one thread
# ------------------------------------------------------------------------------------------------


async def test_turns_at_once_on_one_thread_all_stay_in_it_in_order(tmp_path: Path):
    questions = [f"Is node-{n} running hot?" for n in (0, 1, 2, 3, 0)]
    with StubVllmServer(token_delay=0.002) as llm_url:
        async with running(settings_for(tmp_path, llm_url)) as (app, client):
            async def ask(question: str) -> httpx.Response:
                return await client.post("/agent/stream", json={"input": {"messages": [human(question)]}},
                                         headers={"X-Thread-Id": "shared"})

            tasks = []
            for question in questions:  # started in this order, all before the first has finished
                tasks.append(asyncio.create_task(ask(question)))
                await asyncio.sleep(0.01)
            responses = await asyncio.gather(*tasks)
            state = await app.state.runtime.turns.agent.aget_state({"configurable": {"thread_id": "shared"}})
    assert [r.status_code for r in responses] == [200] * 5
    assert all(any(event == "end" for event, _ in sse_records(r.text)) for r in responses)
    kept = [m.content for m in state.values["messages"] if m.type == "human"]
    assert kept == questions  # every turn kept, in the order they arrived
    answers = [m for m in state.values["messages"] if m.type == "ai" and not m.tool_calls]
    assert len(answers) == 5
    stages = [[e["stage"] for _, data in sse_records(r.text) if isinstance(data, dict)
               for e in data.get("additional_kwargs", {}).get("gpudoc_events", []) if e["type"] == "status"]
              for r in responses]
    assert sum("queued" in s for s in stages) >= 3  # the later ones waited for the turn before them


# ------------------------------------------------------------------------------------------------
# A store that fails
# ------------------------------------------------------------------------------------------------


async def test_a_store_that_cannot_be_written_fails_the_turn_visibly_and_readiness(tmp_path: Path):
    with StubVllmServer() as llm_url:
        async with running(settings_for(tmp_path, llm_url)) as (app, client):
            assert (await client.get("/readyz")).status_code == 200
            saver = app.state.runtime.checkpointer
            await saver.conn.execute("PRAGMA query_only = ON")  # the database refuses every write from now on
            stream = await client.post("/agent/stream", json={"input": {"messages": [human(QUESTION)]}})
            invoke = await client.post("/agent/invoke", json={"input": {"messages": [human(QUESTION)]},
                                                              "config": {"configurable": {"thread_id": "t-1"}}})
            chat = await client.post("/api/agent/chat", json={"message": QUESTION})
            ready = await client.get("/readyz")
            await saver.conn.execute("PRAGMA query_only = OFF")
            recovered = await client.get("/readyz")
    errors = [e for _, data in sse_records(stream.text) if isinstance(data, dict)
              for e in data.get("additional_kwargs", {}).get("gpudoc_events", []) if e["type"] == "error"]
    assert stream.status_code == 200 and len(errors) == 1  # a stream's status was sent before the failure
    assert errors[0]["kind"] == "store" and errors[0]["message"].startswith("The turn was not saved: ")
    assert invoke.status_code == 503 and invoke.json()["error"] == "The turn was not saved"
    assert chat.status_code == 503 and chat.json()["message"].startswith("The turn was not saved: ")
    assert "readonly" in chat.json()["details"] and "GPUDOC_DB_PATH" in chat.json()["details"]
    assert ready.status_code == 503 and ready.json()["checks"]["store"]["ok"] is False
    assert "readonly" in ready.json()["checks"]["store"]["detail"]
    assert recovered.status_code == 200 and recovered.json()["checks"]["store"]["ok"] is True


async def test_a_store_corrupted_in_the_middle_is_not_ready(tmp_path: Path):
    db = tmp_path / "threads.sqlite"
    source = SimSource.create(seed=42, nodes=4, realtime=False)
    settings = settings_for(tmp_path, closed_port_url())
    async with open_checkpointer(db) as saver:  # a store with some history: degraded turns, no model needed
        agent = build_agent(source=source, llm=None, checkpointer=saver, settings=settings)
        for index in range(6):
            await run_turn(agent, QUESTION, thread_id=f"old-{index}")
    size = db.stat().st_size
    with db.open("r+b") as handle:  # pages in the middle overwritten; the header and schema page intact
        handle.seek(size // 4)
        handle.write(b"\xff" * (size // 2))
    async with running(settings) as (app, client):
        ready = await client.get("/readyz")
        old = await client.post("/api/agent/chat", json={"message": QUESTION}, headers={"X-Thread-Id": "old-2"})
        followup = await client.post("/agent/invoke", json={"input": {"messages": [human(QUESTION)]},
                                                            "config": {"configurable": {"thread_id": "old-2"}}})
    assert ready.status_code == 503
    store = ready.json()["checks"]["store"]
    assert store["ok"] is False and "malformed" in store["detail"]
    assert followup.status_code in (500, 503) and followup.json()["message"]
    assert old.status_code in (200, 503)  # a private thread may avoid the broken pages; never a traceback


# ------------------------------------------------------------------------------------------------
# The turn deadline
# ------------------------------------------------------------------------------------------------


def slow_answer_policy(delay_s: float):
    """Tools as usual, then an answer that takes ``delay_s`` before its first byte."""
    import time

    def policy(body: dict[str, Any]) -> StubReply:
        if any(message.get("role") == "tool" for message in body.get("messages") or []):
            time.sleep(delay_s)
        return keyword_policy(body)

    return policy


async def test_a_turn_past_its_deadline_ends_with_a_labelled_partial_answer_kept_in_the_thread(tmp_path: Path):
    # The model's answer would take 20 s; the deadline (4 s) leaves the plan and the tools time to
    # run on a busy machine, and cuts the turn long before the answer could come.
    stub = StubVllmServer(policy=slow_answer_policy(20.0))
    with stub as llm_url:
        async with running(settings_for(tmp_path, llm_url, turn_timeout_s=4.0)) as (app, client):
            started = asyncio.get_running_loop().time()
            chat = await client.post("/api/agent/chat", json={"message": QUESTION})
            took = asyncio.get_running_loop().time() - started
            invoke = await client.post("/agent/invoke", json={"input": {"messages": [human(QUESTION)]},
                                                              "config": {"configurable": {"thread_id": "slow"}}})
            state = await app.state.runtime.turns.agent.aget_state({"configurable": {"thread_id": "slow"}})
    assert chat.status_code == 200 and took < 20.0  # cut by the deadline, not waiting for the model
    answer = chat.json()["response"]
    assert "time limit of 4 s (GPUDOC_TURN_TIMEOUT_S)" in answer
    assert {c["name"] for c in chat.json()["toolCalls"]} == {"get_gpu_history", "get_node_details"}
    turn = invoke.json()["output"]["response_metadata"]["gpudoc_turn"]
    assert turn["answer_cut_short"] is True and "GPUDOC_TURN_TIMEOUT_S" in turn["answer"]
    last = state.values["messages"][-1]
    assert last.type == "ai" and last.content == turn["answer"]  # the thread holds what the client got


# ------------------------------------------------------------------------------------------------
# Limits: the batch size, turns at once
# ------------------------------------------------------------------------------------------------


async def test_a_batch_beyond_its_limit_is_refused_before_any_turn(tmp_path: Path):
    stub = StubVllmServer()
    with stub as llm_url:
        async with running(settings_for(tmp_path, llm_url, max_batch_inputs=3)) as (app, client):
            many = await client.post("/agent/batch", json={"inputs": [{"messages": [human(QUESTION)]}] * 4})
            few = await client.post("/agent/batch", json={"inputs": [{"messages": [human(QUESTION)]}] * 2})
    assert many.status_code == 422 and "GPUDOC_MAX_BATCH_INPUTS" in many.text
    assert few.status_code == 200 and len(few.json()["output"]) == 2
    assert len(stub.requests) == 4  # two turns of two model calls: none for the refused batch


async def test_turns_beyond_the_limit_get_429_with_retry_after(tmp_path: Path):
    with StubVllmServer(policy=slow_answer_policy(1.0)) as llm_url:
        async with running(settings_for(tmp_path, llm_url, max_concurrent_turns=2)) as (app, client):
            body = {"input": {"messages": [human(QUESTION)]}}
            busy = [asyncio.create_task(client.post("/agent/invoke", json=body)) for _ in range(2)]
            await asyncio.sleep(0.3)
            refused = await client.post("/agent/stream", json=body)
            refused_chat = await client.post("/api/agent/chat", json={"message": QUESTION})
            refused_batch = await client.post("/agent/batch", json={"inputs": [body["input"]]})
            health = await client.get("/healthz")
            done = await asyncio.gather(*busy)
            after = await client.post("/agent/invoke", json=body)
            metrics = (await client.get("/metrics")).text
    assert [r.status_code for r in done] == [200, 200] and after.status_code == 200
    for response in (refused, refused_chat, refused_batch):
        assert response.status_code == 429
        assert int(response.headers["retry-after"]) >= 1
        assert "GPUDOC_MAX_CONCURRENT_TURNS" in response.json()["message"]
    assert health.status_code == 200  # only turns are limited
    assert metric_value(metrics, "gpudoc_turns_refused_total") == 3
    assert metric_value(metrics, "gpudoc_turns_in_flight") == 0


# ------------------------------------------------------------------------------------------------
# Health endpoints reveal nothing internal without the token; metric labels stay bounded
# ------------------------------------------------------------------------------------------------


async def test_readiness_details_need_the_token(tmp_path: Path):
    down_url = closed_port_url()
    async with running(settings_for(tmp_path, down_url, api_token="s3cret")) as (app, client):
        anonymous = await client.get("/readyz")
        operator = await client.get("/readyz", headers={"Authorization": "Bearer s3cret"})
    assert anonymous.status_code == operator.status_code == 200  # degraded: still answers without the model
    assert anonymous.json()["degraded"] is operator.json()["degraded"] is True
    assert "127.0.0.1" not in anonymous.text and "http" not in anonymous.text
    assert anonymous.json()["checks"]["llm"]["ok"] is False and "API token" in anonymous.json()["checks"]["llm"]["detail"]
    assert down_url in operator.json()["checks"]["llm"]["detail"]


def inventing_tools_policy(body: dict[str, Any]) -> StubReply:
    """Calls a tool that does not exist once, then answers."""
    if not any(message.get("role") == "tool" for message in body.get("messages") or []):
        return StubReply(tool_calls=[StubToolCall("drop_all_tables_7f3a", "{}")])
    return StubReply(content="No such tool; nothing to report.")


async def test_a_tool_name_the_model_invents_is_counted_as_unknown(tmp_path: Path):
    with StubVllmServer(policy=inventing_tools_policy) as llm_url:
        async with running(settings_for(tmp_path, llm_url)) as (app, client):
            response = await client.post("/api/agent/chat", json={"message": "Anything odd?"})
            metrics = (await client.get("/metrics")).text
    assert response.status_code == 200
    assert "drop_all_tables" not in metrics
    assert metric_value(metrics, "gpudoc_tool_calls_total", tool="unknown", outcome="error") >= 1
