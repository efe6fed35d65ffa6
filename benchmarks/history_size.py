"""Size of ``get_gpu_history`` against the raw GPU Watchdog history payload for the same data.

Why: the model reads every tool result on every round; the history summary exists to replace the
raw series. This script measures, in one run on the simulated cluster, the bytes of the original
API's ``GET /api/metrics/history/gpu?nodeId=…&duration=…`` response (served by gpudoc's GPU
Watchdog app in process, exactly as ``gpudoc sim`` serves it) and the bytes of the tool's result
for the same node and window, and prints the ratio.

    .venv/bin/python benchmarks/history_size.py [--nodes 8] [--seed 42]
"""

from __future__ import annotations

import argparse
import asyncio
import json

import httpx

from gpudoc.tools.cluster_tools import build_cluster_tools
from gpudoc.tools.compact import OUTPUT_BUDGET_CHARS
from gpudoc.tools.sim.source import SimSource
from gpudoc.tools.sim.watchdog_api import create_watchdog_app

CASES: tuple[tuple[str | None, int, str], ...] = (
    ("node-0", 60, "one healthy node, 60 min"),
    ("node-2", 60, "node-2 with a thermal throttle, 60 min"),
    ("node-0", 1440, "one node, 24 h"),
    (None, 60, "all nodes, 60 min"),
)


async def measure(nodes: int, seed: int) -> None:
    source = SimSource.create(
        seed=seed, nodes=nodes, gpu_model="a100", scenarios=["thermal-throttle@node-2/gpu-3"], realtime=False
    )
    tool = next(t for t in build_cluster_tools(source) if t.name == "get_gpu_history")
    app = create_watchdog_app(source)
    transport = httpx.ASGITransport(app=app)
    print(f"simulated cluster: {nodes} nodes x 8 GPUs, seed {seed}; tool budget {OUTPUT_BUDGET_CHARS} chars")
    print(f"{'case':<42} {'raw API bytes':>14} {'tool bytes':>11} {'ratio':>8}")
    async with httpx.AsyncClient(transport=transport, base_url="http://watchdog") as client:
        for node_id, minutes, label in CASES:
            params: dict[str, str | int] = {"duration": minutes}
            if node_id is not None:
                params["nodeId"] = node_id
            response = await client.get("/api/metrics/history/gpu", params=params)
            response.raise_for_status()
            raw_bytes = len(response.content)
            samples = sum(len(gpu["data"]) for gpu in response.json()["data"])
            args: dict[str, str | int] = {"duration_minutes": minutes}
            if node_id is not None:
                args["node_id"] = node_id
            result = await tool.ainvoke(args)
            json.loads(result)  # the result is the JSON the model reads
            tool_bytes = len(result.encode("utf-8"))
            print(
                f"{label:<42} {raw_bytes:>14,} {tool_bytes:>11,} {raw_bytes / tool_bytes:>7.1f}x"
                f"   ({samples} samples)"
            )
    await source.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=8)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    asyncio.run(measure(args.nodes, args.seed))


if __name__ == "__main__":
    main()
