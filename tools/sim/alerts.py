"""Alert rules in GPU Watchdog's form, and an evaluator that really runs them over the series.

Why evaluate rather than script events: the alert history must agree with the metrics (an
alert fires ``duration_seconds`` after its condition started to hold and resolves on the first
scrape where it no longer holds), for any scenario at any place, and keep doing so as a
realtime clock moves on.

Metrics the rules can name. GPU Watchdog's own (its ``AlertMetricSchema``, the ones its API
and frontend accept): ``gpu_utilization``, ``gpu_memory_used`` (MiB), ``gpu_memory_percent``,
``gpu_temperature``, ``gpu_power`` per GPU, and ``slurm_cpus_alloc``, ``slurm_queue_pending``,
``slurm_queue_running`` for the whole cluster (events on node ``cluster``). The simulator's
richer set, per GPU unless marked: ``memory_temperature_c``, ``allocated_utilization_pct``
(only GPUs held by a job), ``thermal_slowdown`` / ``hw_power_brake`` (1 when those clock-event
bits are set), ``correctable_remapped_rows``, ``uncorrectable_remapped_rows``,
``remap_failure``, ``nvlink_links_down``, ``pcie_replay_increase_5m``; exporter-side (present
while the node answers, even for a stale GPU): ``xid_count_5m``, ``xid_fatal_count_5m``,
``gpu_scrape_age_s``; node-level: ``node_reachable`` (Prometheus ``up``),
``ib_link_downed_increase_10m``. A GPU series that stopped (stale, host down) has no value,
so its alerts resolve, as in Prometheus; the staleness itself is what ``gpu_scrape_age_s`` and
``node_reachable`` catch. A rule's ``node_filter`` is a regular expression searched in the
node id, as GPU Watchdog documents it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable

from gpudoc.tools.models import AlertEvent, AlertRule, ClockEventReason, GpuModelSpec
from gpudoc.tools.sim.baseline import SCRAPE_S, Columns
from gpudoc.tools.sim.telemetry import CHUNK, Telemetry
from gpudoc.tools.sim.topology import IB_PORTS, Topology, node_id

#: XIDs domain.md §2 classes as fatal (the GPU needs a reset or worse).
FATAL_XIDS = frozenset({48, 61, 62, 64, 74, 79, 95, 109, 119, 120})
#: Rules whose active events make the cluster unhealthy (``cluster_status().healthy``).
CRITICAL_RULES = frozenset({"gpu-xid-fatal", "gpu-uncorrectable-rows", "gpu-row-remap-failure", "gpu-nvlink-down",
                            "gpu-stale", "node-unreachable", "node-ib-flapping"})
NODE_METRICS = frozenset({"node_reachable", "ib_link_downed_increase_10m"})
#: whole-cluster metrics: one series, events on the pseudo-node ``CLUSTER_SUBJECT``
CLUSTER_METRICS = frozenset({"slurm_cpus_alloc", "slurm_queue_pending", "slurm_queue_running"})
CLUSTER_SUBJECT = "cluster"
LOOKBACK = 40  # buckets of history the rate-style metrics need (10 minutes)
_THERMAL_BITS = int(ClockEventReason.SW_THERMAL | ClockEventReason.HW_THERMAL)
_POWER_BRAKE = int(ClockEventReason.HW_POWER_BRAKE)
_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "gt": lambda v, t: v > t, "lt": lambda v, t: v < t, "eq": lambda v, t: v == t,
    "gte": lambda v, t: v >= t, "lte": lambda v, t: v <= t,
}


def default_rules(spec: GpuModelSpec, created_at: datetime) -> list[AlertRule]:
    """The rule set a GPU Watchdog operator would start from, with thresholds from the GPU's limits."""
    rows = [
        ("gpu-temp-high", "GPU temperature high", "gpu_temperature", "gt", spec.max_operating_temp_c, 60),
        ("gpu-mem-temp-high", "GPU memory temperature high", "memory_temperature_c", "gt", spec.memory_max_temp_c - 10, 60),
        ("gpu-power-near-limit", "GPU power near limit", "gpu_power", "gt", round(spec.power_limit_w * 0.95), 120),
        ("gpu-thermal-slowdown", "GPU thermal slowdown", "thermal_slowdown", "eq", 1, 60),
        ("gpu-power-brake", "GPU hardware power brake", "hw_power_brake", "eq", 1, 30),
        ("gpu-allocated-idle", "Allocated GPU idle", "allocated_utilization_pct", "lt", 1, 600),
        ("gpu-xid", "GPU XID error", "xid_count_5m", "gt", 0, 0),
        ("gpu-xid-fatal", "Fatal GPU XID error", "xid_fatal_count_5m", "gt", 0, 0),
        ("gpu-uncorrectable-rows", "Uncorrectable remapped rows", "uncorrectable_remapped_rows", "gt", 0, 0),
        ("gpu-row-remap-failure", "Row remap failure", "remap_failure", "eq", 1, 0),
        ("gpu-correctable-rows", "Correctable remapped rows accumulating", "correctable_remapped_rows", "gte", 4, 0),
        ("gpu-nvlink-down", "NVLink links down", "nvlink_links_down", "gt", 0, 60),
        ("gpu-pcie-replays", "PCIe replays rising", "pcie_replay_increase_5m", "gt", 100, 0),
        ("gpu-stale", "GPU metrics stale", "gpu_scrape_age_s", "gt", 60, 0),
        ("node-unreachable", "Node unreachable", "node_reachable", "eq", 0, 60),
        ("node-ib-flapping", "InfiniBand link flapping", "ib_link_downed_increase_10m", "gt", 0, 0),
    ]
    return [AlertRule(id=rid, name=name, metric=metric, condition=cond, threshold=float(threshold),  # type: ignore[arg-type]
                      duration_seconds=duration, created_at=created_at, updated_at=created_at)
            for rid, name, metric, cond, threshold, duration in rows]


