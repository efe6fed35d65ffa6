"""What serving costs: time to first token through ``/agent/stream`` against the in-process graph,
and 50 concurrent streaming conversations.

Everything runs on loopback against the stub vLLM server (a keyword-policy TEST DOUBLE, started
as its own process so it does not share this process's interpreter lock):

1. Time to first answer token, for the same question, (a) in process: ``stream_turn`` on an agent
   built here, and (b) over HTTP: ``POST /agent/stream`` on a ``gpudoc serve`` process, read
   with a streaming client until the first chunk with answer text. Reported as medians and the
   ratio (b)/(a): what LangServe, SSE, the middleware and the loopback hop add.
2. ``--concurrency`` conversations (default 50) streamed at once, each on its own thread id:
   errors, p50 and p99 of the whole-answer latency, and the server's resident memory (VmRSS
   before, VmHWM peak after) read from /proc.

    .venv/bin/python benchmarks/server_stream.py [--runs 20] [--concurrency 50]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # tests.doubles

from gpudoc.config import Settings  # noqa: E402
from gpudoc.graph.agent import build_agent  # noqa: E402
from gpudoc.graph.contracts import TokenEvent  # noqa: E402
from gpudoc.graph.llm import build_chat_model  # noqa: E402
from gpudoc.graph.runner import stream_turn  # noqa: E402
from gpudoc.tools.sim.source import SimSource  # noqa: E402

QUESTION = "Is node-2 running hot?"
SCENARIO = "thermal-throttle@node-2/gpu-3"
SERVE_URL = re.compile(r"chat page on (http://\S+?)/ ")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(url: str) -> None:
    for _ in range(400):
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


@contextmanager
def stub_vllm() -> Iterator[str]:
    """The stub vLLM server (test double) as a process; yields its /v1 base URL."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "tests.doubles.stub_vllm", "--port", str(port)],
                               cwd=REPO, stdout=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}/v1"
        wait_until_up(url + "/models")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@contextmanager
def gpudoc_serve(llm_url: str, db_dir: Path) -> Iterator[tuple[str, int]]:
    """``gpudoc serve`` as a process; yields its base URL and pid."""
    command = [str(Path(sys.executable).parent / "gpudoc"), "serve", "--port", "0", "--llm-base-url", llm_url,
               "--db-path", str(db_dir / "threads.sqlite"), "--scenario", SCENARIO, "--log-level", "warning"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        match = SERVE_URL.search(process.stdout.readline() if process.stdout else "")
        if not match:
            raise RuntimeError("gpudoc serve did not start")
        wait_until_up(match.group(1) + "/healthz")
        yield match.group(1), process.pid
    finally:
        process.terminate()
        process.wait(timeout=15)


def memory_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


async def first_token_in_process(llm_url: str, runs: int, warm_up: int = 2) -> list[float]:
    """In one event loop (the OpenAI client keeps its connections per loop), after a warm-up."""
    settings = Settings(llm_base_url=llm_url)
    agent = build_agent(source=SimSource.create(scenarios=[SCENARIO]), llm=build_chat_model(settings),
                        settings=settings)
    timings = []
    for run in range(-warm_up, runs):
        started = time.perf_counter()
        first = None
        async for event in stream_turn(agent, QUESTION, thread_id=f"bench-{run}"):
            if first is None and isinstance(event, TokenEvent) and event.text.strip():
                first = time.perf_counter() - started
        if run >= 0:
            timings.append(first if first is not None else float("nan"))
    return timings


async def stream_once(client: httpx.AsyncClient, base_url: str, thread_id: str) -> tuple[float | None, float, bool]:
    """(seconds to the first answer text, seconds to the end, ok) of one streamed conversation."""
    body = {"input": {"messages": [{"type": "human", "content": QUESTION}]},
            "config": {"configurable": {"thread_id": thread_id}}}
    started = time.perf_counter()
    async with client.stream("POST", base_url + "/agent/stream", json=body) as response:
        if response.status_code != 200:
            return None, time.perf_counter() - started, False
        first, ok = await read_agent_stream(response, started)
    return first, time.perf_counter() - started, ok


async def read_agent_stream(response: httpx.Response, started: float) -> tuple[float | None, bool]:
    """(seconds from ``started`` to the first answer text, ended without an error) of an
    ``/agent/stream`` response, read to its end."""
    first = None
    ended = failed = False
    event = ""
    async for line in response.aiter_lines():
        if line.startswith("event:"):
            event = line[6:].strip()
            ended = ended or event == "end"
            failed = failed or event == "error"
        elif line.startswith("data:") and event == "data" and first is None and '"content":"' in line \
                and '"content":""' not in line:
            first = time.perf_counter() - started
    return first, ended and not failed


async def first_token_over_http(base_url: str, runs: int, warm_up: int = 2) -> list[float]:
    timings = []
    async with httpx.AsyncClient(timeout=120) as client:
        for run in range(-warm_up, runs):
            first, _, ok = await stream_once(client, base_url, f"bench-http-{run}")
            if run >= 0:
                timings.append(first if ok and first is not None else float("nan"))
    return timings


async def concurrent_conversations(base_url: str, count: int) -> list[tuple[float | None, float, bool]]:
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
    async with httpx.AsyncClient(timeout=300, limits=limits) as client:
        return list(await asyncio.gather(
            *(stream_once(client, base_url, f"bench-concurrent-{n}") for n in range(count)), return_exceptions=False
        ))


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="sequential questions per first-token measurement")
    parser.add_argument("--concurrency", type=int, default=50, help="conversations streamed at once")
    args = parser.parse_args()

    with stub_vllm() as llm_url, tempfile.TemporaryDirectory() as db_dir:
        in_process = asyncio.run(first_token_in_process(llm_url, args.runs))
        with gpudoc_serve(llm_url, Path(db_dir)) as (base_url, pid):
            over_http = asyncio.run(first_token_over_http(base_url, args.runs))
            rss_before = memory_kib(pid, "VmRSS")
            wall = time.perf_counter()
            results = asyncio.run(concurrent_conversations(base_url, args.concurrency))
            wall = time.perf_counter() - wall
            rss_after, rss_peak = memory_kib(pid, "VmRSS"), memory_kib(pid, "VmHWM")

    a, b = statistics.median(in_process), statistics.median(over_http)
    print(f"time to first answer token, median of {args.runs} (stub vLLM test double, loopback):")
    print(f"  in process (stream_turn)      {a * 1000:8.1f} ms")
    print(f"  over HTTP (/agent/stream)     {b * 1000:8.1f} ms")
    print(f"  ratio HTTP / in process       {b / a:8.2f}x  (+{(b - a) * 1000:.1f} ms)")
    latencies = [total for _, total, ok in results if ok]
    firsts = [first for first, _, ok in results if ok and first is not None]
    errors = sum(1 for *_, ok in results if not ok)
    print(f"{args.concurrency} concurrent streaming conversations (wall {wall:.2f} s):")
    print(f"  errors                        {errors}")
    if latencies:
        print(f"  whole answer p50 / p99        {percentile(latencies, .5) * 1000:8.1f} / "
              f"{percentile(latencies, .99) * 1000:.1f} ms")
    if firsts:
        print(f"  first token p50 / p99         {percentile(firsts, .5) * 1000:8.1f} / "
              f"{percentile(firsts, .99) * 1000:.1f} ms")
    print(f"  server RSS before / after     {rss_before / 1024:8.1f} / {rss_after / 1024:.1f} MiB "
          f"(peak {rss_peak / 1024:.1f} MiB)")


if __name__ == "__main__":
    main()
