"""Every HTTP route of ``gpudoc serve``, in process (ASGI), with the real agent on the stub vLLM server.

The language model is the stub OpenAI-compatible server of ``tests/doubles`` (a TEST DOUBLE that
speaks vLLM's wire format); the cluster is the simulator with its clock frozen.
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from gpudoc.server.app import create_app
from gpudoc.server.original_api import NO_MODEL_LABEL
from gpudoc.server.settings import ServerSettings
from gpudoc.tools.sim.source import SimSource
from tests.doubles.stub_vllm import STUB_MODEL, StubVllmServer

HOT_QUESTION = "Is node-2 running hot?"


@pytest.fixture
def stub() -> Iterator[StubVllmServer]:
    """A fresh stub vLLM server per test: the OpenAI client caches connections per base URL and
    event loop, and each test runs on a loop of its own."""
    server = StubVllmServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def closed_port_url() -> str:
    """A base URL nothing listens on: the LLM is down."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def settings_for(tmp_path: Path, llm_base_url: str, **overrides: Any) -> ServerSettings:
    values: dict[str, Any] = {
        "llm_base_url": llm_base_url,
        "llm_model": STUB_MODEL,
        "llm_max_retries": 0,
        "db_path": tmp_path / "threads.sqlite",
        "api_token": None,
        "cors_origins": "",
        **overrides,
    }
    return ServerSettings(**values)


@asynccontextmanager
async def serving(settings: ServerSettings) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan running, and a client talking to it in process."""
    app = create_app(settings, source=SimSource.create(seed=42, nodes=4, scenarios=["thermal-throttle@node-2/gpu-3"],
                                                       realtime=False))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gpudoc.test", timeout=30) as client:
            yield client


def sse_records(text: str) -> list[tuple[str, Any]]:
    """(event, decoded data) pairs of a server-sent-events body."""
    records = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        event, data = None, []
        for line in block.split("\n"):
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip())
        if event or data:
            records.append((event or "message", json.loads("\n".join(data)) if data else None))
    return records


def human(text: str) -> dict[str, str]:
    return {"type": "human", "content": text}


def questions_sent_to_llm(stub: StubVllmServer) -> list[str]:
    """The human messages of the stub's last request: what the model saw of the conversation."""
    messages = stub.requests[-1]["messages"]
    return [m["content"] for m in messages if m["role"] == "user"]


