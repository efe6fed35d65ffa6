"""What the serving benchmarks share: the question they ask, the stub vLLM server as a process of
its own, ``gpudoc serve`` started as the tests start it, and percentiles.

Why the stub in a process of its own: in the measuring process it would share an interpreter lock
with the client, and in the server's it would be counted as the server's CPU.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # tests.doubles, tests.services, tests.served_gpudoc

from tests.served_gpudoc import gpudoc_serve_process  # noqa: E402
from tests.services import free_port  # noqa: E402

QUESTION = "Is node-2 running hot?"
SCENARIO = "thermal-throttle@node-2/gpu-3"


def wait_until_up(url: str, what: str) -> None:
    for _ in range(600):
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not come up at {url}")


@dataclass
class Process:
    url: str
    pid: int


@contextmanager
def stub_vllm(*, reasoning_words: int = 0, answer_words: int = 0, pace_s: float = 0.0) -> Iterator[Process]:
    """The stub vLLM server (a TEST DOUBLE) as a process; its /v1 base URL and pid."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.doubles.stub_vllm", "--port", str(port), "--token-delay", str(pace_s),
         "--reasoning-words", str(reasoning_words), "--answer-words", str(answer_words)],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}/v1"
        wait_until_up(url + "/models", "the stub vLLM server")
        yield Process(url, process.pid)
    finally:
        process.terminate()
        process.wait(timeout=10)


@contextmanager
def gpudoc_serve(run_dir: Path, llm_url: str, *args: str, workers: int = 1,
                 env: dict[str, str] | None = None) -> Iterator[Process]:
    """``gpudoc serve --scenario SCENARIO`` with ``args`` (threads in ``run_dir`` unless ``args``
    name a database), once every one of its ``workers`` has opened its source, store and model."""
    with gpudoc_serve_process(run_dir, llm_url, "--scenario", SCENARIO, "--workers", str(workers), *args,
                              "--log-level", "info", env=env) as (base_url, process):
        log = run_dir / "serve.log"
        for _ in range(600):
            if log.read_text().count('"gpudoc server ready"') >= workers:
                break
            time.sleep(0.05)
        else:
            raise RuntimeError(f"not every worker started: {log.read_text()[-2000:]}")
        yield Process(base_url, process.pid)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]
