"""``gpudoc ask`` and ``gpudoc chat`` against the stub vLLM server (a test double) and with no LLM."""

from __future__ import annotations

import io
import json

from gpudoc.cli import main
from tests.doubles.stub_vllm import StubVllmServer

NO_LLM = "http://127.0.0.1:9/v1"


def test_ask_json_against_the_stub_server(capsys):
    with StubVllmServer() as url:
        code = main(["ask", "Is node-2 running hot?", "--json", "--nodes", "4",
                     "--scenario", "thermal-throttle@node-2/gpu-3", "--llm-base-url", url])
    out = capsys.readouterr().out
    result = json.loads(out)
    assert code == 0 and not result["degraded"]
    assert {c["name"] for c in result["tool_calls"]} == {"get_gpu_history", "get_node_details"}
    assert all({"name", "arguments", "result"} <= c.keys() for c in result["tool_calls"])
    assert result["reasoning"] and result["unverified_numbers"] == [] and result["llm_round_trips"] == 2


def test_ask_streams_tools_thinking_and_answer(capsys):
    with StubVllmServer() as url:
        code = main(["ask", "Why are jobs pending?", "--nodes", "4", "--scenario", "pending-on-drained",
                     "--llm-base-url", url])
    out = capsys.readouterr().out
    assert code == 0
    assert "> get_slurm_jobs(state=\"PENDING\")" in out and "get_slurm_jobs done in" in out
    assert "thinking: To answer 'Why are jobs pending?'" in out
    assert "**Answer**" in out and "2 model call(s)" in out


def test_ask_no_thinking_hides_and_disables_reasoning(capsys):
    stub = StubVllmServer()
    with stub as url:
        main(["ask", "Is node-1 hot?", "--nodes", "4", "--no-thinking", "--llm-base-url", url])
    out = capsys.readouterr().out
    assert "thinking:" not in out
    assert all(r["chat_template_kwargs"] == {"enable_thinking": False} for r in stub.requests)


def test_ask_without_a_model_answers_with_the_diagnosis(capsys):
    code = main(["ask", "Which GPUs need an RMA?", "--json", "--nodes", "4",
                 "--scenario", "xid79-fell-off-bus@node-3/gpu-5", "--llm-base-url", NO_LLM])
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert code == 0 and result["degraded"] and "unreachable" in result["degraded_reason"]
    assert "node-3/gpu-5" in result["answer"]
    assert captured.err.count("\n") == 1 and "no language model" in captured.err


def test_ask_rejects_an_unknown_scenario(capsys):
    code = main(["ask", "hi", "--scenario", "no-such-fault", "--llm-base-url", NO_LLM])
    err = capsys.readouterr().err
    assert code == 2 and "no-such-fault" in err and "Valid scenarios: " in err
    assert "no language model" not in err  # the bad option is reported before the model is probed
    assert err.count("\n") == 1


def test_chat_keeps_one_thread_and_starts_a_new_one(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("Is node-0 running hot?\n/new\nhello\n/exit\n"))
    with StubVllmServer() as url:
        code = main(["chat", "--nodes", "4", "--db", str(tmp_path / "c.sqlite"), "--llm-base-url", url])
    out = capsys.readouterr().out
    assert code == 0 and "new thread" in out
    assert out.count("**Answer") == 2 and "get_node_details done in" in out
