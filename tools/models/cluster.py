"""The one-glance cluster summary (GPU Watchdog's ``/api/cluster/status``)."""

from __future__ import annotations

from datetime import datetime

from gpudoc.tools.models.base import Model


# Cluster summary
# --------------------------------------------------------------------------------------------


class SlurmSummary(Model):
    cpus_total: int
    cpus_alloc: int
    cpus_idle: int
    nodes_total: int
    jobs_pending: int
    jobs_running: int


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
