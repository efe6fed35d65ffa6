"""Recall and precision of the diagnosis through a real Prometheus, next to reading the simulator directly.

For every hardware and network scenario (at its default place and at another place), their
combinations and the negative controls (``healthy``, ``app-xid``), this starts ``gpudoc sim`` with the
scenario, a real Prometheus on its backfilled last 50 minutes scraping its per-node exporters with
gpudoc's rules, runs ``diagnose`` with ``--source prometheus``, and reads the same simulation directly
at the instant Prometheus evaluated. Findings count as in ``analyzer_accuracy.py`` (a critical or
warning finding matches an injected fault with its subject and at least its severity; one matching
none is a false positive), restricted to what Prometheus can know: hardware, host and network
findings (jobs and scheduling come from Slurm, composed separately). ``agree`` counts the cases
where both paths name exactly the same subjects at the same severities.

    .venv/bin/python benchmarks/prometheus_accuracy.py [--seed 3] [--nodes 8]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from analyzer_accuracy import COMBINATIONS, Tally, places  # noqa: E402

from gpudoc.tools.diagnosis.engine import analyze  # noqa: E402
from gpudoc.tools.diagnosis.facts import gather_facts  # noqa: E402
from gpudoc.tools.diagnosis.findings import Finding  # noqa: E402
from gpudoc.tools.sim.scenarios import SCENARIOS  # noqa: E402
from gpudoc.tools.sim.source import SimSource  # noqa: E402
from gpudoc.tools.sources.prometheus import PrometheusClient, PrometheusSource  # noqa: E402
from tests.services.prometheus import start_prometheus, start_sim, wait_for_scrapes  # noqa: E402

COVERED = ("hardware", "network", "host")
SLURM_ONLY = ("node.drained", "node.gres_count_low", "node.slurm_not_responding", "job.", "sched.")
HARDWARE = [name for name, spec in SCENARIOS.items() if spec.hardware]
CONTROLS = ["healthy", "app-xid"]


def covered(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.category in COVERED and not f.rule.startswith(SLURM_ONLY)]


def signature(findings: list[Finding]) -> set[tuple[str, str]]:
    return {(f.subject, f.severity) for f in findings if f.severity != "info"}


async def run_case(work: Path, scenarios: list[str], seed: int, nodes: int) -> tuple[list[Finding], list[Finding], list, float]:
    args = ["--nodes", str(nodes), "--seed", str(seed), *[a for s in scenarios for a in ("--scenario", s)]]
    sim = start_sim(work, *args, history_minutes=50)
    prometheus = None
    try:
        prometheus = start_prometheus(work, sim.feed, interval="5s")
        wait_for_scrapes(prometheus.url, 2 * nodes, rounds=1, interval_s=5)
        source = PrometheusSource(PrometheusClient(prometheus.url))
        try:
            started = time.perf_counter()
            through = analyze(await gather_facts(source))
            elapsed = time.perf_counter() - started
            at = source.client.now()
        finally:
            await source.aclose()
    finally:
        if prometheus is not None:
            prometheus.stop()
        sim.stop()
    direct = SimSource.create(seed=seed, nodes=nodes, scenarios=scenarios, realtime=False, now=sim.anchor)
    direct.advance(max(0.0, at - sim.anchor.timestamp()))
    reference = analyze(await gather_facts(direct))
    truths = [t for t in direct.ground_truth if SCENARIOS[t.scenario].hardware or t.severity is None]
    return covered(through), covered(reference), truths, elapsed


async def main(seed: int, nodes: int) -> None:
    cases = [[p] for name in HARDWARE for p in places(name, nodes)[:2]]
    cases += [[c for c in combo if c in HARDWARE or c in CONTROLS] for combo in COMBINATIONS]
    cases += [[name] for name in CONTROLS]
    via_prometheus, direct, agree, times = Tally(), Tally(), 0, []
    disagreements = []
    for number, scenarios in enumerate(cases, 1):
        label = " + ".join(scenarios)
        work = Path(tempfile.mkdtemp(prefix="gpudoc-accuracy-"))
        try:
            through, reference, truths, elapsed = await run_case(work, scenarios, seed, nodes)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        via_prometheus.add(label, through, truths)
        direct.add(label, reference, truths)
        times.append(elapsed)
        same = signature(through) == signature(reference)
        agree += same
        if not same:
            disagreements.append((label, sorted(signature(through)), sorted(signature(reference))))
        print(f"[{number}/{len(cases)}] {label}: {'agree' if same else 'DIFFER'} ({elapsed:.2f} s)", flush=True)
    print(f"\nprometheus accuracy: {len(cases)} cases, seed {seed}, {nodes} nodes")
    for name, tally in (("through Prometheus", via_prometheus), ("direct (baseline)", direct)):
        print(f"{name:<20} recall {tally.recall:.3f} ({tally.found}/{tally.expected})  precision {tally.precision:.3f} "
              f"({tally.flagged - tally.false_positives}/{tally.flagged})")
    print(f"agree on every subject and severity: {agree}/{len(cases)} cases")
    print(f"gather+analyze through Prometheus: median {sorted(times)[len(times) // 2]:.2f} s, max {max(times):.2f} s")
    for line in via_prometheus.misses:
        print("MISS (prometheus)", line)
    for line in via_prometheus.spurious:
        print("FALSE+ (prometheus)", line)
    for label, through, reference in disagreements:
        print(f"DIFFER {label}: prometheus {through} direct {reference}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--nodes", type=int, default=8)
    options = parser.parse_args()
    asyncio.run(main(options.seed, options.nodes))
