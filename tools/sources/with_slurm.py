"""A telemetry source with its scheduler facts from Slurm itself.

Why compose instead of a Slurm-aware copy of each source: telemetry (GPU Watchdog, Prometheus)
and the scheduler are separate systems on a real cluster. GPU Watchdog only passes on counts
and coarse states, Prometheus none at all, while slurmrestd and the Slurm commands know reasons,
jobs, GPU indices and the controller's health. This wrapper takes everything but Slurm from the
telemetry source and Slurm from a ``SlurmClient``, whatever the telemetry source is.

GPU nodes Slurm knows but telemetry lacks (exporter down, host down, never deployed) are added to
the node list as ``reachable=False``, as the GPU Watchdog source does with its own Slurm list, so
"is node-5 ok?" is answered instead of "unknown node". Nodes without GPUs in Slurm (login, CPU
partitions) are not: GPU telemetry was never expected from them. A failing Slurm never hides
the metrics: only ``slurm()`` reports its error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime

from gpudoc.tools.models import (
    AlertEvent,
    AlertRule,
    ClusterStatus,
    GpuSeries,
    NodeMetrics,
    Silence,
    SlurmNode,
    SlurmSnapshot,
    SlurmSummary,
)
from gpudoc.tools.sources.base import (
    ClusterSource,
    DiagnosisScope,
    SourceError,
    UnknownNodeError,
    normalise_node_id,
)
from gpudoc.tools.sources.slurm_client import SlurmClient


class WithSlurmSource(ClusterSource):
    """``telemetry``'s facts, with ``slurm()`` (and the status's Slurm summary) from ``scheduler``."""

    def __init__(self, telemetry: ClusterSource, scheduler: SlurmClient):
        self.telemetry = telemetry
        self.scheduler = scheduler
        self.name = f"{telemetry.name}+slurm"
        # a telemetry source that screens the cluster (Prometheus) keeps doing so under Slurm
        self.screens_cluster = telemetry.screens_cluster
        self.reports_gaps = telemetry.reports_gaps

    async def slurm(self) -> SlurmSnapshot:
        return await self.scheduler.snapshot()

    async def cluster_status(self) -> ClusterStatus:
        status, snapshot = await asyncio.gather(self.telemetry.cluster_status(), self._snapshot_or_none())
        if snapshot is None:
            return status
        return status.model_copy(update={"slurm": SlurmSummary.of(snapshot)})

    async def current_metrics(self) -> list[NodeMetrics]:
        nodes, snapshot = await asyncio.gather(self.telemetry.current_metrics(), self._snapshot_or_none())
        if snapshot is None:
            return nodes
        as_of = max((node.timestamp for node in nodes), default=snapshot.timestamp)
        return with_silent_nodes(nodes, snapshot.nodes, as_of)

    async def node_metrics(self, node_id: str) -> NodeMetrics:
        try:
            return await self.telemetry.node_metrics(node_id)
        except UnknownNodeError:
            nodes = await self.current_metrics()
            resolved = normalise_node_id(node_id, [node.node_id for node in nodes])
            found = next(node for node in nodes if node.node_id == resolved)
            if found.reachable:  # a loose spelling of a node telemetry has
                return await self.telemetry.node_metrics(found.node_id)
            return found

    async def gpu_history(self, node_id: str | None = None, duration_minutes: int = 60) -> list[GpuSeries]:
        try:
            return await self.telemetry.gpu_history(node_id, duration_minutes)
        except UnknownNodeError:
            if node_id is None:
                raise
            resolved = await self.resolve_node(node_id)  # raises with every valid id
            if resolved != node_id:
                return await self.gpu_history(resolved, duration_minutes)
            return []  # a node only Slurm knows: no telemetry, so no history

    async def diagnosis_scope(self, history_minutes: int, node: str | None = None) -> DiagnosisScope | None:
        return await self.telemetry.diagnosis_scope(history_minutes, node)

    async def nodes_metrics(self, node_ids: Sequence[str]) -> list[NodeMetrics]:
        return await self.telemetry.nodes_metrics(node_ids)

    async def nodes_history(self, node_ids: Sequence[str], duration_minutes: int = 60) -> list[GpuSeries]:
        return await self.telemetry.nodes_history(node_ids, duration_minutes)

    async def silences(self) -> list[Silence] | None:
        return await self.telemetry.silences()

    async def alert_rules(self) -> list[AlertRule]:
        return await self.telemetry.alert_rules()

    async def alert_history(self, limit: int = 50) -> list[AlertEvent]:
        return await self.telemetry.alert_history(limit)

    async def aclose(self) -> None:
        await asyncio.gather(self.telemetry.aclose(), self.scheduler.aclose())

    async def _snapshot_or_none(self) -> SlurmSnapshot | None:
        """Slurm's view to name silent nodes and count jobs; its failure must not hide metrics
        (``slurm()`` still reports it to whoever asks for Slurm)."""
        try:
            return await self.scheduler.snapshot()
        except SourceError:
            return None


def slurm_name_matches(slurm_node: SlurmNode, names: set[str], unique_hostnames: set[str]) -> bool:
    """Whether telemetry knows this Slurm node: by NodeName, or by NodeHostname when that
    hostname belongs to this Slurm node alone (several slurmd may share one host)."""
    if slurm_node.name in names:
        return True
    return slurm_node.hostname is not None and slurm_node.hostname in unique_hostnames & names


def with_silent_nodes(nodes: list[NodeMetrics], slurm_nodes: list[SlurmNode], as_of: datetime) -> list[NodeMetrics]:
    """``nodes`` plus, as unreachable, each Slurm GPU node telemetry does not report."""
    names = {node.node_id for node in nodes} | {node.hostname for node in nodes}
    hostnames = [s.hostname for s in slurm_nodes if s.hostname]
    unique = {h for h in hostnames if hostnames.count(h) == 1}
    silent = [
        NodeMetrics(node_id=s.name, hostname=s.hostname or s.name, timestamp=as_of, reachable=False)
        for s in slurm_nodes
        if s.gpus_total != 0 and not slurm_name_matches(s, names, unique)  # None: may have GPUs
    ]
    return nodes + silent
