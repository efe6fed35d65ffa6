"""Builders of hand-made cluster facts for the diagnosis tests: a healthy busy baseline to perturb."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from gpudoc.tools.diagnosis.facts import ClusterFacts
from gpudoc.tools.models import (
    GpuMetrics,
    GpuSample,
    GpuSeries,
    NetworkPort,
    NodeMetrics,
    QueueCounts,
    SlurmJob,
    SlurmNode,
    SlurmSnapshot,
)

NOW = datetime(2025, 3, 14, 12, 0, tzinfo=timezone.utc)
A100 = "NVIDIA A100-SXM4-80GB"


def gpu(node: int, index: int, **overrides: object) -> GpuMetrics:
    values: dict[str, object] = dict(
        node_id=f"node-{node}", index=index, model=A100, utilization_pct=95.0, memory_used_mib=60000,
        memory_total_mib=81920, temperature_c=65.0 + index * 0.5, power_w=350.0, power_limit_w=400.0,
        default_power_limit_w=400.0, sm_clock_mhz=1410.0, clock_event_reasons=0, xid_events=[],
        correctable_remapped_rows=0, uncorrectable_remapped_rows=0, remap_pending=False, remap_failure=False,
        pcie_link_gen=4, pcie_link_gen_max=4, pcie_link_width=16, pcie_link_width_max=16,
        pcie_replay_count=0, nvlink_error_count=0, nvlink_links_down=0, nvlink_bandwidth_gbps=200.0,
        job_id=f"{1000 + node}", last_seen=NOW,
    )
    values.update(overrides)
    return GpuMetrics(**values)


def node(index: int, gpus: list[GpuMetrics] | None = None, **overrides: object) -> NodeMetrics:
    values: dict[str, object] = dict(
        node_id=f"node-{index}", hostname=f"gpu{index:03d}", timestamp=NOW,
        gpus=gpus if gpus is not None else [gpu(index, i) for i in range(8)],
        network=[NetworkPort(device="mlx5_0", state_id=4, link_downed_total=0, rate_gbps=200)],
    )
    values.update(overrides)
    return NodeMetrics(**values)


def series(node_id: str, index: int, minutes: int = 60, **per_sample: object) -> GpuSeries:
    """A flat series, one sample a minute; values may be callables of the minute offset (0 = oldest)."""
    samples = []
    for m in range(minutes + 1):
        values: dict[str, object] = dict(
            timestamp=NOW - timedelta(minutes=minutes - m), utilization_pct=95.0, memory_used_mib=60000,
            memory_total_mib=81920, temperature_c=65.0, power_w=350.0, sm_clock_mhz=1410.0,
            correctable_remapped_rows=0, nvlink_error_count=0, pcie_replay_count=0,
        )
        for key, value in per_sample.items():
            values[key] = value(m) if callable(value) else value
        samples.append(GpuSample(**values))
    return GpuSeries(node_id=node_id, gpu_index=index, samples=samples)


def slurm_node(index: int, state: list[str] | None = None, **overrides: object) -> SlurmNode:
    values: dict[str, object] = dict(
        name=f"node-{index}", state=state or ["ALLOCATED"], cpus_total=128, cpus_alloc=128,
        memory_total_mb=1_000_000, memory_alloc_mb=800_000, gpus_total=8, gpus_alloc=8, partitions=["gpu"],
    )
    values.update(overrides)
    return SlurmNode(**values)


def job(job_id: str, node_index: int, **overrides: object) -> SlurmJob:
    values: dict[str, object] = dict(
        job_id=job_id, name="train", user="alice", partition="gpu", state="RUNNING",
        nodes=[f"node-{node_index}"], gpus=8, gpu_indices={f"node-{node_index}": list(range(8))},
        submit_time=NOW - timedelta(hours=3), start_time=NOW - timedelta(hours=2),
    )
    values.update(overrides)
    return SlurmJob(**values)


def cluster(nodes: int = 4, *, slurm: bool = True, history: bool = True) -> ClusterFacts:
    """A busy healthy cluster: every node runs one 8-GPU job at 95 %."""
    metrics = [node(i) for i in range(nodes)]
    snapshot = None
    if slurm:
        snapshot = SlurmSnapshot(
            nodes=[slurm_node(i) for i in range(nodes)],
            jobs=[job(f"{1000 + i}", i) for i in range(nodes)],
            queue=QueueCounts(running=nodes), timestamp=NOW,
        )
    return ClusterFacts(
        source="test", collected_at=NOW, nodes=metrics,
        history=[series(n.node_id, g.index) for n in metrics for g in n.gpus] if history else None,
        slurm=snapshot, alert_rules=[], alert_events=[],
    )


def replace_gpu(facts: ClusterFacts, node_index: int, gpu_index: int, **overrides: object) -> None:
    target = facts.nodes[node_index]
    target.gpus[gpu_index] = target.gpus[gpu_index].model_copy(update=overrides)


def replace_series(facts: ClusterFacts, node_index: int, gpu_index: int, **per_sample: object) -> None:
    assert facts.history is not None
    facts.history = [s for s in facts.history if not (s.node_id == f"node-{node_index}" and s.gpu_index == gpu_index)]
    facts.history.append(series(f"node-{node_index}", gpu_index, **per_sample))
