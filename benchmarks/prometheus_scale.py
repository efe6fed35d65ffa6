"""``--source prometheus`` at 1,000 nodes x 8 GPUs: queries, bytes and wall time per tool call.

``gpudoc sim`` serves 1,000 nodes' dcgm-exporter and node_exporter pages (2,000 targets) to a real
Prometheus scraping every 15 s with gpudoc's rules, started on the last 30 minutes (one backfilled
scrape every 5 minutes); after a few rounds this measures, on fresh snapshots (nothing cached):
- ``diagnose_cluster`` (the whole cluster): screened in PromQL, then only the named nodes read; the
  screen read from gpudoc's ``gpudoc:screen`` recording rule (as shipped), and evaluated per call (a
  Prometheus without gpudoc's rules);
- a node question: ``diagnose_cluster(node)`` and ``get_node_details(node)``;
- the baseline, measured in the same run: the same diagnosis by pulling every node's raw series
  (current readings and an hour of history for all GPUs) and analysing them in Python.

    .venv/bin/python benchmarks/prometheus_scale.py [--nodes 1000] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gpudoc.tools.cluster_tools import build_cluster_tools  # noqa: E402
from gpudoc.tools.sources.prometheus import PrometheusClient, PrometheusSource  # noqa: E402
from tests.services.prometheus import start_prometheus, start_sim, wait_for_scrapes  # noqa: E402

FAULTS = ["xid79-fell-off-bus@node-17/gpu-3", "host-down@node-503", "ib-flap@node-250",
          "thermal-throttle@node-900/gpu-1", "nvlink-degraded@node-42/gpu-0", "pcie-degraded@node-777/gpu-2",
          "app-xid@node-333/gpu-5"]
NODE = "node-42"


class PullEverything(PrometheusSource):
    """The baseline: the same source without screening, so the diagnosis pulls every node's raw series."""

    screens_cluster = False


class ScreenEvaluatedNow(PrometheusSource):
    """The shipped source on a Prometheus without gpudoc's recording rule: it evaluates the screen itself."""

    async def _screen(self, history_minutes: int) -> list[dict[str, object]]:
        rows = await self._query(self.promql.triage(f"{history_minutes}m", "24h"))
        return [row for row in rows if "instance" in row["metric"]]


async def measure(source: PrometheusSource, tool: str, arguments: dict[str, object], runs: int) -> dict[str, float]:
    tools = {t.name: t for t in build_cluster_tools(source)}
    walls, requests, sizes, payload = [], [], [], ""
    for _ in range(runs):
        source.client.new_snapshot()
        source.client.stats.reset()
        started = time.perf_counter()
        payload = await tools[tool].ainvoke(arguments)
        walls.append(time.perf_counter() - started)
        requests.append(source.client.stats.requests)
        sizes.append(source.client.stats.bytes)
    return {"wall_s": statistics.median(walls), "queries": statistics.median(requests),
            "bytes": statistics.median(sizes), "payload": payload,  # type: ignore[dict-item]
            "log": list(source.client.stats.log)}  # type: ignore[dict-item]


async def _wait_for_screen_rule(url: str, timeout_s: float = 300) -> None:
    """Until Prometheus has evaluated gpudoc's ``gpudoc:screen`` recording rule once."""
    client = PrometheusClient(url)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            client.new_snapshot()
            if await client.query('gpudoc:screen{gpudoc="evaluated"}'):
                return
            await asyncio.sleep(5)
    finally:
        await client.aclose()
    raise RuntimeError("the gpudoc:screen recording rule was never evaluated")


def row(label: str, m: dict[str, float], base: dict[str, float] | None = None) -> str:
    text = f"{label:<44} {m['queries']:>7.0f} {m['bytes'] / 1e6:>9.2f} MB {m['wall_s']:>8.2f} s"
    if base:
        text += (f"   x{base['queries'] / max(m['queries'], 1):.1f} fewer queries, x{base['bytes'] / max(m['bytes'], 1):.0f} "
                 f"fewer bytes, x{base['wall_s'] / max(m['wall_s'], 1e-9):.1f} faster")
    return text


