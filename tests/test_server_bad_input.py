"""Bad input to the server, in process: each malformed, oversized or invalid request is refused
with its status and the reason, and reaches no model; an unusable thread database stops
``gpudoc serve`` before it listens.

The language model is the stub vLLM server of ``tests/doubles`` (a TEST DOUBLE that speaks vLLM's
wire format; the ``stub`` fixture of ``tests/conftest.py``); the cluster is the simulator with its
clock frozen (``tests/served_app.py``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.doubles.stub_vllm import StubVllmServer
from tests.served_app import human, serving, settings_for


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


async def test_original_chat_names_a_content_type_that_is_not_json(tmp_path: Path, stub: StubVllmServer) -> None:
    async with serving(settings_for(tmp_path, stub.url)) as client:
        response = await client.post("/api/agent/chat", content=b'{"message": "hi"}',
                                     headers={"content-type": "text/plain; charset=utf-8"})
        typed = await client.post("/api/agent/chat", content=b'{"message": ""}',
                                  headers={"content-type": "application/json; charset=utf-8"})
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "Invalid request"
    assert "sent as text/plain" in body["message"] and "Content-Type: application/json" in body["message"]
    assert '"message"' in body["details"][0]
    assert typed.status_code == 400 and "message is empty" in typed.text  # JSON with parameters is read as JSON
    assert stub.requests == []


async def test_stream_events_refuses_an_events_version_it_does_not_send(tmp_path: Path, stub: StubVllmServer) -> None:
    body = {"input": {"messages": [human("Is node-2 running hot?")]}}
    async with serving(settings_for(tmp_path, stub.url)) as client:
        refused = [await client.post("/agent/stream_events", json={**body, "version": version})
                   for version in ("v9", "v1", 2)]
        asked_before = len(stub.requests)
        served = await client.post("/agent/stream_events", json={**body, "version": "v2"})
    for response in refused:
        assert response.status_code == 422
        assert "this server streams astream_events version 'v2'" in response.text and "'v1' or 'v2'" in response.text
    assert "version 'v9' is not served" in refused[0].text
    assert served.status_code == 200 and "event: end" in served.text
    assert asked_before == 0 and stub.requests  # only the turn asking for v2 reached the model


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
