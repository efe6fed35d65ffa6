"""What the nine tools cost through the GPU Watchdog API, against the same tools in process.

Why: sites that run GPU Watchdog reach gpudoc through its REST API; every tool call then costs
HTTP requests and JSON reading on top of the facts themselves. This script runs each tool on
the simulated cluster in process (the baseline) and through ``WatchdogSource`` reading
``gpudoc sim``'s API (served in process, so no network time is counted): once with every call
reading the backend's state itself, once with the calls of one round sharing one reading
(``state_reuse_s``, the default). Each round starts cold. It prints the time ratios and the
requests each tool made.

    .venv/bin/python benchmarks/watchdog_source.py [--nodes 8] [--repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import Counter
from typing import Any

import httpx

from gpudoc.tools.cluster_tools import TOOL_NAMES, build_cluster_tools
from gpudoc.tools.sim.source import SimSource
from gpudoc.tools.sim.watchdog_api import create_watchdog_app
from gpudoc.tools.sources.watchdog import STATE_REUSE_S, WatchdogSource

ARGS = {"get_node_details": {"node_id": "node-2"}, "get_gpu_history": {"node_id": "node-2", "duration_minutes": 60},
        "get_slurm_jobs": {"state": "PENDING"}}
SCENARIOS = ["thermal-throttle@node-2/gpu-3", "host-down@node-6"]
ROUND = ("get_cluster_status", "get_current_metrics", "get_slurm_status")


class CountingTransport(httpx.AsyncBaseTransport):
    def __init__(self, inner: httpx.AsyncBaseTransport):
        self.inner, self.paths = inner, Counter[str]()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.paths[request.url.path] += 1
        return await self.inner.handle_async_request(request)


class Runner:
    """The nine tools over one source; ``fresh`` makes the next round start cold."""

    def __init__(self, source: Any, fresh: Any = None):
        self.tools = {t.name: t for t in build_cluster_tools(source)}
        self.fresh = fresh or (lambda: None)

    async def call(self, name: str) -> None:
        message = await self.tools[name].ainvoke({"type": "tool_call", "id": "b", "name": name,
                                                  "args": ARGS.get(name, {})})
        assert message.status == "success", message.content

    async def round(self, names: tuple[str, ...], repeat: int) -> float:
        start = time.perf_counter()
        for _ in range(repeat):
            self.fresh()
            await asyncio.gather(*(self.call(name) for name in names))
        return (time.perf_counter() - start) / repeat


async def measure(nodes: int, repeat: int) -> None:
    sim = SimSource.create(nodes=nodes, scenarios=SCENARIOS, realtime=False)
    counting = CountingTransport(httpx.ASGITransport(app=create_watchdog_app(sim)))
    separate = WatchdogSource("http://sim", transport=counting, state_reuse_s=0)
    shared = WatchdogSource("http://sim", transport=counting, state_reuse_s=STATE_REUSE_S)
    runners = {"in process": Runner(sim), "separate": Runner(separate),
               "shared": Runner(shared, lambda: setattr(shared, "_shared_state", None))}
    for runner in runners.values():  # warm caches and the first evaluation of the alert rules
        await runner.round(TOOL_NAMES, 1)
    print(f"simulated cluster: {nodes} nodes x 8 GPUs, {', '.join(SCENARIOS)}; mean of {repeat} rounds")
    print(f"{'tool':<22}{'in process':>11}{'via API':>10}{'shared':>10}{'ratio':>8}  requests per call (shared)")
    rows = [(name, (name,)) for name in TOOL_NAMES] + [("3 overview tools", ROUND)]
    for label, names in rows:
        times = {}
        for kind, runner in runners.items():
            counting.paths.clear()
            times[kind] = await runner.round(names, repeat)
        requests = ", ".join(f"{path} x{count / repeat:g}" for path, count in sorted(counting.paths.items()))
        print(f"{label:<22}{times['in process'] * 1000:>9.1f}ms{times['separate'] * 1000:>8.1f}ms"
              f"{times['shared'] * 1000:>8.1f}ms{times['shared'] / times['in process']:>7.1f}x  {requests}")
    await separate.aclose()
    await shared.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(measure(args.nodes, args.repeat))


if __name__ == "__main__":
    main()
