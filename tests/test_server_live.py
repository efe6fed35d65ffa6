"""``gpudoc serve`` as a real process: the command line, a client that disconnects mid-stream, the
chat page in headless Chromium.

The language model is the stub vLLM server (a TEST DOUBLE) running in this test process, so the
tests can watch its side of the connection.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.doubles import stub_vllm
from tests.doubles.stub_vllm import PLANNING_TEXT, StubReply, StubVllmServer, keyword_policy, planning_text_policy
from tests.services.chromium import browser_page, chromium_or_skip

REPO = Path(__file__).resolve().parents[1]
GPUDOC = Path(sys.executable).parent / "gpudoc"  # the installed command, as an operator runs it
ARTIFACTS = REPO / "artifacts"
SERVE_URL = re.compile(r"chat page on (http://\S+?)/ ")


@contextmanager
def gpudoc_serve(tmp_path: Path, llm_url: str, *args: str, env: dict[str, str] | None = None) -> Iterator[str]:
    """``gpudoc serve`` on a free port of 127.0.0.1; yields its base URL, stops it with SIGTERM.

    Its output goes to a file, not a pipe: a pipe nobody drains fills up and freezes the server
    mid-test, which would look like the very hang these tests look for.
    """
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("GPUDOC_", "LLM_"))}
    environment.update(env or {})
    command = [str(GPUDOC), "serve", "--port", "0", "--llm-base-url", llm_url,
               "--db-path", str(tmp_path / "threads.sqlite"), "--log-level", "warning", *args]
    log_path = tmp_path / "serve.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(command, cwd=tmp_path, env=environment, stdout=log, stderr=subprocess.STDOUT,
                                   text=True)
    try:
        match = None
        for _ in range(600):  # the banner is printed once the socket is bound
            match = SERVE_URL.search(log_path.read_text())
            if match or process.poll() is not None:
                break
            time.sleep(0.05)
        if not match:
            process.kill()
            raise AssertionError(f"gpudoc serve did not start: {log_path.read_text()[-2000:]!r}")
        base_url = match.group(1)
        wait_until_healthy(base_url, lambda: log_path.read_text()[-2000:])
        yield base_url
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


def wait_until_healthy(base_url: str, server_output: Any, *, headers: dict[str, str] | None = None) -> None:
    """Poll ``/healthz`` until it answers 200; fail with what was seen if it never does."""
    seen = "no answer"
    for _ in range(200):
        try:
            response = httpx.get(base_url + "/healthz", timeout=1, headers=headers)
            if response.status_code == 200:
                return
            seen = f"HTTP {response.status_code}: {response.text[:200]}"
        except httpx.TransportError as exc:
            seen = f"{type(exc).__name__}: {exc}"
        time.sleep(0.05)
    raise AssertionError(f"{base_url}/healthz never answered 200 (last: {seen}); server output: {server_output()!r}")


def metric(base_url: str, name: str, **labels: str) -> float:
    text = httpx.get(base_url + "/metrics").text
    for line in text.splitlines():
        head, _, value = line.rpartition(" ")
        metric_name, _, label_text = head.partition("{")
        if metric_name == name and all(f'{k}="{v}"' in label_text for k, v in labels.items()):
            return float(value)
    return 0.0


# ------------------------------------------------------------------------------------------------
# The command
# ------------------------------------------------------------------------------------------------


def test_serve_answers_over_http_and_logs_json_with_request_ids(tmp_path: Path) -> None:
    with StubVllmServer() as llm_url, gpudoc_serve(tmp_path, llm_url, "--scenario", "thermal-throttle@node-2/gpu-3") as url:
        response = httpx.post(url + "/api/agent/chat", json={"message": "Is node-2 running hot?"},
                              headers={"X-Request-Id": "cli-e2e-1"}, timeout=60)
        ready = httpx.get(url + "/readyz")
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "cli-e2e-1"
    assert {c["name"] for c in response.json()["toolCalls"]} == {"get_gpu_history", "get_node_details"}
    assert ready.status_code == 200 and ready.json()["ready"] is True


def test_serve_logs_are_json_lines_carrying_the_request_id(tmp_path: Path) -> None:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("GPUDOC_", "LLM_"))}
    command = [str(GPUDOC), "serve", "--port", "0", "--db-path", str(tmp_path / "t.sqlite"),
               "--llm-base-url", "http://127.0.0.1:9/v1"]
    process = subprocess.Popen(command, cwd=tmp_path, env=environment, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        base_url = SERVE_URL.search(process.stdout.readline()).group(1)  # type: ignore[union-attr]
        wait_until_healthy(base_url, lambda: "(read after the server stops)", headers={"X-Request-Id": "probe-7"})
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=15)
    entries = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    access = [e for e in entries if e["logger"] == "gpudoc.server.access" and e["request_id"] == "probe-7"]
    assert access and access[0]["path"] == "/healthz" and access[0]["status"] == 200
    assert any(e["msg"] == "gpudoc server ready" for e in entries)
    assert process.returncode in (0, -signal.SIGTERM)  # uvicorn re-raises the signal after a clean shutdown


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--scenario", "no-such-fault"], "Unknown scenario 'no-such-fault'"),
        (["--host", "no.such.host.invalid"], "Cannot listen on no.such.host.invalid"),
    ],
)
def test_serve_reports_bad_options_in_one_line(tmp_path: Path, arguments: list[str], message: str) -> None:
    result = subprocess.run([str(GPUDOC), "serve", "--port", "0", *arguments],
                            cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


# ------------------------------------------------------------------------------------------------
# A client that goes away mid-stream
# ------------------------------------------------------------------------------------------------


def long_answer_policy(body: dict[str, Any]) -> StubReply:
    """Tools as usual, then an answer long enough (streamed slowly) to leave in the middle of."""
    if any(message.get("role") == "tool" for message in body.get("messages") or []):
        return StubReply(content="GPU 3 of node-2 reads 89.2 °C. " * 400)
    return keyword_policy(body)


def test_disconnecting_client_cancels_the_llm_request(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    aborted = threading.Event()
    write_chunk = stub_vllm._Handler._write_chunk

    def write_or_notice_abort(handler: Any, data: bytes) -> None:
        try:
            write_chunk(handler, data)
        except (BrokenPipeError, ConnectionResetError):
            aborted.set()
            raise

    monkeypatch.setattr(stub_vllm._Handler, "_write_chunk", write_or_notice_abort)
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
        cancelled = 0.0
        for _ in range(100):
            cancelled = metric(url, "gpudoc_agent_turns_total", outcome="cancelled")
            if cancelled:
                break
            time.sleep(0.05)
        assert cancelled == 1
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


# ------------------------------------------------------------------------------------------------
# The chat page in headless Chromium
# ------------------------------------------------------------------------------------------------


def ask_on_page(page: Any, question: str) -> None:
    """Ask and wait until the page marks this turn done."""
    done = page.locator('section.turn[data-state="done"]').count()
    page.fill("#question", question)
    page.press("#question", "Enter")
    page.wait_for_function(f"document.querySelectorAll('section.turn[data-state=done]').length > {done}",
                           timeout=60_000)


def test_chat_page_streams_the_answer_with_tool_panels_and_a_chart(tmp_path: Path) -> None:
    chromium_or_skip()
    stub = StubVllmServer(token_delay=0.002, policy=planning_text_policy)
    with stub as llm_url, gpudoc_serve(tmp_path, llm_url, "--scenario", "thermal-throttle@node-2/gpu-3") as url, \
            browser_page() as page:
        page.goto(url + "/")
        page.wait_for_selector("#llm-status.pill-ok")
        ask_on_page(page, "Is node-2 running hot?")

        tools = page.locator("details.step.tool")
        assert sorted(tools.evaluate_all("els => els.map(e => e.dataset.tool)")) == ["get_gpu_history", "get_node_details"]
        assert page.locator("details.step.tool .step-state.ok").count() == 2
        panel = page.locator('details.step.tool[data-tool="get_gpu_history"]')
        panel.locator("summary").click()
        assert '"node_id": "node-2"' in panel.locator(".step-body pre").first.inner_text()
        assert '"point_fields"' in panel.locator(".step-body pre").nth(1).inner_text()

        chart = page.locator("figure.chart")
        assert "node-2 temperature" in chart.locator("figcaption").inner_text()
        assert chart.locator("polyline.series").count() == 8  # one line per GPU
        assert page.locator("details.step.thinking").count() == 1

        answer = page.locator(".answer")
        assert PLANNING_TEXT not in answer.inner_text()  # what the model wrote while planning is not the answer
        assert PLANNING_TEXT in page.locator("details.step.thinking").text_content()
        assert answer.locator("table").count() == 1  # markdown tables are rendered
        assert page.locator("#degraded-banner").is_hidden()

        ask_on_page(page, "Why are jobs pending?")  # a follow-up on the same thread
        assert page.locator("section.turn").count() == 2
        assert page.locator("#send").is_enabled()
        panel.locator("summary").click()  # fold the panel again for the picture
        page.evaluate("document.getElementById('conversation').scrollTop = 0")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "chat-page.png"))
        assert page.errors == []
    conversations = [r for r in stub.requests if r["messages"][-1]["role"] == "user"]
    last_plan = conversations[-1]["messages"]
    assert [m["content"] for m in last_plan if m["role"] == "user"] == ["Is node-2 running hot?", "Why are jobs pending?"]


def test_chat_page_asks_for_the_token_and_says_when_there_is_no_model(tmp_path: Path) -> None:
    chromium_or_skip()
    with gpudoc_serve(tmp_path, "http://127.0.0.1:9/v1", env={"GPUDOC_API_TOKEN": "page-token"}) as url, \
            browser_page() as page:
        page.goto(url + "/")
        page.wait_for_selector("#token-dialog[open]")
        page.fill("#token-input", "page-token")
        page.click("#token-form button[type=submit]")
        page.wait_for_selector("#llm-status.pill-down")
        assert page.locator("#degraded-banner").is_visible()
        ask_on_page(page, "Which GPUs need an RMA?")
        assert page.locator(".answer-card.degraded .degraded-label").inner_text() == "Without the language model"
        assert page.locator(".answer").inner_text().strip()
        assert page.evaluate("sessionStorage.getItem('gpudoc.apiToken')") == "page-token"
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "chat-page-degraded.png"), full_page=True)
        assert page.errors == []
