"""The one-glance cluster summary (GPU Watchdog's ``/api/cluster/status``)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from gpudoc.tools.models.base import Model
from gpudoc.tools.models.slurm import SlurmSnapshot, node_sum


# Cluster summary
# --------------------------------------------------------------------------------------------


class SlurmSummary(Model):
    """Slurm's counts; ``None`` where the source did not report one (never a stand-in zero)."""

    cpus_total: int | None = None
    cpus_alloc: int | None = None
    cpus_idle: int | None = None
    nodes_total: int | None = None
    jobs_pending: int | None = None
    jobs_running: int | None = None

    @classmethod
    def of(cls, snapshot: SlurmSnapshot) -> SlurmSummary:
        """The counts of a scheduler snapshot. A CPU total is stated only where every node reported
        its part: a partial sum would read as the cluster's (``node_sum`` says what a partial total
        covers, for renderings that show it)."""
        cpus_total = _complete_sum(node.cpus_total for node in snapshot.nodes)
        cpus_alloc = _complete_sum(node.cpus_alloc for node in snapshot.nodes)
        cpus_idle = cpus_total - cpus_alloc if cpus_total is not None and cpus_alloc is not None else None
        return cls(cpus_total=cpus_total, cpus_alloc=cpus_alloc, cpus_idle=cpus_idle,
                   nodes_total=len(snapshot.nodes), jobs_pending=snapshot.queue.pending,
                   jobs_running=snapshot.queue.running)


def _complete_sum(values: Iterable[int | None]) -> int | None:
    total, reported, nodes = node_sum(values)
    return total if reported == nodes else None


class ClusterStatus(Model):
    """The one-glance view (GPU Watchdog's ``/api/cluster/status``)."""

    healthy: bool
    node_count: int
    gpu_count: int
    avg_utilization_pct: float
    avg_temperature_c: float
    memory_used_gb: float
    memory_total_gb: float
    slurm: SlurmSummary | None = None
    last_updated: datetime
