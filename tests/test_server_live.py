"""``gpudoc serve`` as a real process: the command line, a client that disconnects mid-stream, the
chat page in headless Chromium.

The language model is the stub vLLM server (a TEST DOUBLE) running in this test process, so the
tests can watch its side of the connection.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.doubles import stub_vllm
from tests.doubles.stub_vllm import PLANNING_TEXT, StubReply, StubVllmServer, keyword_policy, planning_text_policy
from tests.served_gpudoc import (
    GPUDOC,
    REPO,
    SERVE_URL,
    gpudoc_serve,
    gpudoc_serve_process,
    metric,
    wait_until_healthy,
)
from tests.services.chromium import browser_page, chromium_or_skip

ARTIFACTS = REPO / "artifacts"


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


def long_answer_policy(body: dict[str, Any]) -> StubReply:
    """Tools as usual, then an answer long enough (streamed slowly) to leave in the middle of."""
    if any(message.get("role") == "tool" for message in body.get("messages") or []):
        return StubReply(content="GPU 3 of node-2 reads 89.2 °C. " * 400)
    return keyword_policy(body)


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


def short_answer_policy(body: dict[str, Any]) -> StubReply:
    if any(message.get("role") == "tool" for message in body.get("messages") or []):
        return StubReply(content=SHORT_ANSWER)
    return keyword_policy(body)


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
    assert len(answer) < len(long_answer_policy({"messages": [{"role": "tool"}]}).content)
    assert stopped_after < 8  # one second of grace, then the stream was cut and the server stopped


# ------------------------------------------------------------------------------------------------
# Deployment: a network address needs the token
# ------------------------------------------------------------------------------------------------


def serve_command_of(text: str) -> list[str]:
    """``gpudoc serve ...`` as a deployment file starts it, on a free port."""
    words = text.split()
    start = next(i for i, word in enumerate(words) if word.endswith("gpudoc") and words[i + 1] == "serve")
    command = [str(GPUDOC), *words[start + 1:]]
    return [("0" if previous == "--port" else word) for previous, word in zip(["", *command], command)]


@pytest.mark.parametrize("deployment", ["Dockerfile", "systemd/gpudoc.service", "command line"])
def test_serve_refuses_a_network_address_without_a_token(tmp_path: Path, deployment: str) -> None:
    if deployment == "command line":
        command = [str(GPUDOC), "serve", "--host", "0.0.0.0", "--port", "0"]
    elif deployment == "Dockerfile":
        cmd = next(line for line in (REPO / "infra" / "Dockerfile").read_text().splitlines() if line.startswith("CMD"))
        command = serve_command_of(" ".join(json.loads(cmd[3:])))
    else:
        unit = (REPO / "infra" / deployment).read_text()
        command = serve_command_of(next(line for line in unit.splitlines() if line.startswith("ExecStart="))[10:])
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("GPUDOC_", "LLM_"))}
    environment["GPUDOC_API_TOKEN"] = ""  # as the shipped env file leaves it
    result = subprocess.run(command, cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "without an API token" in result.stderr and "GPUDOC_API_TOKEN" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_on_a_network_address_with_insecure_no_auth_says_so(tmp_path: Path) -> None:
    with gpudoc_serve_process(tmp_path, "http://127.0.0.1:9/v1", "--host", "0.0.0.0", "--insecure-no-auth") as (url, _):
        banner = (tmp_path / "serve.log").read_text()
        assert httpx.get(url.replace("0.0.0.0", "127.0.0.1") + "/healthz").status_code == 200
    assert "NO API TOKEN" in banner


def test_compose_requires_the_token_and_keeps_the_model_api_local() -> None:
    import yaml

    compose = yaml.safe_load((REPO / "infra" / "docker-compose.yml").read_text())
    gpudoc = compose["services"]["gpudoc"]
    token = next(entry for entry in gpudoc["environment"] if entry.startswith("GPUDOC_API_TOKEN="))
    assert token.startswith("GPUDOC_API_TOKEN=${GPUDOC_API_TOKEN:?")  # compose refuses to start without it
    assert all(port.startswith("127.0.0.1:") for port in compose["services"]["vllm"]["ports"])
    grace = int(gpudoc["stop_grace_period"].rstrip("s"))
    assert grace > 30  # longer than GPUDOC_SHUTDOWN_GRACE_S's default


# ------------------------------------------------------------------------------------------------
# The chat page in headless Chromium
# ------------------------------------------------------------------------------------------------


def ask_on_page(page: Any, question: str) -> None:
    """Ask and wait until the page marks this turn done."""
    done = page.locator('section.turn[data-state="done"]').count()
    page.fill("#question", question)
    page.press("#question", "Enter")
    # a selector, not a JavaScript predicate: the page's CSP forbids the eval a predicate needs
    page.locator('section.turn[data-state="done"]').nth(done).wait_for(timeout=60_000)


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


class _CountingServer:
    """An HTTP server on 127.0.0.1 that counts every request: the "remote" site an answer links to."""

    def __init__(self) -> None:
        import http.server

        hits: list[str] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - stdlib naming
                hits.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
                return

        self.hits = hits
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_chat_page_renders_no_link_image_or_html_from_an_answer(tmp_path: Path) -> None:
    chromium_or_skip()
    remote = _CountingServer()

    def markup_policy(body: dict[str, Any]) -> StubReply:
        """Tools as usual, then an answer full of markup a hostile text could talk a model into."""
        if any(message.get("role") == "tool" for message in body.get("messages") or []):
            return StubReply(content=(
                f"**node-3 is drained.** [Re-authenticate to gpudoc]({remote.origin}/login) "
                f"![status]({remote.origin}/pixel.png?d=cluster) <img src=\"{remote.origin}/raw.png\"> "
                f"<a href=\"{remote.origin}/a\">click</a> www.evil.example\n\n| GPU | temp |\n|---|---|\n| 0 | 63.0 |\n"))
        return keyword_policy(body)

    try:
        with StubVllmServer(policy=markup_policy) as llm_url, \
                gpudoc_serve(tmp_path, llm_url, "--scenario", "hostile-names") as url, browser_page() as page:
            page.goto(url + "/")
            page.wait_for_selector("#llm-status.pill-ok")
            ask_on_page(page, "Why is node-3 drained?")
            answer = page.locator(".answer").last
            text = answer.inner_text()
            assert answer.locator("a, img").count() == 0
            assert answer.locator("table").count() == 1 and answer.locator("strong").count() == 1
            assert "Re-authenticate to gpudoc" in text and f"({remote.origin}/login)" in text
            assert "[image: status]" in text and '<img src="' in text  # shown as text, never loaded
            page.wait_for_timeout(300)
            csp = httpx.get(url + "/").headers["content-security-policy"]
    finally:
        remote.close()
    assert remote.hits == []
    assert "img-src 'self' data:" in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
