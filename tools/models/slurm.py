"""Scheduler facts: Slurm nodes, jobs, partitions and queue counts.

Names, users, accounts and reasons are written by cluster users; they are ``ClusterText``
(cleaned and capped at the model boundary, see ``text.py``) so no source can pass them raw.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from gpudoc.tools.models.base import Model
from gpudoc.tools.models.text import ClusterText


SLURM_BASE_STATES = ("IDLE", "ALLOCATED", "MIXED", "DOWN", "ERROR", "FUTURE", "UNKNOWN")


class SlurmNode(Model):
    """A Slurm node as slurmrestd reports it: ``state`` is base state first, then flags."""

    name: str
    state: list[str] = Field(description='e.g. ["IDLE", "DRAIN"] (sinfo: drained)')
    reason: ClusterText | None = None
    reason_set_at: datetime | None = None
    cpus_total: int
    cpus_alloc: int
    memory_total_mb: int
    memory_alloc_mb: int
    gpus_total: int
    gpus_alloc: int | None = None
    gres_used: str | None = Field(default=None, description='e.g. "gpu:a100:2(IDX:0-1)"')
    partitions: list[str] = Field(default_factory=list)

    @property
    def base_state(self) -> str:
        return self.state[0] if self.state else "UNKNOWN"

    @property
    def flags(self) -> list[str]:
        return self.state[1:]

    @property
    def is_drained(self) -> bool:
        return "DRAIN" in self.flags

    @property
    def is_down(self) -> bool:
        return self.base_state == "DOWN" or "NOT_RESPONDING" in self.flags

    @property
    def sinfo_state(self) -> str:
        """The name sinfo would print (idle, alloc, mix, drained, draining, down*, ...)."""
        base = self.base_state
        if "DRAIN" in self.flags:
            return "drained" if base == "IDLE" else "draining"
        short = {"ALLOCATED": "alloc", "MIXED": "mix"}.get(base, base.lower())
        return short + ("*" if "NOT_RESPONDING" in self.flags else "")


JobState = Literal[
    "PENDING",
    "RUNNING",
    "COMPLETED",
    "CANCELLED",
    "FAILED",
    "TIMEOUT",
    "NODE_FAIL",
    "PREEMPTED",
    "OUT_OF_MEMORY",
    "REQUEUED",
    "COMPLETING",
]


class SlurmJob(Model):
    """A Slurm job. ``gpu_indices`` maps node name to the GPU indices the job holds there."""

    job_id: str
    name: ClusterText
    user: ClusterText
    partition: str
    state: JobState
    pending_reason: ClusterText | None = None
    nodes: list[str] = Field(default_factory=list)
    gpus: int = 0
    gpu_indices: dict[str, list[int]] = Field(default_factory=dict)
    submit_time: datetime
    start_time: datetime | None = None
    end_time: datetime | None = None
    exit_code: int | None = None


class SlurmPartition(Model):
    name: str
    state: str = "UP"
    nodes: list[str]
    total_gpus: int
    max_time_minutes: int | None = None


class QueueCounts(Model):
    pending: int = 0
    running: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0


class SlurmSnapshot(Model):
    """What the scheduler says. ``jobs``/``partitions`` are ``None`` when the source has no list."""

    nodes: list[SlurmNode]
    jobs: list[SlurmJob] | None = None
    partitions: list[SlurmPartition] | None = None
    queue: QueueCounts
    timestamp: datetime