async def main(nodes: int, runs: int, rounds: int, history_minutes: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="gpudoc-scale-"))
    scenarios = [f for f in FAULTS if int(f.split("@node-")[1].split("/")[0]) < nodes]
    sim = start_sim(work, "--nodes", str(nodes), "--seed", "11", *[a for s in scenarios for a in ("--scenario", s)],
                    history_minutes=history_minutes, history_step=300)
    prometheus = None
    try:
        started = time.monotonic()
        prometheus = start_prometheus(work, sim.feed, interval="15s")
        wait_for_scrapes(prometheus.url, 2 * nodes, rounds=rounds, interval_s=15, timeout_s=900)
        await _wait_for_screen_rule(prometheus.url)
        print(f"{nodes} nodes x 8 GPUs: {2 * nodes} targets scraped {rounds}+ times after "
              f"{time.monotonic() - started:.0f} s; faults: {', '.join(scenarios)}", flush=True)
        source = PrometheusSource(PrometheusClient(prometheus.url, timeout_s=120))
        baseline = PullEverything(PrometheusClient(prometheus.url, timeout_s=600))
        live = ScreenEvaluatedNow(PrometheusClient(prometheus.url, timeout_s=300))
        try:
            scope = await source.diagnosis_scope(60)
            print(f"screen: {len(scope.focus)} of {len(scope.node_ids)} nodes to read in full: "
                  + "; ".join(f"{n} ({', '.join(scope.reasons[n])})" for n in scope.focus[:12]), flush=True)
            cluster = await measure(source, "diagnose_cluster", {}, runs)
            node_diag = await measure(source, "diagnose_cluster", {"node": NODE}, runs)
            node_details = await measure(source, "get_node_details", {"node_id": NODE}, runs)
            screened_now = await measure(live, "diagnose_cluster", {}, 1)
            pulled = await measure(baseline, "diagnose_cluster", {}, 1)
            pulled_node = await measure(baseline, "diagnose_cluster", {"node": NODE}, 1)
        finally:
            await source.aclose()
            await baseline.aclose()
            await live.aclose()
        print(f"\n{'per tool call (median of ' + str(runs) + ' fresh snapshots)':<44} {'queries':>7} {'bytes':>12} {'wall':>10}")
        print(row("diagnose_cluster, screen kept by the rule", cluster, pulled))
        print(row("diagnose_cluster, screen evaluated per call", screened_now, pulled))
        print(row("diagnose_cluster, raw series pulled (baseline)", pulled))
        print(row(f"diagnose_cluster(node={NODE}), screened", node_diag, pulled_node))
        print(row(f"diagnose_cluster(node={NODE}), raw (baseline)", pulled_node))
        print(row(f"get_node_details({NODE})", node_details))
        print("\nthe screened diagnose_cluster's requests (path, bytes, seconds, query):")
        for path, query, size, seconds in cluster["log"]:  # type: ignore[union-attr]
            print(f"  {path:<22} {size / 1e3:>9.1f} kB {seconds:>6.2f} s  {query}")
        goal = cluster["wall_s"] <= 5 and cluster["queries"] <= 20
        print(f"\ngoal diagnose_cluster <= 5 s and <= 20 queries at this size: {'met' if goal else 'NOT met'}")
        for name, result in (("screened", cluster), ("baseline", pulled)):
            findings = json.loads(result["payload"])["findings"]  # type: ignore[arg-type]
            print(f"{name} findings: " + "; ".join(
                f"{f['severity']} {f.get('subject') or f.get('subjects')} {f['rule']}" for f in findings[:12]))
    finally:
        if prometheus is not None:
            prometheus.stop()
        sim.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3, help="scrape rounds to wait for after the first")
    parser.add_argument("--history-minutes", type=int, default=30,
                        help="past written for Prometheus to start on, one scrape every 5 min (0: none)")
    options = parser.parse_args()
    asyncio.run(main(options.nodes, options.runs, options.rounds, options.history_minutes))
