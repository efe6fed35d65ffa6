"""Gather every fact a diagnosis needs from a source, once, in parallel.

Why one snapshot: analyzers are pure functions of it, so they are testable on hand-built facts,
and one run costs one round of source calls however many rules look at the data. A source that
cannot provide a kind of fact (no Slurm, no alert history) leaves that part ``None`` and a line
in ``limitations``; nothing is invented in its place.

A source that screens the cluster itself (``ClusterSource.screens_cluster``, e.g. Prometheus) names
the nodes worth a full look; only those are fetched (plus the nodes Slurm or a firing alert points
at), and ``node_ids``, ``gpus_total`` and ``link_downed_medians`` then describe the whole cluster.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from statistics import median
from typing import Awaitable, Literal, NamedTuple, TypeVar

from pydantic import BaseModel, Field

from gpudoc.tools.models import (
    AlertEvent,
    AlertRule,
    GpuMetrics,
    GpuModelSpec,
    GpuSeries,
    NodeMetrics,
    SlurmJob,
    SlurmNode,
    SlurmSnapshot,
    spec_for_model_name,
)
from gpudoc.tools.sources.base import ClusterSource, DiagnosisScope, NotSupportedError, SourceError
from gpudoc.tools.sources.notes import collecting_notes

HISTORY_MINUTES = 60
ALERT_HISTORY_LIMIT = 500

T = TypeVar("T")


class ClusterFacts(BaseModel):
    """One consistent snapshot of a cluster, as analyzers see it."""

    source: str
    collected_at: datetime = Field(description="the cluster's 'now' (a frozen simulator's clock)")
    nodes: list[NodeMetrics]
    history: list[GpuSeries] | None = None
    slurm: SlurmSnapshot | None = None
    alert_rules: list[AlertRule] | None = None
    alert_events: list[AlertEvent] | None = None
    limitations: list[str] = Field(default_factory=list)
    node_ids: list[str] | None = Field(None, description="every node of the cluster, when ``nodes`` is a focus")
    gpus_total: int | None = Field(None, description="GPUs of the whole cluster, when ``nodes`` is a focus")
    link_downed_medians: dict[str, float] | None = Field(
        None, description="median link_downed_total per InfiniBand port over the whole cluster"
    )

    # -- lookups analyzers share ---------------------------------------------------------------

    def series(self, node_id: str, gpu_index: int) -> GpuSeries | None:
        for series in self.history or []:
            if series.node_id == node_id and series.gpu_index == gpu_index:
                return series
        return None

    def slurm_node(self, node_id: str, hostname: str | None = None) -> SlurmNode | None:
        if self.slurm is None:
            return None
        for node in self.slurm.nodes:
            if node.name in (node_id, hostname):
                return node
        by_host = [n for n in self.slurm.nodes if n.hostname is not None and n.hostname in (node_id, hostname)]
        return by_host[0] if len(by_host) == 1 else None  # several slurmd may share one host

    def node_id_for_slurm_name(self, name: str) -> str:
        """Slurm may know a node by its hostname; findings always use the metrics node id."""
        for node in self.nodes:
            if name in (node.node_id, node.hostname):
                return node.node_id
        slurm = next((n for n in self.slurm.nodes if n.name == name), None) if self.slurm else None
        if slurm is not None and slurm.hostname is not None and self.slurm_node(slurm.hostname) is slurm:
            return next((n.node_id for n in self.nodes if slurm.hostname in (n.node_id, n.hostname)), name)
        return name

    @property
    def jobs(self) -> list[SlurmJob]:
        return list(self.slurm.jobs or []) if self.slurm else []

    def job(self, job_id: str) -> SlurmJob | None:
        return next((job for job in self.jobs if job.job_id == job_id), None)


def spec_of(gpu: GpuMetrics) -> GpuModelSpec | None:
    return spec_for_model_name(gpu.model)


def live_gpus(node: NodeMetrics) -> list[GpuMetrics]:
    """GPUs whose readings are current (a stale GPU repeats its last values, so they mean nothing)."""
    if not node.reachable:
        return []
    return [gpu for gpu in node.gpus if not gpu.stale]


def median_or_none(values: list[float]) -> float | None:
    return median(values) if values else None


#: the cumulative counters a ``GpuSample`` carries
HistoryCounter = Literal["nvlink_error_count", "pcie_replay_count", "correctable_remapped_rows"]


class CounterClimb(NamedTuple):
    """A cumulative counter's first and last reported value in the history window, minutes apart."""

    first: int
    last: int
    minutes: float

    @property
    def gained(self) -> int:
        return self.last - self.first


def counter_climb(series: GpuSeries | None, counter: HistoryCounter) -> CounterClimb | None:
    """How far ``counter`` moved over ``series``; ``None`` without two samples that report it.

    Why one reading for every counter rule (NVLink errors, PCIe replays, correctable remapped
    rows): a lifetime total says little, a climb within the window says a part is failing now, and
    every such rule must skip the samples that lack the counter in the same way.
    """
    if series is None:
        return None
    points = [(sample.timestamp, value) for sample in series.samples
              if (value := getattr(sample, counter)) is not None]
    if len(points) < 2:
        return None
    (t0, first), (t1, last) = points[0], points[-1]
    return CounterClimb(first, last, (t1 - t0).total_seconds() / 60)


