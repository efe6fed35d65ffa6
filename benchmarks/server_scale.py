"""What scaling out buys: 1 versus 2 workers on one burst, CPU per streamed token against the raw
OpenAI client, and hundreds of concurrent streams.

Everything runs on loopback: a real PostgreSQL 15 (threads; started here as in the tests), the
stub vLLM server (a keyword-policy TEST DOUBLE, each configuration its own process, so it never
shares an interpreter with what is measured) and ``gpudoc serve`` as an operator runs it.

1. **CPU per streamed token.** The server's CPU time (``/proc/PID/stat``) over sequential turns
   whose replies carry ``--reasoning-words``/``--answer-words`` of filler, minus the same turns
   without filler, divided by the extra completion tokens the server counted
   (``gpudoc_llm_tokens_total``): the cost of one more token, streamed to the client as reasoning
   or answer. Baseline: the raw ``openai.AsyncOpenAI`` client receiving the same streams in a
   process of its own (its CPU, long minus short, per extra chunk). Measured with the stub
   writing as fast as it can, and paced (``--pace-ms`` between tokens, as a model generates).
2. **1 versus 2 workers.** ``--burst`` conversations streamed at once, each on its own thread, to
   ``gpudoc serve --workers 1`` and ``--workers 2`` on the same database; wall time to the last
   token, errors. Repeated ``--repeats`` times, alternating, as the machine may be shared.
3. **``--streams`` concurrent streams** on 1 and 2 workers: p50/p99 of the time to the first
   answer token and to the end of the stream.

The streams are read by a load generator that costs little (``light_client.py``: a prepared
request, raw bytes scanned for the status, the first answer text and the end), because it runs on
the same cores as the server it measures.

Parts 1 and 2 admit every stream (``GPUDOC_MAX_CONCURRENT_TURNS`` set far above the burst), so
that both worker counts do the same work. Part 3 runs once like that and once with the server's
admission control (``--admission``, default the server's limit per worker): streams beyond the
limit are answered 429 at once (counted apart) and the admitted ones keep their latency.

    .venv/bin/python benchmarks/server_scale.py [--burst 60] [--streams 200] [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from light_client import Stream, stream_once
from serving import QUESTION, Process, gpudoc_serve, percentile, stub_vllm  # puts the repository on sys.path
from tests.doubles.stub_vllm import STUB_MODEL  # noqa: E402
from tests.served_gpudoc import metric  # noqa: E402
from tests.services.postgres import PostgresServer  # noqa: E402

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
#: admission limit that admits every stream of these bursts (what is measured is the work, not refusals)
UNLIMITED = 10_000


@contextmanager
def serve_on_postgres(llm_url: str, db_url: str, workers: int, logs: Path,
                      admission: int | None = UNLIMITED) -> Iterator[Process]:
    """``gpudoc serve --workers N`` on PostgreSQL; ``admission``: turns each worker takes at once
    (``GPUDOC_MAX_CONCURRENT_TURNS``), ``None`` for the server's default."""
    env = {"GPUDOC_MAX_CONCURRENT_TURNS": str(admission)} if admission is not None else {}
    with gpudoc_serve(Path(tempfile.mkdtemp(dir=logs)), llm_url, "--db-url", db_url, workers=workers,
                      env=env) as served:
        yield served


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of a process and its live children (workers, PostgreSQL backends), and of the
    children it has already waited for."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    total = (int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])) / CLOCK_TICKS
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        try:
            total += tree_cpu_seconds(int(child))
        except (FileNotFoundError, ProcessLookupError):
            pass  # gone meanwhile
    return total


def completion_tokens(base_url: str) -> float:
    return metric(base_url, "gpudoc_llm_tokens_total", kind="completion")


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


# ---- streaming clients -------------------------------------------------------------------------


async def streams_at_once(base_url: str, count: int) -> tuple[float, list[Stream]]:
    """(wall seconds to the last stream's end, the streams) for ``count`` streams started together."""
    started = time.perf_counter()
    results = await asyncio.gather(*(stream_once(base_url, QUESTION) for _ in range(count)))
    return time.perf_counter() - started, list(results)


async def sequential_turns(base_url: str, count: int, concurrency: int) -> None:
    for start in range(0, count, concurrency):
        batch = await asyncio.gather(*(stream_once(base_url, QUESTION) for _ in range(min(concurrency, count - start))))
        if not all(s.ok for s in batch):
            raise RuntimeError(f"a turn failed: {batch}")


