"""The one-glance cluster summary (GPU Watchdog's ``/api/cluster/status``)."""

from __future__ import annotations

from datetime import datetime

from gpudoc.tools.models.base import Model


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
