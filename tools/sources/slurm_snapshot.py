"""Assemble one ``SlurmSnapshot`` from the scheduler's answers, whoever fetched them.

Why shared by the slurmrestd and the CLI client: both hand over the same JSON (the CLI's
``--json`` is the same data parser as slurmrestd), so only fetching differs. Degrades per value:
a node or job in an unexpected shape is skipped with a note naming it, a missing job list,
partition list or ``/diag`` leaves that part ``None`` with a note; only an unreadable node list
fails the snapshot, since without nodes there is no scheduler view at all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from pydantic import ValidationError

from gpudoc.tools.models import (
    QueueCounts,
    SchedulerHealth,
    SlurmJob,
    SlurmNode,
    SlurmPartition,
    SlurmSnapshot,
)
from gpudoc.tools.sources.base import SourceUnavailableError
from gpudoc.tools.sources.slurm_notation import integer, timestamp
from gpudoc.tools.sources.slurm_shapes import Envelope, JobWire, NodeWire, PartitionWire

#: notes about skipped items, per kind, before the rest are only counted
MAX_ITEM_NOTES = 3

_FAILED = frozenset({"FAILED", "NODE_FAIL", "TIMEOUT", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE"})

T = TypeVar("T")


@dataclass
class Answer:
    """One answer of the scheduler: ``what`` names the request (``GET /slurm/v0.0.40/nodes``,
    ``squeue --json``) for messages; ``error`` says why there is no ``payload``."""

    what: str
    payload: dict[str, Any] | None = None
    error: str | None = None


@dataclass
class Answers:
    nodes: Answer
    jobs: Answer
    partitions: Answer | list[SlurmPartition] | None = None
    diag: Answer | None = None
    ping: Answer | None = None
    notes: list[str] = field(default_factory=list)


def build_snapshot(answers: Answers, *, api: str, origin: str, now: datetime) -> SlurmSnapshot:
    """The snapshot; raises ``SourceProtocolError`` when the node list cannot be read."""
    notes = list(answers.notes)
    node_items = _items(answers.nodes, "nodes", origin, required=True, notes=notes)
    nodes = _parse(node_items, lambda raw: NodeWire.model_validate(raw).to_model(), "node", notes)
    jobs = None
    job_items = _items(answers.jobs, "jobs", origin, required=False, notes=notes)
    if job_items is not None:
        jobs = _parse(job_items, lambda raw: JobWire.model_validate(raw).to_model(), "job", notes)
    return SlurmSnapshot(
        nodes=nodes,
        jobs=jobs,
        partitions=_partitions(answers.partitions, nodes, origin, notes),
        queue=_queue(jobs),
        scheduler=_scheduler(answers, api, origin, notes),
        notes=notes,
        timestamp=now,
    )


def _envelope(answer: Answer, notes: list[str]) -> Envelope:
    envelope = Envelope.model_validate(answer.payload or {})
    for warning in envelope.warnings[:MAX_ITEM_NOTES]:
        notes.append(f"{answer.what} warned: {warning.text()}")
    return envelope


def _items(answer: Answer, key: str, origin: str, *, required: bool, notes: list[str]) -> list[Any] | None:
    """The list under ``key``; errors Slurm put in the answer are quoted.

    An empty list next to errors is a failure, not an empty cluster: that is how ``sinfo
    --json`` and ``squeue --json`` (exit status 0) and slurmrestd say slurmctld did not answer.
    """
    problem = answer.error
    items = None
    if answer.payload is not None:
        envelope = _envelope(answer, notes)
        items = answer.payload.get(key)
        said = "; ".join(e.text() for e in envelope.errors[:3])
        if not isinstance(items, list) or (not items and envelope.errors):
            problem = f"Slurm answered with errors: {said}" if said else f"the answer has no '{key}' list"
            items = None
        elif envelope.errors:
            notes.append(f"{answer.what} reported: {said}")
    if items is not None:
        return items
    if required:
        raise SourceUnavailableError(
            f"{origin}: {answer.what} gave no node list ({problem}). Check that slurmctld answers "
            "(scontrol ping) and that gpudoc's Slurm credentials are valid."
        )
    notes.append(f"Slurm {key} unavailable ({answer.what}: {problem})")
    return None


def _parse(items: Iterable[Any], parse: Callable[[Any], T], kind: str, notes: list[str]) -> list[T]:
    parsed: list[T] = []
    skipped: list[str] = []
    for raw in items:
        try:
            parsed.append(parse(raw))
        except (ValidationError, ValueError, TypeError) as exc:
            name = raw.get("name") if kind == "node" else raw.get("job_id") if isinstance(raw, dict) else None
            skipped.append(f"{kind} {name if name is not None else '?'} skipped: {_reason(exc)}")
    notes.extend(skipped[:MAX_ITEM_NOTES])
    if len(skipped) > MAX_ITEM_NOTES:
        notes.append(f"(and {len(skipped) - MAX_ITEM_NOTES} more {kind}s skipped)")
    return parsed


def _reason(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(item)"
        return f"field '{where}': {first['msg']}"
    return str(exc)


def _partitions(found: Answer | list[SlurmPartition] | None, nodes: list[SlurmNode], origin: str,
                notes: list[str]) -> list[SlurmPartition] | None:
    if found is None or isinstance(found, list):
        return found
    items = _items(found, "partitions", origin, required=False, notes=notes)
    if items is None:
        return None
    gpus_of = {node.name: node.gpus_total for node in nodes}
    return _parse(items, lambda raw: PartitionWire.model_validate(raw).to_model(gpus_of), "partition", notes)


def _queue(jobs: list[SlurmJob] | None) -> QueueCounts:
    """Jobs per state; every count unknown when the job list could not be read (never 0 for it)."""
    if jobs is None:
        return QueueCounts(**dict.fromkeys(QueueCounts.model_fields))
    return QueueCounts(
        pending=sum(j.state == "PENDING" for j in jobs),
        running=sum(j.state in ("RUNNING", "COMPLETING") for j in jobs),
        completed=sum(j.state == "COMPLETED" for j in jobs),
        failed=sum(j.state in _FAILED for j in jobs),
        cancelled=sum(j.state in ("CANCELLED", "PREEMPTED") for j in jobs),
    )


def _scheduler(answers: Answers, api: str, origin: str, notes: list[str]) -> SchedulerHealth | None:
    stats: dict[str, Any] = {}
    if answers.diag is not None:
        if answers.diag.payload is not None:
            _envelope(answers.diag, notes)
            found = answers.diag.payload.get("statistics")
            stats = found if isinstance(found, dict) else {}
        if not stats:
            notes.append(f"scheduler statistics unavailable ({answers.diag.what}: "
                         f"{answers.diag.error or 'no statistics in the answer'})")
    ping = _ping(answers.ping, notes)
    release = Envelope.model_validate((answers.nodes.payload or {})).slurm_release()
    if not stats and not ping:
        return SchedulerHealth(api=api, slurm_version=release) if release else None
    counters = {field: integer(stats.get(wire)) for field, wire in _DIAG_COUNTERS.items()}
    return SchedulerHealth(
        controller=ping.get("hostname"),
        responding=_responding(ping) if ping else None,
        mode=ping.get("mode") or ({True: "primary", False: "backup"}.get(ping.get("primary"))),  # type: ignore[arg-type]
        slurm_version=release,
        api=api,
        backfill_active=stats.get("bf_active") if isinstance(stats.get("bf_active"), bool) else None,
        backfill_last_cycle_at=timestamp(stats.get("bf_when_last_cycle")),
        statistics_since=timestamp(stats.get("req_time_start")),
        **counters,
    )


#: ``SchedulerHealth`` field -> the ``/diag`` statistic it reads (the same name in every version)
_DIAG_COUNTERS = {
    "server_threads": "server_thread_count", "agent_queue_size": "agent_queue_size",
    "dbd_agent_queue_size": "dbd_agent_queue_size", "schedule_cycle_last_us": "schedule_cycle_last",
    "schedule_cycle_mean_us": "schedule_cycle_mean", "schedule_cycle_max_us": "schedule_cycle_max",
    "schedule_queue_length": "schedule_queue_length", "backfill_cycle_last_us": "bf_cycle_last",
    "backfilled_jobs_since_start": "bf_backfilled_jobs", "jobs_submitted": "jobs_submitted",
    "jobs_started": "jobs_started", "jobs_completed": "jobs_completed", "jobs_canceled": "jobs_canceled",
    "jobs_failed": "jobs_failed",
}


def _ping(answer: Answer | None, notes: list[str]) -> dict[str, Any]:
    """The primary controller's ping entry (the first one), or ``{}``."""
    if answer is None:
        return {}
    pings = (answer.payload or {}).get("pings")
    if not isinstance(pings, list) or not pings or not isinstance(pings[0], dict):
        notes.append(f"controller ping unavailable ({answer.what}: {answer.error or 'no pings in the answer'})")
        return {}
    primary = next((p for p in pings if p.get("mode") == "primary" or p.get("primary") is True), pings[0])
    return primary


def _responding(ping: dict[str, Any]) -> bool | None:
    """v0.0.38 ``ping: "UP"``, v0.0.40-42 ``pinged: "UP"``, v0.0.43+ ``responding: true``."""
    if isinstance(ping.get("responding"), bool):
        return ping["responding"]
    said = ping.get("pinged", ping.get("ping"))
    return said.upper() == "UP" if isinstance(said, str) else None