RAW_CLIENT = r'''
import asyncio, sys, time, openai
async def main(url, model, turns, concurrency):
    client = openai.AsyncOpenAI(base_url=url, api_key="EMPTY", max_retries=0)
    async def one():
        stream = await client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": sys.argv[5]}], stream=True,
            stream_options={"include_usage": True})
        tokens = 0
        async for chunk in stream:
            if chunk.choices:
                delta = chunk.choices[0].delta
                if delta.content or getattr(delta, "reasoning_content", None):
                    tokens += 1
        return tokens
    await one()  # warm-up: connection, imports
    started, tokens = time.process_time(), 0
    for start in range(0, turns, concurrency):
        tokens += sum(await asyncio.gather(*(one() for _ in range(min(concurrency, turns - start)))))
    print(time.process_time() - started, tokens)
asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
'''


def raw_client_cpu(llm_url: str, turns: int, concurrency: int) -> tuple[float, int]:
    """(CPU seconds, tokens) of the raw OpenAI client receiving ``turns`` streamed answers."""
    output = subprocess.run([sys.executable, "-c", RAW_CLIENT, llm_url, STUB_MODEL, str(turns), str(concurrency),
                             QUESTION], capture_output=True, text=True, check=True).stdout.split()
    return float(output[0]), int(output[1])


# ---- measurements ------------------------------------------------------------------------------


@dataclass
class TokenCost:
    server_ms: float  # per extra streamed token
    raw_ms: float
    server_turn_ms: float  # a short turn, whole
    tokens_per_turn: float

    @property
    def ratio(self) -> float:
        return self.server_ms / self.raw_ms


def server_turn_cpu(llm_url: str, db_url: str, logs: Path, turns: int, concurrency: int) -> tuple[float, float]:
    """(CPU seconds per turn, completion tokens per turn) of ``gpudoc serve`` (one worker)."""
    with serve_on_postgres(llm_url, db_url, 1, logs) as served:
        asyncio.run(sequential_turns(served.url, 2, 1))  # warm-up
        cpu, tokens = cpu_seconds(served.pid), completion_tokens(served.url)
        asyncio.run(sequential_turns(served.url, turns, concurrency))
        return (cpu_seconds(served.pid) - cpu) / turns, (completion_tokens(served.url) - tokens) / turns


def token_cost(db_url: str, logs: Path, args: argparse.Namespace, pace_s: float) -> TokenCost:
    concurrency = 1 if pace_s == 0 else args.cpu_turns  # paced streams take seconds: run them together
    long_words = {"reasoning_words": args.reasoning_words, "answer_words": args.answer_words}
    with stub_vllm(pace_s=pace_s) as short, stub_vllm(pace_s=pace_s, **long_words) as long:
        short_url, long_url = short.url, long.url
        short_cpu, short_tokens = server_turn_cpu(short_url, db_url, logs, args.cpu_turns, concurrency)
        long_cpu, long_tokens = server_turn_cpu(long_url, db_url, logs, args.cpu_turns, concurrency)
        raw_short, raw_short_tokens = raw_client_cpu(short_url, args.cpu_turns, concurrency)
        raw_long, raw_long_tokens = raw_client_cpu(long_url, args.cpu_turns, concurrency)
    server = (long_cpu - short_cpu) / (long_tokens - short_tokens)
    raw = (raw_long - raw_short) / (raw_long_tokens - raw_short_tokens)
    return TokenCost(server * 1000, raw * 1000, short_cpu * 1000, long_tokens)


@dataclass
class Burst:
    wall_s: float
    streams: list[Stream]
    cpu_s: dict[str, float]  # CPU seconds each party (and each worker) used during the burst

    def cpu_text(self) -> str:
        return ", ".join(f"{name} {seconds:.1f}" for name, seconds in self.cpu_s.items())


def burst(served: Process, count: int, parties: dict[str, int]) -> Burst:
    """``count`` streams at once after a warm-up; with the CPU time of the server, the stub,
    PostgreSQL (``parties``: name -> pid of a process tree) and this client."""
    asyncio.run(streams_at_once(served.url, 8))  # warm-up: every worker has served a turn
    workers = [int(pid) for pid in Path(f"/proc/{served.pid}/task/{served.pid}/children").read_text().split()
               if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]
    trees = {"gpudoc serve total": served.pid, **{f"worker {n + 1}": pid for n, pid in enumerate(workers)}, **parties}
    before = {name: tree_cpu_seconds(pid) for name, pid in trees.items()}
    client = time.process_time()
    wall, streams = asyncio.run(streams_at_once(served.url, count))
    used = {name: tree_cpu_seconds(pid) - before[name] for name, pid in trees.items()}
    used["client"] = time.process_time() - client
    return Burst(wall, streams, used)