def metric_value(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        metric, _, label_text = head.partition("{")
        if metric != name:
            continue
        if all(f'{key}="{val}"' in label_text for key, val in labels.items()):
            total += float(value)
    return total


# ------------------------------------------------------------------------------------------------
# LangServe at /agent
# ------------------------------------------------------------------------------------------------


async def test_invoke_returns_the_answer_with_tool_steps_and_the_turn(tmp_path: Path, stub: StubVllmServer) -> None:
    async with serving(settings_for(tmp_path, stub.url)) as client:
        response = await client.post("/agent/invoke", json={"input": {"messages": [human(HOT_QUESTION)]}})
    assert response.status_code == 200, response.text
    output = response.json()["output"]
    assert output["type"] == "ai"
    turn = output["response_metadata"]["gpudoc_turn"]
    assert output["content"].strip() == turn["answer"].strip() != ""
    assert turn["degraded"] is False
    events = output["additional_kwargs"]["gpudoc_events"]
    starts = [e for e in events if e["type"] == "tool_start"]
    ends = [e for e in events if e["type"] == "tool_end"]
    assert {e["name"] for e in starts} == {"get_gpu_history", "get_node_details"}
    assert starts[0]["arguments"]["node_id"] == "node-2"
    history = next(e for e in ends if e["name"] == "get_gpu_history")
    assert json.loads(history["result"])["node"] == "node-2"
    assert {c["name"] for c in turn["tool_calls"]} == {"get_gpu_history", "get_node_details"}


async def test_stream_carries_tokens_one_by_one_and_tool_steps_before_the_answer(
    tmp_path: Path, stub: StubVllmServer
) -> None:
    async with serving(settings_for(tmp_path, stub.url)) as client:
        response = await client.post("/agent/stream", json={"input": {"messages": [human(HOT_QUESTION)]}})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    chunks = [data for event, data in sse_records(response.text) if event == "data"]
    kinds: list[str] = []
    for chunk in chunks:
        for event in chunk["additional_kwargs"].get("gpudoc_events", []):
            kinds.append(event["type"])
        if chunk["content"]:
            kinds.append("token")
        if chunk["additional_kwargs"].get("reasoning_content"):
            kinds.append("reasoning")
    token_chunks = [c["content"] for c in chunks if c["content"]]
    assert len(token_chunks) > 5, "the answer must arrive in many chunks, not as one message"
    assert kinds.index("tool_start") < kinds.index("tool_end") < kinds.index("token")
    assert "reasoning" in kinds  # the stub (like Nemotron) reasons before answering
    turn = chunks[-1]["response_metadata"]["gpudoc_turn"]
    assert "".join(token_chunks).strip() == turn["answer"].strip()
    assert sse_records(response.text)[-1][0] == "end"


async def test_stream_events_and_batch(tmp_path: Path, stub: StubVllmServer) -> None:
    async with serving(settings_for(tmp_path, stub.url)) as client:
        events = await client.post("/agent/stream_events", json={"input": {"messages": [human("Why are jobs pending?")]}})
        batch = await client.post(
            "/agent/batch",
            json={"inputs": [{"messages": [human("Why are jobs pending?")]}, {"messages": [human(HOT_QUESTION)]}]},
        )
    assert events.status_code == 200
    records = [data for event, data in sse_records(events.text) if event == "data"]
    streamed = [r for r in records if r["event"] == "on_chain_stream" and r["name"] == "/agent"]
    assert streamed and any(r["data"]["chunk"]["content"] for r in streamed)
    assert records[-1]["event"] == "on_chain_end"
    assert batch.status_code == 200, batch.text
    outputs = batch.json()["output"]
    assert len(outputs) == 2
    assert {c["name"] for c in outputs[0]["response_metadata"]["gpudoc_turn"]["tool_calls"]} >= {"get_slurm_jobs"}
    assert {c["name"] for c in outputs[1]["response_metadata"]["gpudoc_turn"]["tool_calls"]} >= {"get_gpu_history"}


async def test_playground_is_the_chat_playground_and_its_schemas_qualify(tmp_path: Path, stub: StubVllmServer) -> None:
    """LangServe's chat playground accepts a messages-list input and an AI-message output (type enum)."""
    async with serving(settings_for(tmp_path, stub.url)) as client:
        page = await client.get("/agent/playground/")
        input_schema = (await client.get("/agent/input_schema")).json()
        output_schema = (await client.get("/agent/output_schema")).json()
        config_schema = (await client.get("/agent/config_schema")).json()
    assert page.status_code == 200 and "<html" in page.text.lower()
    assert list(input_schema["properties"]) == ["messages"]
    assert input_schema["properties"]["messages"]["type"] == "array"
    [member] = output_schema["anyOf"]
    message = output_schema["$defs"][member["$ref"].rsplit("/", 1)[1]]
    assert "ai" in message["properties"]["type"]["enum"]
    assert "thread_id" in json.dumps(config_schema)


async def test_playground_style_history_without_thread_reaches_the_model(tmp_path: Path, stub: StubVllmServer) -> None:
    """Without a thread id the messages before the question are the conversation so far."""
    conversation = [human("Remember the word tangerine."), {"type": "ai", "content": "Noted."}, human(HOT_QUESTION)]
    async with serving(settings_for(tmp_path, stub.url)) as client:
        response = await client.post("/agent/stream_log", json={"input": {"messages": conversation}})
    assert response.status_code == 200
    assert questions_sent_to_llm(stub) == ["Remember the word tangerine.", HOT_QUESTION]


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


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({"input": {"messages": []}}, "messages is empty"),
        ({"input": {"messages": [{"type": "ai", "content": "hello"}]}}, "last message must be the question"),
        ({"input": {"messages": [human("   ")]}}, "question (last message) is empty"),
        ({"input": {"messages": [human("x" * 101)]}}, "limit is 100 (GPUDOC_MAX_MESSAGE_CHARS)"),
        ({"input": {"messages": [human("a"), human("b"), human("c"), human("d")]}}, "GPUDOC_MAX_HISTORY_MESSAGES"),
        ({"input": {"question": "wrong shape"}}, "messages"),
        ({"input": {"messages": [human("ok")]}, "config": {"configurable": {"thread_id": "bad id!"}}}, "thread_id"),
    ],
)
async def test_agent_rejects_bad_input_with_422_and_the_reason(
    tmp_path: Path, stub: StubVllmServer, payload: dict[str, Any], reason: str
) -> None:
    settings = settings_for(tmp_path, stub.url, max_message_chars=100, max_history_messages=2)
    async with serving(settings) as client:
        response = await client.post("/agent/invoke", json=payload)
    assert response.status_code == 422
    assert reason in response.text
    assert stub.requests == []


