"""``gpudoc serve`` as a real process, for the tests that need the command itself: its output goes
to a file, it is found by the banner it prints, and it is stopped with SIGTERM."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.served_app import metric_value

REPO = Path(__file__).resolve().parents[1]
GPUDOC = Path(sys.executable).parent / "gpudoc"  # the installed command, as an operator runs it
SERVE_URL = re.compile(r"chat page on (http://\S+?)/ ")


@contextmanager
def gpudoc_serve(tmp_path: Path, llm_url: str, *args: str, env: dict[str, str] | None = None) -> Iterator[str]:
    """``gpudoc serve`` on a free port of 127.0.0.1; yields its base URL, stops it with SIGTERM."""
    with gpudoc_serve_process(tmp_path, llm_url, *args, env=env) as (base_url, _process):
        yield base_url


@contextmanager
def gpudoc_serve_process(tmp_path: Path, llm_url: str, *args: str,
                         env: dict[str, str] | None = None) -> Iterator[tuple[str, subprocess.Popen]]:
    """``gpudoc serve`` on a free port of 127.0.0.1; yields its base URL and the process, stops it
    with SIGTERM if it still runs.

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
        yield base_url, process
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
    """A metric of the running server, summed over the series with ``labels``."""
    return metric_value(httpx.get(base_url + "/metrics").text, name, **labels)
