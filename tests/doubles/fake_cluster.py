"""A small, fixed ``ClusterSource``: a TEST DOUBLE for wire-format tests, not the simulator.

Three nodes at a frozen instant, chosen to cover every rendering rule of the GPU Watchdog API and
the DCGM exporter text: ``node-0`` reports everything (UUIDs, PCI ids, driver, jobs, InfiniBand),
``node-1`` is drained, has a stale GPU and lacks clocks and memory temperature, ``node-2`` is down
and unreachable.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gpudoc.tools.models import (
    A100_80GB,
    AlertEvent,
    AlertRule,
    ClusterStatus,
    GpuMetrics,
    GpuSample,
    GpuSeries,
    NetworkPort,
    NodeMetrics,
    QueueCounts,
    SlurmNode,
    SlurmSnapshot,
    SlurmSummary,
)
from gpudoc.tools.sources.base import ClusterSource, normalise_node_id

NOW = datetime(2026, 3, 2, 14, 30, 0, tzinfo=UTC)
NODE_IDS = ("node-0", "node-1", "node-2")


def _gpu(node: int, index: int, **overrides: object) -> GpuMetrics:
    values: dict[str, object] = dict(
        node_id=f"node-{node}",
        index=index,
        uuid=f"GPU-{node:04x}{index:04x}-0000-4000-8000-00000000000{index}",
        model=A100_80GB.name,
        pci_bus_id=f"00000000:{0x18 + 16 * index:02X}:00.0",
        utilization_pct=87.5 + index,
        memory_used_mib=61440.0 + 128 * index,
        memory_total_mib=81920.0,
        temperature_c=61.0 + index,
        power_w=312.25 + index,
        memory_util_pct=40.0,
        memory_temperature_c=66.0,
        power_limit_w=400.0,
        default_power_limit_w=400.0,
        sm_clock_mhz=1410.0,
        mem_clock_mhz=1593.0,
        clock_event_reasons=0,
        last_xid=None,
        correctable_remapped_rows=0,
        uncorrectable_remapped_rows=0,
        remap_pending=False,
        remap_failure=False,
        pcie_link_gen=4,
        pcie_link_gen_max=4,
        pcie_link_width=16,
        pcie_link_width_max=16,
        pcie_replay_count=3,
        job_id="41873" if index < 2 else None,
        last_seen=NOW,
    )
    values.update(overrides)
    return GpuMetrics(**values)  # type: ignore[arg-type]


def _nodes() -> list[NodeMetrics]:
    return [
        NodeMetrics(
            node_id="node-0",
            hostname="node-0",
            timestamp=NOW,
            gpus=[_gpu(0, i) for i in range(4)],
            network=[NetworkPort(device="mlx5_0", state_id=4, link_downed_total=0, rate_gbps=200)],
            driver_version="550.54.15",
        ),
        NodeMetrics(
            node_id="node-1",
            hostname="node-1",
            timestamp=NOW,
            gpus=[
                _gpu(1, 0, sm_clock_mhz=None, mem_clock_mhz=None, memory_temperature_c=None, job_id=None),
                _gpu(1, 1, stale=True, last_xid=79, last_seen=NOW - timedelta(minutes=9)),
                _gpu(1, 2, sm_clock_mhz=None, mem_clock_mhz=None, memory_temperature_c=None, job_id=None),
            ],
        ),
        NodeMetrics(
            node_id="node-2",
            hostname="node-2",
            timestamp=NOW - timedelta(minutes=12),
            reachable=False,
            gpus=[_gpu(2, i, stale=True) for i in range(4)],
        ),
    ]


class FakeClusterSource(ClusterSource):
    """Serves the fixed facts above; ``has_slurm=False`` models a cluster without a scheduler."""

    name = "fake"

    def __init__(self, *, has_slurm: bool = True):
        self.has_slurm = has_slurm

    async def cluster_status(self) -> ClusterStatus:
        live = [g for n in _nodes() if n.reachable for g in n.gpus if not g.stale]
        return ClusterStatus(
            healthy=False,
            node_count=3,
            gpu_count=len(live),
            avg_utilization_pct=sum(g.utilization_pct for g in live) / len(live),
            avg_temperature_c=sum(g.temperature_c for g in live) / len(live),
            memory_used_gb=sum(g.memory_used_mib for g in live) / 1024,
            memory_total_gb=sum(g.memory_total_mib for g in live) / 1024,
            slurm=SlurmSummary(
                cpus_total=384, cpus_alloc=96, cpus_idle=288, nodes_total=3, jobs_pending=2, jobs_running=1
            )
            if self.has_slurm
            else None,
            last_updated=NOW,
        )

    async def current_metrics(self) -> list[NodeMetrics]:
        return _nodes()

    async def node_metrics(self, node_id: str) -> NodeMetrics:
        resolved = normalise_node_id(node_id, NODE_IDS)
        return next(n for n in _nodes() if n.node_id == resolved)

    async def gpu_history(self, node_id: str | None = None, duration_minutes: int = 60) -> list[GpuSeries]:
        wanted = NODE_IDS if node_id is None else (normalise_node_id(node_id, NODE_IDS),)
        series = []
        for node in _nodes():
            if node.node_id not in wanted:
                continue
            for gpu in node.gpus:
                end = gpu.last_seen or NOW
                samples = [
                    GpuSample(
                        timestamp=end - timedelta(minutes=age),
                        utilization_pct=gpu.utilization_pct - age,
                        memory_used_mib=gpu.memory_used_mib,
                        memory_total_mib=gpu.memory_total_mib,
                        temperature_c=gpu.temperature_c - 0.5 * age,
                        power_w=gpu.power_w,
                        sm_clock_mhz=gpu.sm_clock_mhz,
                        correctable_remapped_rows=0,
                    )
                    for age in range(min(duration_minutes, 5), -1, -1)
                ]
                series.append(GpuSeries(node_id=node.node_id, gpu_index=gpu.index, samples=samples))
        return series

    async def alert_rules(self) -> list[AlertRule]:
        created = NOW - timedelta(days=30)
        return [
            AlertRule(
                id="rule-gpu-temp", name="GPU too hot", metric="gpu_temperature", condition="gt",
                threshold=85, duration_seconds=300, node_filter=None, enabled=True,
                created_at=created, updated_at=created,
            ),
            AlertRule(
                id="rule-util-low", name="Idle allocated GPU", metric="gpu_utilization", condition="lte",
                threshold=1, duration_seconds=1800, node_filter="node-1", enabled=False,
                created_at=created, updated_at=created + timedelta(days=2),
            ),
        ]

    async def alert_history(self, limit: int = 50) -> list[AlertEvent]:
        events = [
            AlertEvent(
                id="evt-2", rule_id="rule-gpu-temp", rule_name="GPU too hot", node_id="node-0",
                gpu_index=3, metric="gpu_temperature", value=86.5, threshold=85, condition="gt",
                fired_at=NOW - timedelta(minutes=3), resolved_at=None,
            ),
            AlertEvent(
                id="evt-1", rule_id="rule-gpu-temp", rule_name="GPU too hot", node_id="node-1",
                gpu_index=0, metric="gpu_temperature", value=85.25, threshold=85, condition="gt",
                fired_at=NOW - timedelta(hours=2), resolved_at=NOW - timedelta(hours=1, minutes=40),
            ),
        ]
        return events[:limit]

    async def slurm(self) -> SlurmSnapshot | None:
        if not self.has_slurm:
            return None
        return SlurmSnapshot(
            nodes=[
                SlurmNode(
                    name="node-0", state=["MIXED"], cpus_total=128, cpus_alloc=96,
                    memory_total_mb=1024000, memory_alloc_mb=512000, gpus_total=4, gpus_alloc=2,
                ),
                SlurmNode(
                    name="node-1", state=["IDLE", "DRAIN"], reason="gres/gpu count too low (2 < 3)",
                    cpus_total=128, cpus_alloc=0, memory_total_mb=1024000, memory_alloc_mb=0,
                    gpus_total=3, gpus_alloc=0,
                ),
                SlurmNode(
                    name="node-2", state=["DOWN", "NOT_RESPONDING"], reason="Not responding",
                    cpus_total=128, cpus_alloc=0, memory_total_mb=1024000, memory_alloc_mb=0,
                    gpus_total=4, gpus_alloc=0,
                ),
            ],
            queue=QueueCounts(pending=2, running=1, completed=14, failed=1, cancelled=0),
            timestamp=NOW,
        )