async def test_oversized_and_malformed_bodies(tmp_path: Path, stub: StubVllmServer) -> None:
    settings = settings_for(tmp_path, stub.url, max_body_bytes=2048)
    async with serving(settings) as client:
        too_big = await client.post("/agent/invoke", json={"input": {"messages": [human("x" * 4000)]}})

        async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: counted while reading
            for _ in range(8):
                yield b" " * 512

        too_big_chunked = await client.post("/api/agent/chat", content=chunked(),
                                            headers={"content-type": "application/json"})
        malformed = await client.post("/agent/invoke", content=b"{not json", headers={"content-type": "application/json"})
    assert too_big.status_code == 413
    assert "GPUDOC_MAX_BODY_BYTES" in too_big.json()["details"]
    assert too_big_chunked.status_code == 413
    assert malformed.status_code == 422


# ------------------------------------------------------------------------------------------------
# The original GPU Watchdog API
# ------------------------------------------------------------------------------------------------


async def test_original_chat_returns_response_and_tool_calls(tmp_path: Path, stub: StubVllmServer) -> None:
    history = [{"role": "user", "content": "Remember the word tangerine."}, {"role": "assistant", "content": "Noted."}]
    async with serving(settings_for(tmp_path, stub.url)) as client:
        response = await client.post("/api/agent/chat", json={"message": HOT_QUESTION, "history": history})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"response", "toolCalls"}
    assert body["response"].strip()
    assert {call["name"] for call in body["toolCalls"]} == {"get_gpu_history", "get_node_details"}
    for call in body["toolCalls"]:
        assert set(call) == {"name", "arguments", "result"}
        assert call["arguments"]["node_id"] == "node-2"
        assert call["result"]["node"] == "node-2"  # the tool's JSON, as an object
    assert questions_sent_to_llm(stub) == ["Remember the word tangerine.", HOT_QUESTION]


@pytest.mark.parametrize(
    ("payload", "detail"),
    [
        ({}, "message: Field required"),
        ({"message": ""}, "message: message is empty"),
        ({"message": 42}, "message: Input should be a valid string"),
        ({"message": "hi", "history": [{"role": "system", "content": "x"}]}, "history.0.role"),
        ({"message": "hi", "history": "not a list"}, "history"),
        ({"message": "x" * 101}, "the limit is 100 (GPUDOC_MAX_MESSAGE_CHARS)"),
        ({"message": "hi", "history": [{"role": "user", "content": "x"}] * 3}, "GPUDOC_MAX_HISTORY_MESSAGES"),
    ],
)
async def test_original_chat_rejects_invalid_requests_with_400(
    tmp_path: Path, stub: StubVllmServer, payload: dict[str, Any], detail: str
) -> None:
    settings = settings_for(tmp_path, stub.url, max_message_chars=100, max_history_messages=2)
    async with serving(settings) as client:
        response = await client.post("/api/agent/chat", json=payload)
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "Invalid request"
    assert any(detail in line for line in body["details"]), body["details"]
    assert body["message"].startswith("Invalid request: ") and detail in body["message"]  # what the panel shows
    assert stub.requests == []


async def test_original_chat_rejects_a_body_that_is_not_json(tmp_path: Path, stub: StubVllmServer) -> None:
    async with serving(settings_for(tmp_path, stub.url)) as client:
        response = await client.post("/api/agent/chat", content=b"message=hi",
                                     headers={"content-type": "application/json"})
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "Invalid request"
    assert body["details"][0].startswith("the body is not valid JSON: "), body["details"]
    assert stub.requests == []


async def test_original_health_reports_the_model_or_the_error(tmp_path: Path, stub: StubVllmServer) -> None:
    async with serving(settings_for(tmp_path, stub.url)) as client:
        up = (await client.get("/api/agent/health")).json()
    down_url = closed_port_url()
    async with serving(settings_for(tmp_path, down_url)) as client:
        down = (await client.get("/api/agent/health")).json()
    assert up == {"available": True, "model": STUB_MODEL, "llmAvailable": True}
    # Without the model the chat still answers (the labelled diagnosis): GPU Watchdog's panel
    # must keep its input enabled, and show that no model is behind the answers.
    assert (down["available"], down["llmAvailable"]) == (True, False)
    assert down["model"] == NO_MODEL_LABEL and "/" not in NO_MODEL_LABEL  # the panel shows the part after "/"
    assert down_url in down["error"]