def describe(streams: list[Stream]) -> str:
    ok = [s for s in streams if s.ok]
    refused = sum(1 for s in streams if s.status == 429)
    errors = len(streams) - len(ok) - refused
    firsts = [s.first_token_s for s in ok if s.first_token_s is not None]
    totals = [s.total_s for s in ok]
    text = f"errors {errors}" + (f", refused (429) {refused}" if refused else "")
    if firsts:
        text += f"; first token p50 {percentile(firsts, .5):.2f} s p99 {percentile(firsts, .99):.2f} s"
    if totals:
        text += f"; whole stream p50 {percentile(totals, .5):.2f} s p99 {percentile(totals, .99):.2f} s"
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--burst", type=int, default=60, help="streams at once for 1 vs 2 workers")
    parser.add_argument("--repeats", type=int, default=3, help="bursts per worker count (alternating)")
    parser.add_argument("--streams", type=int, default=200, help="streams at once for the latency percentiles")
    parser.add_argument("--cpu-turns", type=int, default=6, help="turns per CPU-per-token measurement")
    parser.add_argument("--reasoning-words", type=int, default=500, help="filler tokens before each reasoning")
    parser.add_argument("--answer-words", type=int, default=1000, help="filler tokens before each answer")
    parser.add_argument("--pace-ms", type=float, default=4.0, help="ms between tokens for the paced measurement")
    parser.add_argument("--admission", type=int, default=None,
                        help="turns a worker takes at once in the admission-control run of part 3 "
                             "(default: the server's GPUDOC_MAX_CONCURRENT_TURNS default)")
    parser.add_argument("--skip", choices=["cpu", "burst", "streams"], action="append", default=[])
    args = parser.parse_args()

    logs = Path(tempfile.mkdtemp(prefix="gpudoc-bench-logs-"))
    database = PostgresServer(Path(tempfile.mkdtemp(prefix="gpudoc-bench-postgres-")))
    print(f"load average at start: {load_average()} ({os.cpu_count()} CPUs)", flush=True)
    try:
        database.start()
        db_url = database.create_database("gpudoc_bench")
        if "cpu" not in args.skip:
            for label, pace_s in (("stub as fast as it writes", 0.0), (f"paced {args.pace_ms:g} ms a token",
                                                                        args.pace_ms / 1000)):
                cost = token_cost(db_url, logs, args, pace_s)
                print(f"CPU per streamed token ({label}; {cost.tokens_per_turn:.0f} tokens a long turn):")
                print(f"  gpudoc serve (one worker)      {cost.server_ms:8.4f} ms   (short turn {cost.server_turn_ms:.0f} ms)")
                print(f"  raw OpenAI client              {cost.raw_ms:8.4f} ms")
                print(f"  ratio server / raw client      {cost.ratio:8.2f}x", flush=True)
        if "burst" not in args.skip:
            walls: dict[int, list[float]] = {1: [], 2: []}
            with stub_vllm() as stub:
                parties = {"stub": stub.pid, "postgres": database.pid}
                for repeat in range(args.repeats):
                    for workers in ((1, 2) if repeat % 2 == 0 else (2, 1)):
                        with serve_on_postgres(stub.url, db_url, workers, logs) as served:
                            result = burst(served, args.burst, parties)
                        walls[workers].append(result.wall_s)
                        print(f"  burst of {args.burst}, {workers} worker(s): {result.wall_s:6.2f} s; "
                              f"{describe(result.streams)}; CPU s: {result.cpu_text()} (load {load_average()})",
                              flush=True)
            one, two = statistics.median(walls[1]), statistics.median(walls[2])
            print(f"{args.burst} concurrent streams, PostgreSQL threads, median of {args.repeats}:")
            print(f"  1 worker                       {one:8.2f} s")
            print(f"  2 workers                      {two:8.2f} s")
            print(f"  speed-up                       {one / two:8.2f}x", flush=True)
        if "streams" not in args.skip:
            print(f"{args.streams} concurrent streams:")
            with stub_vllm() as stub:
                parties = {"stub": stub.pid, "postgres": database.pid}
                for admission, label in ((UNLIMITED, "every stream admitted"),
                                         (args.admission, "with admission control")):
                    for workers in (1, 2):
                        with serve_on_postgres(stub.url, db_url, workers, logs, admission) as served:
                            result = burst(served, args.streams, parties)
                        print(f"  {workers} worker(s), {label}: wall {result.wall_s:.2f} s; "
                              f"{describe(result.streams)}; CPU s: {result.cpu_text()}", flush=True)
        print(f"load average at end: {load_average()}")
    finally:
        database.stop()
        shutil.rmtree(database.root, ignore_errors=True)
        shutil.rmtree(logs, ignore_errors=True)


if __name__ == "__main__":
    main()
