"""LangServe at ``/agent``, in process: invoke, stream, stream_events, batch and the playground
return the agent's answer with its tool steps.

The language model is the stub vLLM server of ``tests/doubles`` (a TEST DOUBLE that speaks vLLM's
wire format; the ``stub`` fixture of ``tests/conftest.py``); the cluster is the simulator with its
clock frozen (``tests/served_app.py``).
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.doubles.stub_vllm import StubVllmServer
from tests.served_app import HOT_QUESTION, human, questions_sent_to_llm, serving, settings_for, sse_records


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


async def test_stream_carries_tokens_progressively_and_tool_steps_before_the_answer(tmp_path: Path) -> None:
    # paced like a model writing (4 ms a token), so the 30 ms flushes are many
    with StubVllmServer(token_delay=0.004) as url:
        async with serving(settings_for(tmp_path, url)) as client:
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