async def test_original_health_says_unavailable_while_the_agent_is_not_running(tmp_path: Path, stub: StubVllmServer) -> None:
    app = create_app(settings_for(tmp_path, stub.url), source=SimSource.create(nodes=2, realtime=False))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gpudoc.test") as client:
        health = (await client.get("/api/agent/health")).json()  # no lifespan: nothing runs
        chat = await client.post("/api/agent/chat", json={"message": "hi"})
    assert health["available"] is False and "not running" in health["error"]
    assert chat.status_code == 503 and chat.json()["message"].startswith("The agent is not running: ")


async def test_original_logs_show_the_server_recent_lines(tmp_path: Path) -> None:
    async with serving(settings_for(tmp_path, closed_port_url())) as client:
        logging.getLogger("gpudoc.server.api").warning("probe line %d for the panel", 7)
        logs = await client.get("/api/agent/logs", params={"lines": 3})
        many = await client.get("/api/agent/logs", params={"lines": "lots"})
    body = logs.json()
    assert set(body) == {"logs", "loading"} and body["loading"] is False
    assert len(body["logs"].splitlines()) <= 3
    assert "probe line 7 for the panel" in many.json()["logs"]  # ?lines=lots reads as the default 100


async def test_without_the_llm_answers_are_degraded_and_counted(tmp_path: Path) -> None:
    async with serving(settings_for(tmp_path, closed_port_url())) as client:
        chat = await client.post("/api/agent/chat", json={"message": HOT_QUESTION})
        invoke = await client.post("/agent/invoke", json={"input": {"messages": [human(HOT_QUESTION)]}})
        metrics = (await client.get("/metrics")).text
    assert chat.status_code == 200 and chat.json()["response"].strip()
    turn = invoke.json()["output"]["response_metadata"]["gpudoc_turn"]
    assert turn["degraded"] is True and turn["degraded_reason"]
    assert metric_value(metrics, "gpudoc_degraded_answers_total") == 2
    assert metric_value(metrics, "gpudoc_agent_turns_total", outcome="degraded") == 2


# ------------------------------------------------------------------------------------------------
# Operations, auth, CORS, request ids, the page
# ------------------------------------------------------------------------------------------------


async def test_healthz_and_readyz(tmp_path: Path, stub: StubVllmServer) -> None:
    async with serving(settings_for(tmp_path, stub.url)) as client:
        health = await client.get("/healthz")
        ready = await client.get("/readyz")
    down_url = closed_port_url()
    async with serving(settings_for(tmp_path, down_url)) as client:
        not_ready = await client.get("/readyz")
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    assert ready.status_code == 200
    assert ready.json()["ready"] is True
    assert ready.json()["checks"]["source"]["detail"] == "source 'sim' answers: 4 nodes"
    assert not_ready.status_code == 503
    checks = not_ready.json()["checks"]
    assert checks["llm"]["ok"] is False and down_url in checks["llm"]["detail"]
    assert checks["source"]["ok"] is True


async def test_metrics_count_requests_llm_calls_tokens_and_tools(tmp_path: Path, stub: StubVllmServer) -> None:
    async with serving(settings_for(tmp_path, stub.url)) as client:
        await client.post("/agent/invoke", json={"input": {"messages": [human(HOT_QUESTION)]}})
        await client.post("/agent/invoke", json={"input": {"messages": []}})
        response = await client.get("/metrics")
    text = response.text
    assert response.headers["content-type"].startswith("text/plain")
    assert metric_value(text, "gpudoc_http_requests_total", route="/agent/invoke", status="200") == 1
    assert metric_value(text, "gpudoc_http_requests_total", route="/agent/invoke", status="422") == 1
    assert metric_value(text, "gpudoc_http_request_duration_seconds_count", route="/agent/invoke") == 2
    assert metric_value(text, "gpudoc_llm_calls_total", outcome="ok") == len(stub.requests) == 2
    assert metric_value(text, "gpudoc_llm_tokens_total", kind="completion") > 0
    assert metric_value(text, "gpudoc_tool_calls_total", tool="get_gpu_history", outcome="ok") == 1
    assert metric_value(text, "gpudoc_agent_turns_total", outcome="answered") == 1
    assert metric_value(text, "gpudoc_degraded_answers_total") == 0


