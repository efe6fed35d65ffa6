"""Precision and recall of the deterministic analyzers against the simulator's ground truth.

Runs every scenario at its default place and at other places, over several seeds, plus the
healthy baseline and runs with several coexisting faults. A critical/warning finding *matches*
an injected fault when its subject is the fault's subject (or, for job-level faults, names the
fault's job) and it is at least as severe as expected; every critical/warning finding matching
no injected fault is a false positive. The baseline measured in the same run is what the
operator's threshold alerts alone (active alert events) would have flagged.

    .venv/bin/python benchmarks/analyzer_accuracy.py [--seeds 1 2 3] [--nodes 8]
"""

from __future__ import annotations

import argparse
import asyncio
from collections import defaultdict
from dataclasses import dataclass, field

from gpudoc.tools.diagnosis.engine import analyze
from gpudoc.tools.diagnosis.facts import gather_facts
from gpudoc.tools.diagnosis.findings import SEVERITY_ORDER, Finding
from gpudoc.tools.sim.scenarios import SCENARIOS, GroundTruth
from gpudoc.tools.sim.source import SimSource

#: fault mixes that must all be found together (default places do not collide)
COMBINATIONS = [
    ["xid79-fell-off-bus", "thermal-throttle", "app-xid"],
    ["host-down", "ib-flap", "straggler", "power-brake"],
    ["hbm-uncorrectable", "pcie-degraded", "pending-on-drained", "ecc-correctable-storm"],
    ["gsp-hang", "nvlink-degraded", "idle-allocated"],
]


def places(name: str, nodes: int) -> list[str]:
    """The scenario at its default place and at two other places."""
    spec = SCENARIOS[name]
    if spec.default_node is None:
        return [name]
    out = [name]
    for node_shift, gpu_shift in ((3, 2), (5, 5)):
        node = (spec.default_node + node_shift) % nodes
        where = f"node-{node}" if spec.default_gpu is None else f"node-{node}/gpu-{(spec.default_gpu + gpu_shift) % 8}"
        out.append(f"{name}@{where}")
    return out


def matches(finding: Finding, truth: GroundTruth) -> bool:
    if truth.severity is None or SEVERITY_ORDER[finding.severity] > SEVERITY_ORDER[truth.severity]:
        return False
    if finding.subject == truth.subject:
        return True
    return truth.job_id is not None and truth.job_id in (finding.job_id, finding.subject)


@dataclass
class Tally:
    expected: int = 0
    found: int = 0
    flagged: int = 0
    false_positives: int = 0
    misses: list[str] = field(default_factory=list)
    spurious: list[str] = field(default_factory=list)

    def add(self, label: str, findings: list[Finding], truths: list[GroundTruth]) -> None:
        serious = [f for f in findings if f.severity in ("critical", "warning")]
        for truth in truths:
            if truth.severity is None:
                continue
            self.expected += 1
            if any(matches(f, truth) for f in serious):
                self.found += 1
            else:
                self.misses.append(f"{label}: {truth.scenario} {truth.subject} ({truth.severity})")
        self.flagged += len(serious)
        for f in serious:
            if not any(matches(f, t) for t in truths):
                self.false_positives += 1
                self.spurious.append(f"{label}: {f.severity} {f.subject} {f.rule}")

    @property
    def recall(self) -> float:
        return self.found / self.expected if self.expected else 1.0

    @property
    def precision(self) -> float:
        return (self.flagged - self.false_positives) / self.flagged if self.flagged else 1.0


def alert_findings(facts) -> list[Finding]:
    """The baseline: each active alert event as a warning about its GPU or node."""
    return [
        Finding(severity="warning", subject=f"{e.node_id}/gpu-{e.gpu_index}" if e.gpu_index is not None else e.node_id,
                rule="alert.active", title=e.rule_name)
        for e in facts.alert_events or [] if e.active
    ]


async def run_case(scenarios: list[str], seed: int, nodes: int) -> tuple[list[Finding], list[Finding], list[GroundTruth]]:
    source = SimSource.create(seed=seed, nodes=nodes, scenarios=scenarios, realtime=False)
    try:
        facts = await gather_facts(source)
        return analyze(facts), alert_findings(facts), list(source.ground_truth)
    finally:
        await source.aclose()


async def main(seeds: list[int], nodes: int) -> None:
    per_scenario: dict[str, Tally] = defaultdict(Tally)
    overall, alerts_only = Tally(), Tally()
    cases = [(p, [p]) for name in SCENARIOS for p in places(name, nodes)]
    cases += [(" + ".join(combo), combo) for combo in COMBINATIONS]
    for seed in seeds:
        for label, scenarios in cases:
            findings, baseline, truths = await run_case(scenarios, seed, nodes)
            tag = f"seed {seed} {label}"
            key = scenarios[0].split("@")[0] if len(scenarios) == 1 else "(combinations)"
            per_scenario[key].add(tag, findings, truths)
            overall.add(tag, findings, truths)
            alerts_only.add(tag, baseline, truths)

    print(f"analyzer accuracy: {len(cases)} cases x {len(seeds)} seeds, {nodes} nodes")
    print(f"{'scenario':<24} {'expected':>8} {'found':>6} {'recall':>7} {'flagged':>8} {'false+':>7} {'precision':>9}")
    for name, t in per_scenario.items():
        print(f"{name:<24} {t.expected:>8} {t.found:>6} {t.recall:>7.2f} {t.flagged:>8} {t.false_positives:>7} {t.precision:>9.2f}")
    print()
    for label, t in (("analyzers", overall), ("alerts only (baseline)", alerts_only)):
        print(f"{label:<24} recall {t.recall:.3f} ({t.found}/{t.expected})  precision {t.precision:.3f} "
              f"({t.flagged - t.false_positives}/{t.flagged})")
    if alerts_only.recall:
        print(f"recall ratio analyzers/alerts: {overall.recall / alerts_only.recall:.2f}x")
    for line in overall.misses:
        print("MISS", line)
    for line in overall.spurious:
        print("FALSE+", line)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--nodes", type=int, default=8)
    options = parser.parse_args()
    asyncio.run(main(options.seeds, options.nodes))
