"""The cluster status's Slurm counts (the simulator, and Slurm composed with any telemetry source):
a total is stated only where every node reported its part."""

from __future__ import annotations

from datetime import UTC, datetime

from gpudoc.tools.models import SlurmSnapshot, SlurmSummary
from gpudoc.tools.models.slurm import QueueCounts, SlurmNode


NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def node(name: str, cpus_total: int | None, cpus_alloc: int | None) -> SlurmNode:
    return SlurmNode(name=name, state=["MIXED"], cpus_total=cpus_total, cpus_alloc=cpus_alloc,
                     memory_total_mb=None, memory_alloc_mb=None)


def test_cpu_totals_over_every_node() -> None:
    summary = SlurmSummary.of(SlurmSnapshot(nodes=[node("a", 64, 16), node("b", 64, 48)],
                                           queue=QueueCounts(pending=3, running=2), timestamp=NOW))
    assert (summary.cpus_total, summary.cpus_alloc, summary.cpus_idle) == (128, 64, 64)
    assert (summary.nodes_total, summary.jobs_pending, summary.jobs_running) == (2, 3, 2)


def test_a_node_without_cpu_counts_leaves_the_totals_unknown_not_short() -> None:
    summary = SlurmSummary.of(SlurmSnapshot(nodes=[node("a", 64, 16), node("b", None, None)],
                                           queue=QueueCounts(pending=0, running=1), timestamp=NOW))
    assert summary.cpus_total is None and summary.cpus_alloc is None and summary.cpus_idle is None
    assert summary.nodes_total == 2