async def test_bearer_token_protects_agent_and_api_routes_only(tmp_path: Path, stub: StubVllmServer) -> None:
    settings = settings_for(tmp_path, stub.url, api_token="s3cret")
    invoke = {"input": {"messages": [human(HOT_QUESTION)]}}
    async with serving(settings) as client:
        refused = [
            await client.post("/agent/invoke", json=invoke),
            await client.post("/agent/stream", json=invoke, headers={"Authorization": "Bearer wrong"}),
            await client.get("/agent/input_schema"),
            await client.post("/api/agent/chat", json={"message": "hi"}, headers={"Authorization": "Basic s3cret"}),
            await client.get("/api/agent/health"),
        ]
        allowed = await client.post("/agent/invoke", json=invoke, headers={"Authorization": "Bearer s3cret"})
        health = await client.get("/api/agent/health", headers={"Authorization": "bearer s3cret"})
        open_paths = [await client.get(path) for path in ("/", "/healthz", "/static/app.js", "/agent/playground/")]
    for response in refused:
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert "GPUDOC_API_TOKEN" in response.json()["details"]
        assert response.json()["message"].startswith("Unauthorized: ")  # the chat panel shows this
    assert allowed.status_code == 200 and health.status_code == 200
    assert [r.status_code for r in open_paths] == [200, 200, 200, 200]
    assert len(stub.requests) == 2  # only the authorised turn reached the model


async def test_without_a_token_setting_no_header_is_needed(tmp_path: Path, stub: StubVllmServer) -> None:
    async with serving(settings_for(tmp_path, stub.url, api_token="")) as client:
        response = await client.post("/api/agent/chat", json={"message": HOT_QUESTION})
    assert response.status_code == 200


async def test_cors_allows_only_listed_origins_and_preflight_needs_no_token(
    tmp_path: Path, stub: StubVllmServer
) -> None:
    settings = settings_for(tmp_path, stub.url, cors_origins="https://watchdog.example, http://localhost:5173",
                            api_token="s3cret")
    async with serving(settings) as client:
        preflight = await client.options("/api/agent/chat", headers={
            "Origin": "https://watchdog.example", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type"})
        allowed = await client.get("/api/agent/health", headers={"Origin": "http://localhost:5173",
                                                                 "Authorization": "Bearer s3cret"})
        foreign = await client.get("/api/agent/health", headers={"Origin": "https://evil.example",
                                                                 "Authorization": "Bearer s3cret"})
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://watchdog.example"
    assert allowed.headers["access-control-allow-origin"] == "http://localhost:5173"
    assert "access-control-allow-origin" not in foreign.headers


async def test_request_ids_are_echoed_or_created(tmp_path: Path, stub: StubVllmServer) -> None:
    async with serving(settings_for(tmp_path, stub.url)) as client:
        echoed = await client.get("/healthz", headers={"X-Request-Id": "incident-42.a"})
        created = await client.get("/healthz")
        sanitised = await client.get("/healthz", headers={"X-Request-Id": "bad id\twith spaces"})
        refused = await client.post("/agent/invoke", json={"input": {"messages": []}}, headers={"X-Request-Id": "r-1"})
    assert echoed.headers["x-request-id"] == "incident-42.a"
    assert len(created.headers["x-request-id"]) == 32
    assert sanitised.headers["x-request-id"] != "bad id\twith spaces"
    assert refused.headers["x-request-id"] == "r-1"


async def test_chat_page_and_vendored_libraries_are_served(tmp_path: Path, stub: StubVllmServer) -> None:
    async with serving(settings_for(tmp_path, stub.url)) as client:
        page = await client.get("/")
        script = await client.get("/static/app.js")
        marked = await client.get("/static/vendor/marked.min.js")
        purify = await client.get("/static/vendor/purify.min.js")
        missing = await client.get("/static/nope.js")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'src="static/app.js"' in page.text
    assert "agent/stream" in script.text
    assert marked.status_code == 200 and "marked v" in marked.text[:200]
    assert purify.status_code == 200 and "@license DOMPurify" in purify.text[:200]
    assert missing.status_code == 404


def test_serve_refuses_an_unusable_thread_database_before_listening(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from gpudoc.cli import main

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert main(["serve", "--port", "0", "--db-path", str(blocker / "threads.sqlite"),
                 "--llm-base-url", "http://127.0.0.1:9/v1"]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("gpudoc: error: cannot open the thread database ")
    assert "GPUDOC_DB_PATH" in captured.err and "Traceback" not in captured.err
    assert "chat page on" not in captured.out  # it stopped before binding the port


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
