"""What slurmrestd and the Slurm CLI (``--json``) send, in every OpenAPI version gpudoc reads,
and how each item becomes a fact model.

Why one set of shapes for v0.0.38 through v0.0.44: the versions differ in form, not in meaning.
v0.0.38 (Slurm 22.05) writes ``state: "mixed"`` plus ``state_flags: ["DRAIN"]``, plain numbers
and wait statuses; v0.0.40+ write ``state: ["MIXED", "DRAIN"]``, ``{"set", "infinite",
"number"}`` structs and verbose exit codes; partitions moved from flat fields to nested ones.
Each shape below accepts every form (see ``slurm_notation`` for the notations) so one mapping
serves all versions and the CLI, whose JSON is the same data parser's.

Only the fields gpudoc uses are declared; the rest are ignored (each version adds dozens).
A field in an unexpected form fails that one item, which the snapshot builder reports and skips.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from gpudoc.tools.models import SLURM_BASE_STATES, SlurmJob, SlurmNode, SlurmPartition
from gpudoc.tools.models.slurm import JobState
from gpudoc.tools.sources.slurm_notation import (
    expand_hostlist,
    exit_status,
    gpu_gres,
    integer,
    is_infinite,
    timestamp,
    tres_gpus,
)

Int = Annotated[int | None, BeforeValidator(integer)]
Time = Annotated[datetime | None, BeforeValidator(timestamp)]


def _text(value: Any) -> Any:
    """Slurm writes "" or null for "not set"."""
    return None if value in ("", None) else value


Text = Annotated[str | None, BeforeValidator(_text)]


def _string_list(value: Any) -> Any:
    """A list, a comma-separated string (some versions' CSV fields) or nothing."""
    if value in (None, ""):
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


StringList = Annotated[list[str], BeforeValidator(_string_list)]


class Wire(BaseModel):
    model_config = ConfigDict(extra="ignore")


# ---- envelope ------------------------------------------------------------------------------


class ErrorWire(Wire):
    description: Text = None
    error_number: Int = None
    error: Text = None
    source: Text = None

    def text(self) -> str:
        parts = [p for p in (self.description, self.error) if p]
        where = f" ({self.source})" if self.source else ""
        return (": ".join(dict.fromkeys(parts)) or f"error {self.error_number}") + where


class Envelope(Wire):
    """``meta``, ``errors`` and ``warnings``: present in every response of every version."""

    meta: dict[str, Any] = Field(default_factory=dict)
    errors: list[ErrorWire] = Field(default_factory=list)
    warnings: list[ErrorWire] = Field(default_factory=list)

    def slurm_release(self) -> str | None:
        slurm = self.meta.get("slurm") or self.meta.get("Slurm") or {}
        release = slurm.get("release") if isinstance(slurm, dict) else None
        return release if isinstance(release, str) and release else None

    def data_parser(self) -> str | None:
        """``v0.0.40`` from ``meta.plugin`` (``data_parser`` since 23.02, ``type`` before)."""
        plugin = self.meta.get("plugin") or {}
        for key in ("data_parser", "type"):
            value = plugin.get(key) if isinstance(plugin, dict) else None
            if isinstance(value, str) and "/v0.0." in value:
                return value.rsplit("/", 1)[1]
        return None


# ---- nodes ---------------------------------------------------------------------------------


class NodeWire(Wire):
    name: str
    hostname: Text = None
    state: list[str]
    reason: Text = None
    reason_changed_at: Time = None
    reason_set_by_user: Text = None
    cpus: Int = None
    alloc_cpus: Int = None
    real_memory: Int = None
    alloc_memory: Int = None
    gres: Text = None
    gres_used: Text = None
    partitions: StringList = Field(default_factory=list)
    boot_time: Time = None
    slurmd_start_time: Time = None

    @model_validator(mode="before")
    @classmethod
    def _one_state_list(cls, data: Any) -> Any:
        """v0.0.38: ``state: "mixed"`` and ``state_flags: ["DRAIN"]``; later: one list."""
        if not isinstance(data, dict):
            return data
        state = data.get("state")
        states = [state] if isinstance(state, str) else list(state or [])
        states += [f for f in data.get("state_flags") or [] if isinstance(f, str)]
        return {**data, "state": node_state_list(states)}

    def to_model(self) -> SlurmNode:
        gres = gpu_gres(self.gres)
        used = gpu_gres(self.gres_used)
        return SlurmNode(
            name=self.name,
            hostname=self.hostname if self.hostname and self.hostname != self.name else None,
            state=self.state,
            reason=self.reason,
            reason_set_at=self.reason_changed_at if self.reason else None,
            reason_set_by=self.reason_set_by_user if self.reason else None,
            cpus_total=self.cpus or 0,
            cpus_alloc=self.alloc_cpus or 0,
            memory_total_mb=self.real_memory or 0,
            memory_alloc_mb=self.alloc_memory or 0,
            gpus_total=gres.count if gres else 0,
            gpus_alloc=used.count if used else (0 if gres else None),
            gres=self.gres,
            gres_used=self.gres_used,
            gpu_indices_used=used.indices if used else None,
            partitions=self.partitions,
            boot_time=self.boot_time,
            slurmd_started_at=self.slurmd_start_time,
        )


def node_state_list(states: list[str]) -> list[str]:
    """Upper-case, base state first, each flag once: ``["drain", "IDLE"]`` -> ``["IDLE", "DRAIN"]``."""
    upper = list(dict.fromkeys(s.strip().upper() for s in states if s and s.strip()))
    base = next((s for s in upper if s in SLURM_BASE_STATES), "UNKNOWN")
    return [base, *(s for s in upper if s != base and s != "INVALID")]


# ---- jobs ----------------------------------------------------------------------------------

#: job state names that are flags in Slurm (v0.0.38 prints the flag instead of the base state)
_FLAG_ONLY_STATES: dict[str, str] = {
    "CONFIGURING": "RUNNING", "RESIZING": "RUNNING", "SIGNALING": "RUNNING", "STAGE_OUT": "RUNNING",
    "STOPPED": "RUNNING", "POWER_UP_NODE": "RUNNING", "LAUNCH_FAILED": "FAILED",
    "REQUEUE_HOLD": "PENDING", "SPECIAL_EXIT": "PENDING", "RESV_DEL_HOLD": "PENDING",
    "REQUEUE_FED": "REQUEUED", "REVOKED": "CANCELLED", "UPDATE_DB": "RUNNING",
    "RECONFIG_FAIL": "PENDING",
}
_JOB_BASE_STATES = frozenset(JobState.__args__)  # type: ignore[attr-defined]
_ACTIVE = frozenset({"PENDING", "RUNNING", "SUSPENDED", "REQUEUED", "COMPLETING"})


def job_state(raw: Any) -> tuple[str, list[str]]:
    """(base state, flags) from ``"RUNNING"`` (v0.0.38) or ``["PENDING", "REQUEUED"]`` (v0.0.40+).

    Raises ``ValueError`` for a state gpudoc does not know, naming it.
    """
    states = [raw] if isinstance(raw, str) else [s for s in raw or [] if isinstance(s, str)]
    states = [s.strip().upper() for s in states if s.strip()]
    base = next((s for s in states if s in _JOB_BASE_STATES and s not in ("REQUEUED", "COMPLETING")), None)
    if base is None:
        base = next((s for s in states if s in _JOB_BASE_STATES), None)
    if base is None:
        base = next((_FLAG_ONLY_STATES[s] for s in states if s in _FLAG_ONLY_STATES), None)
    if base is None:
        raise ValueError(f"job state {'+'.join(states) or '(none)'} is not one gpudoc knows")
    return base, [s for s in states if s != base]


class JobWire(Wire):
    job_id: int | str
    name: str = ""
    user_name: Text = None
    user_id: Int = None
    account: Text = None
    partition: str = ""
    qos: Text = None
    job_state: str | list[str]
    state_reason: Text = None
    state_description: Text = None
    nodes: Text = None
    failed_node: Text = None
    gres_detail: list[str] = Field(default_factory=list)
    tres_per_node: Text = None
    tres_per_job: Text = None
    tres_per_task: Text = None
    tres_alloc_str: Text = None
    node_count: Int = None
    tasks: Int = None
    submit_time: Time = None
    start_time: Time = None
    end_time: Time = None
    time_limit: Any = None
    exit_code: Any = None

    def to_model(self) -> SlurmJob:
        state, flags = job_state(self.job_state)
        if self.submit_time is None:
            raise ValueError("submit_time missing")
        reason = None if self.state_reason in (None, "None") else self.state_reason
        nodes = expand_hostlist(self.nodes) if state != "PENDING" else []
        indices = _gpu_indices(nodes, self.gres_detail)
        per_node = tres_gpus(self.tres_per_node)
        ended = state not in _ACTIVE
        code, signal = exit_status(self.exit_code) if ended else (None, None)
        return SlurmJob(
            job_id=str(self.job_id),
            name=self.name,
            user=self.user_name or (str(self.user_id) if self.user_id is not None else "unknown"),
            account=self.account,
            partition=self.partition,
            qos=self.qos,
            state=state,  # type: ignore[arg-type]  # checked by job_state()
            state_flags=flags,
            pending_reason=(self.state_description or reason) if state == "PENDING" else None,
            state_reason=reason if state != "PENDING" else None,
            nodes=nodes,
            failed_node=self.failed_node,
            gpus=self._gpus(nodes, indices, per_node) or 0,
            gpus_per_node=per_node,
            gpu_indices=indices,
            submit_time=self.submit_time,
            start_time=self.start_time if state != "PENDING" else None,
            end_time=self.end_time if ended else None,
            time_limit_minutes=None if is_infinite(self.time_limit) else integer(self.time_limit),
            exit_code=code,
            exit_signal=signal,
        )

    def _gpus(self, nodes: list[str], indices: dict[str, list[int]], per_node: int | None) -> int | None:
        """GPUs held (from the allocation) or requested (while pending)."""
        detail = [g.count for entry in self.gres_detail if (g := gpu_gres(entry)) is not None]
        if detail:
            return sum(detail)
        allocated = tres_gpus(self.tres_alloc_str)
        if allocated is not None:
            return allocated
        if per_node is not None:
            return per_node * (len(nodes) or self.node_count or 1)
        per_job = tres_gpus(self.tres_per_job)
        if per_job is not None:
            return per_job
        per_task = tres_gpus(self.tres_per_task)
        return per_task * (self.tasks or 1) if per_task is not None else None


def _gpu_indices(nodes: list[str], gres_detail: list[str]) -> dict[str, list[int]]:
    """``gres_detail`` has one entry per allocated node, in the job's node order."""
    if len(gres_detail) != len(nodes):
        return {}
    mapping = {}
    for node, entry in zip(nodes, gres_detail):
        gres = gpu_gres(entry)
        if gres is not None and gres.indices:
            mapping[node] = gres.indices
    return mapping


# ---- partitions ----------------------------------------------------------------------------


class PartitionWire(Wire):
    """v0.0.38 flat fields or v0.0.40+ nested ones (``nodes.configured``, ``partition.state``)."""

    name: str
    nodes: str | dict[str, Any] | None = None
    state: str | list[str] | None = None
    partition: dict[str, Any] | None = None
    max_time_limit: Any = None
    maximums: dict[str, Any] | None = None
    total_cpus: Int = None
    cpus: dict[str, Any] | None = None

    def to_model(self, gpus_of: dict[str, int]) -> SlurmPartition:
        node_text = self.nodes.get("configured") if isinstance(self.nodes, dict) else self.nodes
        members = expand_hostlist(node_text if isinstance(node_text, str) else "")
        state = self.state if self.state is not None else (self.partition or {}).get("state")
        states = [state] if isinstance(state, str) else list(state or [])
        limit = self.max_time_limit if self.maximums is None else self.maximums.get("time")
        cpus = self.total_cpus if self.cpus is None else integer(self.cpus.get("total"))
        return SlurmPartition(
            name=self.name,
            state="+".join(s.upper() for s in states) or "UNKNOWN",
            nodes=members,
            total_gpus=sum(gpus_of.get(node, 0) for node in members),
            total_cpus=cpus,
            max_time_minutes=None if is_infinite(limit) else integer(limit),
        )