@dataclass
class _RuleState:
    pending_since: int | None = None
    event: AlertEvent | None = None


def _concat(chunks: list[Columns], names: tuple[str, ...]) -> Columns:
    return {name: [v for c in chunks for v in c[name]] for name in names}


#: whole-cluster readings at a time (relative seconds): Slurm's counts by cluster metric name
ClusterReadings = Callable[[float], dict[str, float]]


class AlertEvaluator:
    """Walks the simulated scrapes in time order and keeps the rules' firing state."""

    def __init__(self, rules: list[AlertRule], telemetry: Telemetry, topo: Topology, start_bucket: int,
                 cluster_readings: ClusterReadings | None = None):
        self.rules = [r for r in rules if r.enabled]
        self.telemetry, self.topo = telemetry, topo
        self.cluster_readings = cluster_readings
        self.done = start_bucket - 1
        self.events: list[AlertEvent] = []
        self._state: dict[tuple[str, int, int | None], _RuleState] = {}
        self._filters = {r.id: _node_filter(r.node_filter) for r in self.rules}

    def retire(self, rule_id: str, at: datetime) -> None:
        """Stop evaluating a rule (edited, disabled or deleted); what it was firing resolves ``at``."""
        self.rules = [r for r in self.rules if r.id != rule_id]
        for (rid, _, _), state in self._state.items():
            if rid == rule_id and state.event is not None:
                state.event.resolved_at = at
                state.event = None

    def advance_to(self, bucket: int) -> list[AlertEvent]:
        """Evaluate every scrape up to ``bucket``; returns the events that fired meanwhile."""
        if bucket <= self.done:
            return []
        before = len(self.events)
        first, last = self.done + 1, bucket
        frame_first = first - LOOKBACK
        chunks = range(frame_first // CHUNK, last // CHUNK + 1)
        offset = first - chunks[0] * CHUNK  # position of ``first`` in the concatenated columns
        count = last - first + 1
        rel = [self.telemetry.rel(first + k) for k in range(count)]
        gpu_rules = [r for r in self.rules if r.metric not in NODE_METRICS | CLUSTER_METRICS]
        node_rules = [r for r in self.rules if r.metric in NODE_METRICS]
        cluster_rules = [r for r in self.rules if r.metric in CLUSTER_METRICS]
        if cluster_rules:
            readings = [self._cluster_reading(t) for t in rel]
            for rule in cluster_rules:
                self._run(rule, -1, None, [r.get(rule.metric) for r in readings], first)
        for node in range(self.topo.nodes if gpu_rules or node_rules else 0):
            matching_node = [r for r in node_rules if self._filters[r.id](node_id(node))]
            matching_gpu = [r for r in gpu_rules if self._filters[r.id](node_id(node))]
            ncols = _concat([self.telemetry.node_chunk(node, c) for c in chunks],
                            ("reachable", *(f"ib_downed_{k}" for k in range(IB_PORTS))))
            for rule in matching_node:
                self._run(rule, node, None, self._node_values(rule.metric, ncols, offset, count), first)
            up = ncols["reachable"][offset:offset + count]
            for gpu in range(self.topo.gpus_per_node if matching_gpu else 0):
                cols = _concat([self.telemetry.gpu_chunk(node, gpu, c) for c in chunks], _GPU_NAMES)
                for rule in matching_gpu:
                    self._run(rule, node, gpu, self._gpu_values(rule.metric, node, gpu, cols, up, rel, offset), first)
        self.done = last
        return self.events[before:]

    def _cluster_reading(self, t: float) -> dict[str, float]:
        if self.cluster_readings is None:
            raise ValueError("this evaluator has no cluster readings for Slurm alert metrics")
        return self.cluster_readings(t)

    # ---- metric extraction -------------------------------------------------------------
    def _node_values(self, metric: str, cols: Columns, offset: int, count: int) -> list[float | None]:
        if metric == "node_reachable":
            return [1.0 if r else 0.0 for r in cols["reachable"][offset:offset + count]]
        total = [sum(cols[f"ib_downed_{k}"][i] for k in range(IB_PORTS)) for i in range(len(cols["reachable"]))]
        return [float(total[i] - total[i - LOOKBACK]) if cols["reachable"][i] else None
                for i in range(offset, offset + count)]

    def _gpu_values(self, metric: str, node: int, gpu: int, cols: Columns, up: list[bool],
                    rel: list[float], offset: int) -> list[float | None]:
        """One rule metric over the evaluated buckets; ``None`` where the series has no value."""
        tel, count = self.telemetry, len(rel)
        life = tel.life(node, gpu)
        if metric == "gpu_scrape_age_s":
            stale = life.stale_since
            if stale is None:
                return [0.0 if u else None for u in up]
            seen = tel.rel(tel.last_bucket_before(stale))
            return [None if not u else (0.0 if r < stale else r - seen) for u, r in zip(up, rel)]
        if metric in ("xid_count_5m", "xid_fatal_count_5m"):
            records = [r.t for r in tel.xids(node, gpu) if metric == "xid_count_5m" or r.xid in FATAL_XIDS]
            if not records:
                return [0.0 if u else None for u in up]
            return [float(sum(r - 300 < t <= r for t in records)) if u else None for u, r in zip(up, rel)]
        window = range(offset, offset + count)
        if metric == "allocated_utilization_pct":
            raw = [cols["util"][i] if cols["job_id"][i] is not None else None for i in window]
        elif metric == "thermal_slowdown":
            raw = [1.0 if cols["clock_events"][i] & _THERMAL_BITS else 0.0 for i in window]
        elif metric == "hw_power_brake":
            raw = [1.0 if cols["clock_events"][i] & _POWER_BRAKE else 0.0 for i in window]
        elif metric == "pcie_replay_increase_5m":
            c = cols["pcie_replay"]
            raw = [float(c[i] - c[i - 20]) for i in window]
        elif metric == "gpu_memory_percent":
            c, total = cols["mem_used"], self.topo.spec.memory_total_mib
            raw = [100.0 * c[i] / total for i in window]
        elif metric in _DIRECT:
            c = cols[_DIRECT[metric]]
            raw = [float(c[i]) for i in window]
        else:
            raise ValueError(f"alert rule metric '{metric}' is not one the simulator evaluates")
        ends = life.ends_at
        if ends is None:
            return raw
        return [v if r < ends else None for v, r in zip(raw, rel)]

    # ---- the state machine -------------------------------------------------------------
    def _run(self, rule: AlertRule, node: int, gpu: int | None, values: list[float | None], first: int) -> None:
        key = (rule.id, node, gpu)
        state = self._state.get(key)
        compare = _COMPARE[rule.condition]
        threshold = rule.threshold
        if state is None and not any(v is not None and compare(v, threshold) for v in values):
            return
        state = state or self._state.setdefault(key, _RuleState())
        need = rule.duration_seconds
        for k, value in enumerate(values):
            bucket = first + k
            holds = value is not None and compare(value, threshold)
            if not holds:
                if state.event is not None:
                    state.event.resolved_at = self.telemetry.stamp(bucket)
                state.pending_since, state.event = None, None
                continue
            if state.pending_since is None:
                state.pending_since = bucket
            if state.event is None and (bucket - state.pending_since) * SCRAPE_S >= need:
                state.event = self._fire(rule, node, gpu, value, bucket)  # type: ignore[arg-type]

    def _fire(self, rule: AlertRule, node: int, gpu: int | None, value: float, bucket: int) -> AlertEvent:
        # The id is given when the event is recorded (``RuleBook``), in firing order.
        subject = CLUSTER_SUBJECT if node < 0 else node_id(node)
        event = AlertEvent(id="", rule_id=rule.id, rule_name=rule.name, node_id=subject,
                           gpu_index=gpu, metric=rule.metric, value=round(value, 2), threshold=rule.threshold,
                           condition=rule.condition, fired_at=self.telemetry.stamp(bucket))
        self.events.append(event)
        return event


_DIRECT = {
    "gpu_temperature": "temp", "gpu_utilization": "util", "gpu_memory_used": "mem_used", "gpu_power": "power",
    "memory_temperature_c": "mem_temp",
    "correctable_remapped_rows": "corr_rows", "uncorrectable_remapped_rows": "uncorr_rows",
    "remap_failure": "remap_failure", "nvlink_links_down": "nvlink_down",
}
_GPU_NAMES = ("job_id", "clock_events", "pcie_replay", *sorted(set(_DIRECT.values())))


def _node_filter(pattern: str | None) -> Callable[[str], bool]:
    """GPU Watchdog's node filter: a regular expression searched in the node id (an invalid
    one matches only the node id it spells)."""
    if not pattern:
        return lambda _: True
    try:
        compiled = re.compile(pattern)
    except re.error:
        return lambda node: node == pattern
    return lambda node: compiled.search(node) is not None


def rules_created_at(anchor: datetime) -> datetime:
    """Rules exist long before any scenario: stamp them 90 days before the anchor."""
    return anchor - timedelta(days=90)


#: every metric a rule may name here (``ValueError`` from the evaluator for any other)
EVALUATED_METRICS = frozenset(
    {*_DIRECT, *NODE_METRICS, *CLUSTER_METRICS, "gpu_memory_percent", "allocated_utilization_pct",
     "thermal_slowdown", "hw_power_brake", "pcie_replay_increase_5m", "gpu_scrape_age_s", "xid_count_5m",
     "xid_fatal_count_5m"}
)
