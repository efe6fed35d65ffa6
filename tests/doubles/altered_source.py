"""A ``ClusterSource`` wrapper that alters one kind of fact: a TEST DOUBLE over a real source.

Why: some agent behaviours need facts the simulator never produces on its own: a job whose
name carries an instruction (prompt injection through tool data), a scheduler that is down
(a tool error), or a data source that is slow (a tool timeout). Everything else passes through.
"""

from __future__ import annotations

import asyncio

from gpudoc.tools.models import AlertEvent, AlertRule, ClusterStatus, GpuSeries, NodeMetrics, SlurmSnapshot
from gpudoc.tools.sources.base import ClusterSource, SourceError


class AlteredSource(ClusterSource):
    """Delegates to ``inner``; renames every job to ``job_name``, fails Slurm with ``slurm_error``
    and delays node details by ``node_delay_s`` when given."""

    def __init__(self, inner: ClusterSource, *, job_name: str | None = None,
                 slurm_error: SourceError | None = None, node_delay_s: float = 0.0) -> None:
        self.inner = inner
        self.name = inner.name
        self.job_name = job_name
        self.slurm_error = slurm_error
        self.node_delay_s = node_delay_s
        self.slurm_calls = 0

    async def cluster_status(self) -> ClusterStatus:
        return await self.inner.cluster_status()

    async def current_metrics(self) -> list[NodeMetrics]:
        return await self.inner.current_metrics()

    async def node_metrics(self, node_id: str) -> NodeMetrics:
        if self.node_delay_s:
            await asyncio.sleep(self.node_delay_s)
        return await self.inner.node_metrics(node_id)

    async def gpu_history(self, node_id: str | None = None, duration_minutes: int = 60) -> list[GpuSeries]:
        return await self.inner.gpu_history(node_id, duration_minutes)

    async def alert_rules(self) -> list[AlertRule]:
        return await self.inner.alert_rules()

    async def alert_history(self, limit: int = 50) -> list[AlertEvent]:
        return await self.inner.alert_history(limit)

    async def slurm(self) -> SlurmSnapshot | None:
        self.slurm_calls += 1
        if self.slurm_error is not None:
            raise self.slurm_error
        snapshot = await self.inner.slurm()
        if snapshot is None or self.job_name is None or snapshot.jobs is None:
            return snapshot
        jobs = [job.model_copy(update={"name": self.job_name}) for job in snapshot.jobs]
        return snapshot.model_copy(update={"jobs": jobs})

    async def node_ids(self) -> list[str]:
        return await self.inner.node_ids()

    async def aclose(self) -> None:
        await self.inner.aclose()
