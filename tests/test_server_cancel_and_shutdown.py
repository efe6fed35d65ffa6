"""``gpudoc serve`` as a real process when a turn ends early: a client that leaves mid-stream
cancels its turn and the model's request; SIGTERM stops accepting and lets turns in flight finish
within the grace period.

The language model is the stub vLLM server (a TEST DOUBLE) running in this test process, so the
tests can watch its side of the connection.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.doubles import stub_vllm
from tests.doubles.keyword_policy import keyword_then_answer
from tests.doubles.stub_vllm import StubVllmServer
from tests.served_gpudoc import gpudoc_serve, gpudoc_serve_process, metric


# ------------------------------------------------------------------------------------------------
# A client that goes away mid-stream
# ------------------------------------------------------------------------------------------------


def llm_stream_aborted(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Set when the stub vLLM server finds the connection it streams to closed (gpudoc cancelled)."""
    aborted = threading.Event()
    write_chunk = stub_vllm._Handler._write_chunk

    def write_or_notice_abort(handler: Any, data: bytes) -> None:
        try:
            write_chunk(handler, data)
        except (BrokenPipeError, ConnectionResetError):
            aborted.set()
            raise

    monkeypatch.setattr(stub_vllm._Handler, "_write_chunk", write_or_notice_abort)
    return aborted


def eventually_counted(url: str, name: str, **labels: str) -> float:
    """A counter of the server, once it is not zero (or zero after a few seconds)."""
    value = 0.0
    for _ in range(100):
        value = metric(url, name, **labels)
        if value:
            break
        time.sleep(0.05)
    return value


#: an answer long enough (streamed slowly) to leave in the middle of
LONG_ANSWER = "GPU 3 of node-2 reads 89.2 °C. " * 400
long_answer_policy = keyword_then_answer(LONG_ANSWER)


def test_disconnecting_client_cancels_the_llm_request(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    aborted = llm_stream_aborted(monkeypatch)
    stub = StubVllmServer(policy=long_answer_policy, token_delay=0.01)
    with stub as llm_url, gpudoc_serve(tmp_path, llm_url) as url:
        body = {"input": {"messages": [{"type": "human", "content": "Is node-2 running hot?"}]}}
        with httpx.Client(timeout=30) as client, client.stream("POST", url + "/agent/stream", json=body) as response:
            assert response.status_code == 200
            seen: list[str] = []
            for line in response.iter_lines():
                seen.append(line)
                if line.startswith("data:") and '"content":"GPU' in line:
                    break  # the answer is streaming: leave now
            else:
                raise AssertionError(f"the answer never started streaming; last lines: {seen[-5:]}")
        assert aborted.wait(timeout=30), (
            "the server kept reading from the LLM after the client left; server log: "
            + (tmp_path / "serve.log").read_text()[-2000:]
        )
        assert eventually_counted(url, "gpudoc_agent_turns_total", outcome="cancelled") == 1
        assert metric(url, "gpudoc_agent_turns_total", outcome="answered") == 0
        # The abandoned turn ran on a private thread: it is deleted once the turn has wound down.
        threads: set[str] = {"?"}
        for _ in range(100):
            with sqlite3.connect(tmp_path / "threads.sqlite") as db:
                threads = {row[0] for row in db.execute("SELECT DISTINCT thread_id FROM checkpoints")}
            if not threads:
                break
            time.sleep(0.05)
        assert threads == set()
    answer_requests = [r for r in stub.requests if any(m.get("role") == "tool" for m in r["messages"])]
    assert len(answer_requests) == 1  # the cancelled answer was not retried


def test_a_client_leaving_the_original_chat_cancels_its_turn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    aborted = llm_stream_aborted(monkeypatch)
    stub = StubVllmServer(policy=long_answer_policy, token_delay=0.01)
    with stub as llm_url, gpudoc_serve(tmp_path, llm_url) as url:
        with pytest.raises(httpx.ReadTimeout):  # the client gives up while the answer is being written
            httpx.post(url + "/api/agent/chat", json={"message": "Is node-2 running hot?"}, timeout=2.0)
        assert aborted.wait(timeout=8), (
            "the server kept the model writing after the client left; server log: "
            + (tmp_path / "serve.log").read_text()[-2000:])
        assert eventually_counted(url, "gpudoc_agent_turns_total", outcome="cancelled") == 1
        assert metric(url, "gpudoc_turns_in_flight") == 0


# ------------------------------------------------------------------------------------------------
# Shutdown: SIGTERM stops accepting, lets turns in flight finish within the grace period
# ------------------------------------------------------------------------------------------------

SHORT_ANSWER = "GPU 3 of node-2 reads 89.2 °C. " * 60


short_answer_policy = keyword_then_answer(SHORT_ANSWER)


def stream_until_end(url: str, on_first_token: Any) -> tuple[str, list[str]]:
    """Stream one turn from ``/agent/stream``; calls ``on_first_token`` once the answer starts.

    Returns the answer received and the SSE event names, with ``"cut"`` last when the server
    closed the connection in the middle of the stream.
    """
    body = {"input": {"messages": [{"type": "human", "content": "Is node-2 running hot?"}]}}
    answer, events = "", []
    with httpx.Client(timeout=60) as client, client.stream("POST", url + "/agent/stream", json=body) as response:
        assert response.status_code == 200
        event = None
        try:
            for line in response.iter_lines():
                if line.startswith("event:"):
                    event = line[6:].strip()
                    events.append(event)
                elif line.startswith("data:") and event == "data":
                    chunk = json.loads(line[5:])
                    if chunk["content"] and not answer:
                        on_first_token()
                    answer += chunk["content"]
        except httpx.RemoteProtocolError:
            events.append("cut")
    return answer, events


def test_sigterm_lets_a_stream_in_flight_finish_and_refuses_new_connections(tmp_path: Path) -> None:
    refused: list[BaseException] = []
    with StubVllmServer(policy=short_answer_policy, token_delay=0.005) as llm_url, \
            gpudoc_serve_process(tmp_path, llm_url) as (url, process):

        def terminate_and_knock() -> None:
            process.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            try:
                httpx.get(url + "/healthz", timeout=2)
            except httpx.TransportError as exc:
                refused.append(exc)

        knocking = threading.Thread(target=terminate_and_knock)
        answer, events = stream_until_end(url, knocking.start)
        knocking.join()
        stopped = process.wait(timeout=20)
    assert answer.strip() == SHORT_ANSWER.strip()  # the whole answer arrived after SIGTERM
    assert events[-1] == "end" and "error" not in events
    assert refused and isinstance(refused[0], httpx.ConnectError)  # the listener closed at once
    assert stopped in (0, -signal.SIGTERM)


def test_sigterm_cuts_what_outlasts_the_grace_period(tmp_path: Path) -> None:
    with StubVllmServer(policy=long_answer_policy, token_delay=0.01) as llm_url, \
            gpudoc_serve_process(tmp_path, llm_url, env={"GPUDOC_SHUTDOWN_GRACE_S": "1"}) as (url, process):
        signalled: list[float] = []

        def terminate() -> None:
            signalled.append(time.monotonic())
            process.send_signal(signal.SIGTERM)

        answer, events = stream_until_end(url, terminate)
        process.wait(timeout=20)
        stopped_after = time.monotonic() - signalled[0]
    assert events[-1] == "cut"
    assert len(answer) < len(LONG_ANSWER)
    assert stopped_after < 8  # one second of grace, then the stream was cut and the server stopped
