"""The original GPU Watchdog API (``/api/agent/*``), in process: chat, health and logs as its
panel reads them, and answers without the model.

The language model is the stub vLLM server of ``tests/doubles`` (a TEST DOUBLE that speaks vLLM's
wire format; the ``stub`` fixture of ``tests/conftest.py``); the cluster is the simulator with its
clock frozen (``tests/served_app.py``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import httpx

from gpudoc.server.app import create_app
from gpudoc.server.original_api import NO_MODEL_LABEL
from gpudoc.tools.sim.source import SimSource
from tests.doubles.stub_vllm import STUB_MODEL, StubVllmServer
from tests.served_app import (
    HOT_QUESTION,
    closed_port_url,
    human,
    metric_value,
    questions_sent_to_llm,
    serving,
    settings_for,
)


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