def _now_of(nodes: list[NodeMetrics], slurm: SlurmSnapshot | None) -> datetime:
    """The cluster's clock: the newest node reading, else the scheduler's, else ours.

    Node timestamps come from the metrics backend's own clock. A Slurm snapshot's timestamp may
    be the time the response arrived (the GPU Watchdog API sends none), so it only counts when no
    node reported: mixing the two clocks would make every GPU of a frozen or lagging backend
    look stale.
    """
    stamps = [node.timestamp for node in nodes if node.reachable]
    if stamps:
        return max(stamps)
    if slurm is not None:
        return slurm.timestamp
    return datetime.now(timezone.utc)


async def _optional(what: str, call: Awaitable[T], limitations: list[str]) -> T | None:
    try:
        return await call
    except NotSupportedError:
        limitations.append(f"{what}: not provided by this source")
    except SourceError as exc:
        limitations.append(f"{what}: unavailable ({exc})")
    return None


async def gather_facts(
    source: ClusterSource, history_minutes: int = HISTORY_MINUTES, node: str | None = None
) -> ClusterFacts:
    """Fetch all facts concurrently. Current metrics are required; the rest degrades to ``None``.

    What the source noted about degraded values (``sources.notes``) joins the limitations.
    ``node`` (a resolved id) lets a screening source read just that node; others read everything.
    """
    limitations: list[str] = []
    with collecting_notes() as notes:
        if source.screens_cluster:
            facts = await _gather_screened(source, history_minutes, node, limitations)
        else:
            nodes, history, slurm, rules, events = await asyncio.gather(
                source.current_metrics(),
                _optional("GPU history", source.gpu_history(None, history_minutes), limitations),
                _optional("Slurm", source.slurm(), limitations),
                _optional("alert rules", source.alert_rules(), limitations),
                _optional("alert history", source.alert_history(ALERT_HISTORY_LIMIT), limitations),
            )
            facts = _facts(source, nodes, history, slurm, rules, events)
    limitations.extend(notes.lines)
    if not source.reports_gaps:
        limitations.extend(_missing_signals(facts.nodes, facts.slurm, facts.gpus_total))
    facts.limitations = sorted(set(limitations))
    return facts


def _facts(source: ClusterSource, nodes: list[NodeMetrics], history: list[GpuSeries] | None,
           slurm: SlurmSnapshot | None, rules: list[AlertRule] | None, events: list[AlertEvent] | None,
           **whole_cluster: object) -> ClusterFacts:
    return ClusterFacts(source=source.name, collected_at=_now_of(nodes, slurm), nodes=nodes, history=history,
                        slurm=slurm, alert_rules=rules, alert_events=events, **whole_cluster)


async def _gather_screened(source: ClusterSource, history_minutes: int, node: str | None,
                           limitations: list[str]) -> ClusterFacts:
    """Screen first, then read in full only the focus, the nodes Slurm marks and those alerting."""
    scope, slurm, rules, events = await asyncio.gather(
        source.diagnosis_scope(history_minutes, node),
        _optional("Slurm", source.slurm(), limitations),
        _optional("alert rules", source.alert_rules(), limitations),
        _optional("alert history", source.alert_history(ALERT_HISTORY_LIMIT), limitations),
    )
    assert scope is not None, "a source that screens the cluster returns a scope"
    focus = _focus(scope, slurm, events, node)
    nodes, history = await asyncio.gather(
        source.nodes_metrics(focus),
        _optional("GPU history", source.nodes_history(focus, history_minutes), limitations),
    )
    return _facts(
        source, nodes, history, slurm, rules, events,
        node_ids=[node] if node is not None else scope.node_ids,
        gpus_total=sum(len(n.gpus) for n in nodes) if node is not None else scope.gpu_count,
        link_downed_medians=scope.link_downed_medians,
    )


def _focus(scope: DiagnosisScope, slurm: SlurmSnapshot | None, events: list[AlertEvent] | None,
           node: str | None) -> list[str]:
    if node is not None:
        return [node]
    wanted = set(scope.focus)
    known = set(scope.node_ids)
    if slurm is not None:
        wanted |= {s.name for s in slurm.nodes if (s.is_drained or s.is_down) and s.name in known}
    wanted |= {e.node_id for e in events or [] if e.active and e.node_id in known}
    return [n for n in scope.node_ids if n in wanted]


def _missing_signals(nodes: list[NodeMetrics], slurm: SlurmSnapshot | None,
                     gpus_total: int | None = None) -> list[str]:
    """Say which whole classes of signal the source lacks, so "no finding" is not read as "healthy".

    Only for sources that do not note their gaps themselves (``ClusterSource.reports_gaps``).
    """
    gpus = [gpu for node in nodes for gpu in node.gpus]
    if not gpus:
        return [] if gpus_total else ["no GPU metrics at all"]
    checks = {
        "XID errors": lambda g: g.xid_events is not None or g.last_xid is not None,
        "row remapping / ECC": lambda g: g.uncorrectable_remapped_rows is not None
        or g.ecc_dbe_volatile is not None,
        "clock-event reasons": lambda g: g.clock_event_reasons is not None,
        "PCIe link state": lambda g: g.pcie_link_width is not None or g.pcie_replay_count is not None,
        "NVLink counters": lambda g: g.nvlink_error_count is not None or g.nvlink_links_down is not None,
    }
    missing = [f"{name}: not reported by this source" for name, has in checks.items() if not any(map(has, gpus))]
    if all(node.network is None for node in nodes):
        missing.append("InfiniBand port state: not reported by this source")
    if slurm is not None and slurm.jobs is None:
        missing.append("Slurm job list: not reported by this source")
    return missing
