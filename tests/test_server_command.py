"""``gpudoc serve`` as a real process, from the command line: it answers, logs JSON lines with
request ids, reports bad options in one line, and refuses a network address without a token in
every shipped deployment.

The language model is the stub vLLM server (a TEST DOUBLE) running in this test process, so the
tests can watch its side of the connection.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.doubles.stub_vllm import StubVllmServer
from tests.served_gpudoc import GPUDOC, REPO, SERVE_URL, gpudoc_serve, gpudoc_serve_process, wait_until_healthy


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
