"""Scheduler facts: Slurm nodes, jobs, partitions, queue counts and the controller's health.

Names, users, accounts and reasons are written by cluster users; they are ``ClusterText``
(cleaned and capped at the model boundary, see ``text.py``) so no source can pass them raw;
node, partition and job names and the states a source reports are ``ClusterName`` (the same
cleaning: a source is only as trustworthy as whoever configured it).
Fields a Slurm version (or a source) does not report stay ``None``; nothing is filled in.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Literal

from pydantic import Field

from gpudoc.tools.models.base import Model
from gpudoc.tools.models.text import ClusterName, ClusterText, ComposedText


SLURM_BASE_STATES = ("IDLE", "ALLOCATED", "MIXED", "DOWN", "ERROR", "FUTURE", "UNKNOWN")

#: Node state flags as slurmrestd names them (data_parser NODE_STATES), the ones that matter to
#: an operator first. Others (CLOUD, POWER_*, DYNAMIC_*, ...) pass through unchanged.
SLURM_NODE_FLAGS = (
    "DRAIN", "COMPLETING", "NOT_RESPONDING", "FAIL", "MAINTENANCE", "REBOOT_REQUESTED",
    "REBOOT_ISSUED", "RESERVED", "PLANNED", "POWERED_DOWN", "POWERING_UP", "POWERING_DOWN",
    "INVALID_REG",
)

#: the suffix sinfo appends to a state for a flag that does not change the state's name
_SINFO_SUFFIX = (("MAINTENANCE", "$"), ("REBOOT_ISSUED", "^"), ("REBOOT_REQUESTED", "@"),
                 ("POWERING_UP", "#"), ("POWERING_DOWN", "%"), ("POWERED_DOWN", "~"),
                 ("NOT_RESPONDING", "*"))
_SINFO_BASE = {"ALLOCATED": "alloc", "MIXED": "mix"}


class SlurmNode(Model):
    """A Slurm node as slurmrestd reports it: ``state`` is base state first, then flags.

    A count the source does not have is ``None``, never 0: GPU Watchdog's Slurm metrics carry
    no gres, and a GPU count taken from telemetry instead would hide the very GPU Slurm lost.
    """

    name: ClusterName
    hostname: ClusterName | None = Field(default=None, description="NodeHostname, when it differs from the name")
    state: list[ClusterName] = Field(description='e.g. ["IDLE", "DRAIN"] (sinfo: drained)')
    reason: ClusterText | None = None
    reason_set_at: datetime | None = None
    reason_set_by: ClusterText | None = Field(default=None, description="who set the reason (Slurm's own user for reasons Slurm writes)")
    cpus_total: int | None
    cpus_alloc: int | None
    memory_total_mb: int | None
    memory_alloc_mb: int | None
    gpus_total: int | None = Field(default=None, description="configured GPUs (gres); None where the source does not say")
    gpus_alloc: int | None = None
    gres: ClusterName | None = Field(default=None, description='configured, e.g. "gpu:a100:8(S:0-1)"')
    gres_used: ClusterName | None = Field(default=None, description='e.g. "gpu:a100:2(IDX:0-1)"')
    gpu_indices_used: list[int] | None = Field(default=None, description="GPU indices in use, where Slurm names them")
    partitions: list[ClusterName] = Field(default_factory=list)
    boot_time: datetime | None = None
    slurmd_started_at: datetime | None = None

    @property
    def base_state(self) -> str:
        return self.state[0] if self.state else "UNKNOWN"

    @property
    def flags(self) -> list[str]:
        return self.state[1:]

    @property
    def is_drained(self) -> bool:
        """Drained or draining: closed to new jobs by an administrator or a health check."""
        return "DRAIN" in self.flags

    @property
    def is_down(self) -> bool:
        return self.base_state == "DOWN" or "NOT_RESPONDING" in self.flags

    @property
    def is_failing(self) -> bool:
        """FAIL: set by an administrator (``state=fail``) to take a node out once its jobs end."""
        return "FAIL" in self.flags

    @property
    def in_maintenance(self) -> bool:
        """In a maintenance reservation: planned, not a fault."""
        return "MAINTENANCE" in self.flags

    @property
    def accepts_jobs(self) -> bool:
        """Whether the scheduler may start new jobs here."""
        return not (self.is_down or self.is_drained or self.is_failing or self.in_maintenance
                    or self.base_state in ("ERROR", "FUTURE", "UNKNOWN")
                    or "INVALID_REG" in self.flags)

    @property
    def sinfo_state(self) -> str:
        """The name sinfo prints (idle, alloc, mix, drained, draining, down*, fail, maint, ...).

        Follows Slurm's own precedence (``node_state_string``): a drain names the state
        (drained / draining) whatever the base; FAIL comes next; otherwise the base state, with
        sinfo's suffix for the first flag that does not rename it (``*`` not responding,
        ``$`` maintenance, ``@`` reboot requested, ...).
        """
        base, flags = self.base_state, set(self.flags)
        if "INVALID_REG" in flags:
            return "inval"
        busy = base in ("ALLOCATED", "MIXED") or "COMPLETING" in flags
        if "DRAIN" in flags:
            name = "draining" if busy else "drained"
        elif "FAIL" in flags:
            name = "failing" if busy else "fail"
        elif "MAINTENANCE" in flags and base in ("IDLE", "UNKNOWN"):
            name = "maint"
        elif flags & {"REBOOT_REQUESTED", "REBOOT_ISSUED"} and base not in ("ALLOCATED", "MIXED"):
            name = "reboot"
        elif base == "IDLE" and "PLANNED" in flags:
            name = "planned"
        elif base == "IDLE" and "COMPLETING" in flags:
            name = "comp"
        else:
            name = _SINFO_BASE.get(base, base.lower())
        suffix = next((mark for flag, mark in _SINFO_SUFFIX if flag in flags and not
                       (mark == "$" and name == "maint") and not (mark in "^@" and name == "reboot")), "")
        return name + suffix


def node_sum(values: Iterable[int | None]) -> tuple[int, int, int]:
    """(sum of the reported values, how many nodes reported one, how many nodes in all): a total
    over nodes says what it covers rather than counting an unreported value as 0."""
    values = list(values)
    known = [value for value in values if value is not None]
    return sum(known), len(known), len(values)


JobState = Literal[
    "PENDING",
    "RUNNING",
    "SUSPENDED",
    "COMPLETED",
    "CANCELLED",
    "FAILED",
    "TIMEOUT",
    "NODE_FAIL",
    "PREEMPTED",
    "BOOT_FAIL",
    "DEADLINE",
    "OUT_OF_MEMORY",
    "REQUEUED",
    "COMPLETING",
]


class SlurmJob(Model):
    """A Slurm job. ``gpu_indices`` maps node name to the GPU indices the job holds there.

    ``pending_reason`` is why a PENDING job waits, as squeue prints it (``Resources``,
    ``ReqNodeNotAvail, UnavailableNodes:node-3``); ``state_reason`` is Slurm's reason for any
    other state (``NodeDown`` for a NODE_FAIL job, ``NonZeroExitCode``, ``TimeLimit``).
    """

    job_id: ClusterName
    name: ClusterText
    user: ClusterText
    account: ClusterText | None = None
    partition: ClusterName
    qos: ClusterText | None = None
    state: JobState
    state_flags: list[ClusterName] = Field(default_factory=list, description="e.g. COMPLETING, REQUEUED, CONFIGURING")
    pending_reason: ClusterText | None = None
    state_reason: ClusterText | None = None
    nodes: list[ClusterName] = Field(default_factory=list)
    failed_node: ClusterName | None = Field(default=None, description="the node Slurm blames for a failed job")
    gpus: int = 0
    gpus_per_node: int | None = None
    gpu_indices: dict[ClusterName, list[int]] = Field(default_factory=dict)
    submit_time: datetime
    start_time: datetime | None = None
    end_time: datetime | None = None
    time_limit_minutes: int | None = None
    exit_code: int | None = Field(default=None, description="the batch script's return code")
    exit_signal: int | None = Field(default=None, description="the signal that ended it, if one did")


class SlurmPartition(Model):
    name: ClusterName
    state: ClusterName = "UP"
    nodes: list[ClusterName]
    total_gpus: int
    total_cpus: int | None = None
    max_time_minutes: int | None = None


class QueueCounts(Model):
    """Jobs per state; ``None`` for a count the source does not report (never 0 in its place)."""

    pending: int | None = 0
    running: int | None = 0
    completed: int | None = 0
    failed: int | None = 0
    cancelled: int | None = 0


class SchedulerHealth(Model):
    """slurmctld's own view of itself (``/ping`` and ``/diag``, ``scontrol ping`` and ``sdiag``).

    Why: "the queue does not move" can be the controller, not the cluster: a stuck agent queue
    (RPCs to dead nodes), a slurmdbd that is not draining, scheduling cycles taking seconds.
    Times are microseconds as Slurm reports them.
    """

    controller: ClusterName | None = Field(default=None, description="slurmctld host that answered")
    responding: bool | None = None
    mode: ClusterName | None = Field(default=None, description="primary or backup")
    slurm_version: ClusterName | None = None
    api: ClusterName | None = Field(default=None, description='how the facts were read: "rest v0.0.40", "cli"')
    server_threads: int | None = None
    agent_queue_size: int | None = Field(default=None, description="outgoing RPCs waiting (retries to dead nodes pile up here)")
    dbd_agent_queue_size: int | None = Field(default=None, description="messages waiting for slurmdbd")
    schedule_cycle_last_us: int | None = None
    schedule_cycle_mean_us: int | None = None
    schedule_cycle_max_us: int | None = None
    schedule_queue_length: int | None = None
    backfill_active: bool | None = None
    backfill_cycle_last_us: int | None = None
    backfill_last_cycle_at: datetime | None = None
    backfilled_jobs_since_start: int | None = None
    jobs_submitted: int | None = None
    jobs_started: int | None = None
    jobs_completed: int | None = None
    jobs_canceled: int | None = None
    jobs_failed: int | None = None
    statistics_since: datetime | None = Field(default=None, description="when these counters were last reset")


class SlurmSnapshot(Model):
    """What the scheduler says. ``jobs``/``partitions`` are ``None`` when the source has no list.

    ``notes`` says what the source could not read (one job in an unexpected shape, ``/diag``
    refused): the rest of the snapshot stands, and the reader knows what is missing.
    """

    nodes: list[SlurmNode]
    jobs: list[SlurmJob] | None = None
    partitions: list[SlurmPartition] | None = None
    queue: QueueCounts
    scheduler: SchedulerHealth | None = None
    notes: list[ComposedText] = Field(default_factory=list)
    timestamp: datetime
