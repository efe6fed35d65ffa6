"""What serving costs: time to first token through ``/agent/stream`` against the in-process graph,
and 50 concurrent streaming conversations.

Everything runs on loopback against the stub vLLM server (a keyword-policy TEST DOUBLE, started
as its own process so it does not share this process's interpreter lock):

1. Time to first answer token, for the same question, (a) in process: ``stream_turn`` on an agent
   built here, and (b) over HTTP: ``POST /agent/stream`` on a ``gpudoc serve`` process, read
   by the light load generator (``light_client.py``) until the first chunk with answer text. Reported as medians and the
   ratio (b)/(a): what LangServe, SSE, the middleware and the loopback hop add.
2. ``--concurrency`` conversations (default 50) streamed at once, each on its own thread id:
   errors, p50 and p99 of the whole-answer latency, and the server's resident memory (VmRSS
   before, VmHWM peak after) read from /proc.

    .venv/bin/python benchmarks/server_stream.py [--runs 20] [--concurrency 50]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from light_client import Stream, stream_once
from serving import QUESTION, SCENARIO, gpudoc_serve, percentile, stub_vllm  # puts the repository on sys.path
from gpudoc.config import Settings  # noqa: E402
from gpudoc.graph.agent import build_agent  # noqa: E402
from gpudoc.graph.contracts import TokenEvent  # noqa: E402
from gpudoc.graph.llm import build_chat_model  # noqa: E402
from gpudoc.graph.runner import stream_turn  # noqa: E402
from gpudoc.tools.sim.source import SimSource  # noqa: E402


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


async def first_token_over_http(base_url: str, runs: int, warm_up: int = 2) -> list[float]:
    timings = []
    for run in range(-warm_up, runs):
        stream = await stream_once(base_url, QUESTION)
        if run >= 0:
            timings.append(stream.first_token_s if stream.ok and stream.first_token_s is not None else float("nan"))
    return timings


async def concurrent_conversations(base_url: str, count: int) -> list[Stream]:
    return list(await asyncio.gather(*(stream_once(base_url, QUESTION) for _ in range(count))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="sequential questions per first-token measurement")
    parser.add_argument("--concurrency", type=int, default=50, help="conversations streamed at once")
    args = parser.parse_args()

    with stub_vllm() as stub, tempfile.TemporaryDirectory() as run_dir:
        in_process = asyncio.run(first_token_in_process(stub.url, args.runs))
        with gpudoc_serve(Path(run_dir), stub.url) as served:
            base_url, pid = served.url, served.pid
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
    latencies = [s.total_s for s in results if s.ok]
    firsts = [s.first_token_s for s in results if s.ok and s.first_token_s is not None]
    errors = sum(1 for s in results if not s.ok)
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
