"""``SimSource``: the embedded simulated GPU cluster, gpudoc's default ``ClusterSource``.

Why it is the default: every test, eval and demo needs a cluster with known faults and known
answers (``ground_truth``), reproducible from a seed, without any hardware or network.

``cluster_status().healthy`` is False when any node is unreachable or Slurm-DOWN, any GPU's
series is stale, or any alert of a critical rule (``alerts.CRITICAL_RULES``) is active.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Literal, Sequence

from gpudoc.tools.models import (
    AlertEvent,
    AlertRule,
    ClusterStatus,
    GpuSeries,
    NodeMetrics,
    SlurmSnapshot,
    SlurmSummary,
)
from gpudoc.tools.sim.alerts import CRITICAL_RULES, default_rules, rules_created_at
from gpudoc.tools.sim.baseline import SCRAPE_S, Baseline
from gpudoc.tools.sim.clock import DEFAULT_NOW, SimClock
from gpudoc.tools.sim.faults import Fault, build_fault
from gpudoc.tools.sim.noise import Noise
from gpudoc.tools.sim.plan import JobPlan, generate_baseline
from gpudoc.tools.sim.rule_book import RuleBook
from gpudoc.tools.sim.scenarios import GroundTruth, ScenarioPlacement, parse_scenario
from gpudoc.tools.sim.slurm import SlurmView
from gpudoc.tools.sim.telemetry import Telemetry
from gpudoc.tools.sim.topology import Topology
from gpudoc.tools.sources.base import ClusterSource, UnknownNodeError

#: How far before the anchor the alert evaluator starts (all scenario onsets lie within it).
ALERT_HORIZON_S = 75 * 60
#: The most points ``slurm_history`` returns; longer windows are thinned evenly.
SLURM_HISTORY_POINTS = 720


class SimSource(ClusterSource):
    """A simulated cluster of ``nodes`` x 8 GPUs with injected faults; see ``create``."""

    name = "sim"

    def __init__(self, *, topo: Topology, clock: SimClock, plan: JobPlan, faults: list[Fault],
                 placements: list[ScenarioPlacement], noise: Noise):
        self.topo, self.clock, self.plan, self.faults = topo, clock, plan, faults
        self.placements = placements
        anchor_epoch = clock.anchor.timestamp()
        self.telemetry = Telemetry(topo, Baseline(topo, plan, noise, anchor_epoch), faults)
        self.slurm_view = SlurmView(topo, plan, faults, self.telemetry.at_rel)
        start = int((anchor_epoch - ALERT_HORIZON_S) // SCRAPE_S)
        created = rules_created_at(clock.anchor)
        rules = default_rules(topo.spec, created) + [rule for fault in faults for rule in fault.alert_rules(created)]
        self.rule_book = RuleBook(rules, self.telemetry, topo,
                                  start, self.slurm_view.alert_readings)
        self.ground_truth: list[GroundTruth] = [f.truth() for f in faults]

    @classmethod
    def create(cls, *, seed: int = 42, nodes: int = 8, gpu_model: Literal["a100", "h100"] = "a100",
               scenarios: Sequence[str] = (), realtime: bool = True, now: datetime | None = None) -> "SimSource":
        """Build a cluster. ``scenarios`` are ``NAME[@node-N[/gpu-M]]`` strings (see ``scenarios.SCENARIOS``).

        ``realtime=False`` freezes the clock at ``now`` (default ``clock.DEFAULT_NOW``);
        ``realtime=True`` anchors at ``now`` (default: the wall clock) and follows wall time.
        Raises ``ValueError`` (``UnknownScenarioError`` for a bad name) on bad options.
        """
        topo = Topology(seed=seed, nodes=nodes, gpu_key=gpu_model)
        anchor = now or (datetime.now().astimezone() if realtime else DEFAULT_NOW)
        clock = SimClock(anchor, realtime=realtime)
        placements = [parse_scenario(spec, nodes) for spec in scenarios]
        noise = Noise(seed)
        plan = generate_baseline(topo, seed)
        faults = [build_fault(p, topo, noise) for p in placements]
        for fault in faults:
            fault.prepare(plan)
        plan.finalize()
        return cls(topo=topo, clock=clock, plan=plan, faults=faults, placements=placements, noise=noise)

    # ---- time --------------------------------------------------------------------------
    def advance(self, seconds: float) -> None:
        """Move the simulated clock forward (tests of realtime behaviour and alert resolution)."""
        self.clock.advance(seconds)

    def _bucket(self) -> int:
        """The latest 15 s scrape at or before the clock's now."""
        return int(self.clock.now().timestamp() // SCRAPE_S)

    def _next_bucket(self) -> int:
        """The first 15 s scrape at or after the clock's now: the first a rule made now can see."""
        return -int(-self.clock.now().timestamp() // SCRAPE_S)

    # ---- ClusterSource -------------------------------------------------------------------
    async def node_ids(self) -> list[str]:
        return self.topo.node_ids

    def _node_index(self, node_id: str) -> int:
        ids = self.topo.node_ids
        if node_id not in ids:
            raise UnknownNodeError(node_id, ids)
        return ids.index(node_id)

    async def current_metrics(self) -> list[NodeMetrics]:
        bucket, now = self._bucket(), self.clock.now()
        return [self.telemetry.node_metrics(n, bucket, now) for n in range(self.topo.nodes)]

    async def node_metrics(self, node_id: str) -> NodeMetrics:
        return self.telemetry.node_metrics(self._node_index(node_id), self._bucket(), self.clock.now())

    async def gpu_history(self, node_id: str | None = None, duration_minutes: int = 60) -> list[GpuSeries]:
        if duration_minutes <= 0:
            raise ValueError("duration_minutes must be a positive number of minutes")
        nodes = range(self.topo.nodes) if node_id is None else [self._node_index(node_id)]
        last = self._bucket()
        first = last - (duration_minutes * 60) // SCRAPE_S + 1
        return [self.telemetry.series(n, g, first, last) for n in nodes for g in range(self.topo.gpus_per_node)]

    async def alert_rules(self) -> list[AlertRule]:
        return self.rule_book.rules()

    async def alert_history(self, limit: int = 50) -> list[AlertEvent]:
        events = self.rule_book.events(self._bucket())
        return sorted(events, key=lambda e: int(e.id), reverse=True)[:max(0, limit)]

    async def active_alerts(self) -> list[AlertEvent]:
        """Events firing now (a convenience of the simulator; not part of ``ClusterSource``)."""
        return [e for e in self.rule_book.events(self._bucket()) if e.active]

    # ---- alert rules, as an alerting backend edits them (not part of ``ClusterSource``) ----
    def create_rule(self, **fields: object) -> AlertRule:
        """A new rule (fields of ``AlertRule`` but the times), evaluated from now on."""
        now = self.clock.now()
        rule = AlertRule.model_validate({**fields, "created_at": now, "updated_at": now})
        return self.rule_book.create(rule, self._next_bucket())

    def update_rule(self, rule_id: str, **changes: object) -> AlertRule:
        """The rule with ``changes`` applied, evaluated afresh from now on; ``UnknownRuleError``."""
        current = self.rule_book.rule(rule_id)
        rule = AlertRule.model_validate({**current.model_dump(), **changes, "id": rule_id,
                                         "updated_at": self.clock.now()})
        return self.rule_book.replace(rule, self._next_bucket())

    def delete_rule(self, rule_id: str) -> None:
        """Remove the rule and its events; ``UnknownRuleError`` when there is none."""
        self.rule_book.delete(rule_id, self._next_bucket())

    async def slurm(self) -> SlurmSnapshot:
        return self.slurm_view.snapshot(self.clock.elapsed_s(), self.clock.now())

    def slurm_history(self, start: datetime, end: datetime, max_points: int = SLURM_HISTORY_POINTS) -> list[SlurmSnapshot]:
        """Node states and queue counts at the scrapes from ``start`` to ``end`` (never after now),
        newest first, without job lists: GPU Watchdog's Slurm history."""
        last = min(math.floor(end.timestamp() / SCRAPE_S), self._bucket())
        first = math.ceil(start.timestamp() / SCRAPE_S)
        if last < first:
            return []
        step = max(1, math.ceil((last - first + 1) / max_points))
        points = []
        for bucket in range(last, first - 1, -step):
            t = self.telemetry.rel(bucket)
            points.append(SlurmSnapshot(nodes=[self.slurm_view.node(n, t) for n in range(self.topo.nodes)],
                                        queue=self.slurm_view.queue(t), timestamp=self.telemetry.stamp(bucket)))
        return points

    async def cluster_status(self) -> ClusterStatus:
        nodes = await self.current_metrics()
        slurm = await self.slurm()
        gpus = [g for n in nodes for g in n.gpus if not g.stale]
        critical = any(e.rule_id in CRITICAL_RULES for e in await self.active_alerts())
        healthy = (all(n.reachable for n in nodes) and not any(g.stale for n in nodes for g in n.gpus)
                   and not any(s.is_down for s in slurm.nodes) and not critical)
        return ClusterStatus(
            healthy=healthy, node_count=len(nodes), gpu_count=sum(len(n.gpus) for n in nodes),
            avg_utilization_pct=round(sum(g.utilization_pct for g in gpus) / len(gpus), 1) if gpus else 0.0,
            avg_temperature_c=round(sum(g.temperature_c for g in gpus) / len(gpus), 1) if gpus else 0.0,
            memory_used_gb=round(sum(g.memory_used_mib for g in gpus) / 1024, 1),
            memory_total_gb=round(sum(g.memory_total_mib for g in gpus) / 1024, 1),
            slurm=SlurmSummary.of(slurm),
            last_updated=self.clock.now(),
        )
