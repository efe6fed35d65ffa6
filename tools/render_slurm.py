"""The scheduler's view rendered for the model: node states, queue, and filtered job lists.

Why grouped by state: "why are jobs pending?" is answered by the drained and down nodes with
their reasons next to the pending reasons, not by a row per node. Job names and node reasons are
written by users and admins; they stay in labelled fields (``name``, ``reason``), cleaned and
cut short, so they are read as data. The controller's own health (``scheduler``) is shown only
in the figures that say something: whether it answers, how long a scheduling cycle takes, and
queues that back up.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any, Sequence, get_args

from gpudoc.tools.compact import fit_list, fit_to_budget, free_text, iso, without_none
from gpudoc.tools.models import JobState, SchedulerHealth, SlurmJob, SlurmNode, SlurmSnapshot, node_sum

JOB_STATES: tuple[str, ...] = get_args(JobState)

#: squeue's short codes, so "PD" or "r" work as well as "pending".
JOB_STATE_CODES: dict[str, str] = {
    "PD": "PENDING",
    "R": "RUNNING",
    "CG": "COMPLETING",
    "CD": "COMPLETED",
    "CA": "CANCELLED",
    "F": "FAILED",
    "TO": "TIMEOUT",
    "NF": "NODE_FAIL",
    "PR": "PREEMPTED",
    "OOM": "OUT_OF_MEMORY",
    "RQ": "REQUEUED",
    "S": "SUSPENDED",
    "BF": "BOOT_FAIL",
    "DL": "DEADLINE",
}

#: Order of job states in a listing: what is happening now first.
_STATE_ORDER = {state: rank for rank, state in enumerate(("RUNNING", "PENDING", "COMPLETING"))}

_TRAILING_NUMBER = re.compile(r"^(.*?)(\d+)$")


def normalise_job_state(raw: str) -> str:
    """``"running"``, ``"R"``, ``"Pending"`` -> the Slurm state name; ``ValueError`` listing valid ones."""
    key = raw.strip().upper().replace(" ", "_").replace("-", "_")
    if key in JOB_STATES:
        return key
    if key in JOB_STATE_CODES:
        return JOB_STATE_CODES[key]
    if key == "CANCELED":
        return "CANCELLED"
    raise ValueError(
        f"unknown job state '{raw}'; use one of {', '.join(JOB_STATES)} "
        f"(or squeue codes {', '.join(JOB_STATE_CODES)})"
    )


def hostlist(names: Sequence[str]) -> str:
    """Slurm's compressed form of a node list: ``node-[0-3,7],login``."""
    numbered: dict[tuple[str, int], set[int]] = {}
    plain: list[str] = []
    for name in names:
        match = _TRAILING_NUMBER.match(name)
        if match is None:
            plain.append(name)
            continue
        digits = match.group(2)
        width = len(digits) if digits.startswith("0") and len(digits) > 1 else 0
        numbered.setdefault((match.group(1), width), set()).add(int(digits))
    parts: list[str] = []
    for (prefix, width), numbers in numbered.items():
        ordered = sorted(numbers)
        runs: list[tuple[int, int]] = []
        for number in ordered:
            if runs and number == runs[-1][1] + 1:
                runs[-1] = (runs[-1][0], number)
            else:
                runs.append((number, number))
        text = ",".join(
            str(a).zfill(width) if a == b else f"{str(a).zfill(width)}-{str(b).zfill(width)}" for a, b in runs
        )
        single = len(runs) == 1 and runs[0][0] == runs[0][1]
        parts.append(f"{prefix}{text}" if single else f"{prefix}[{text}]")
    return ",".join(parts + plain)


def _is_problem(node: SlurmNode) -> bool:
    return not node.accepts_jobs or any(flag in node.flags for flag in ("REBOOT_REQUESTED", "REBOOT_ISSUED"))


def render_scheduler(health: SchedulerHealth) -> dict[str, Any]:
    """The controller's health in the few figures that matter, in milliseconds."""

    def ms(us: int | None) -> float | None:
        return None if us is None else round(us / 1000, 1)

    return without_none({
        "controller": health.controller,
        "responding": health.responding,
        "mode": health.mode,
        "version": health.slurm_version,
        "via": health.api,
        "last_cycle_ms": ms(health.schedule_cycle_last_us),
        "mean_cycle_ms": ms(health.schedule_cycle_mean_us),
        "max_cycle_ms": ms(health.schedule_cycle_max_us),
        "backfill_last_cycle_ms": ms(health.backfill_cycle_last_us),
        "backfill_last_run": iso(health.backfill_last_cycle_at),
        "agent_queue": health.agent_queue_size,
        "dbd_queue": health.dbd_agent_queue_size,
        "threads": health.server_threads,
    })


def node_totals(what: str, nodes: Sequence[SlurmNode], totals: Sequence[int | None],
                allocs: Sequence[int | None]) -> dict[str, Any] | str:
    """Cluster totals of a per-node count, saying what they cover: a node whose count the source
    does not report is left out of the sum and named as such, never counted as 0."""
    total, reported, of = node_sum(totals)
    alloc, alloc_reported, _ = node_sum(allocs)
    if not reported and not alloc_reported:
        return f"{what} counts not reported by this source"
    out: dict[str, Any] = {}
    if reported:
        out["total"] = total
        if reported < of:
            missing = [n.name for n, value in zip(nodes, totals) if value is None]
            out["total_covers"] = f"{reported} of {of} nodes; not reported for {hostlist(missing)}"
    if alloc_reported:
        out["alloc"] = alloc
        if alloc_reported < of:
            out["alloc_covers"] = f"{alloc_reported} of {of} nodes"
    return out


def render_slurm_status(snapshot: SlurmSnapshot) -> dict[str, Any]:
    """Node states (grouped), problem nodes with reasons, GPU/CPU allocation, queue, partitions."""
    by_state: dict[str, list[str]] = {}
    for node in snapshot.nodes:
        by_state.setdefault(node.sinfo_state, []).append(node.name)
    problems = [
        without_none(
            {
                "node": node.name,
                "state": node.state,
                "reason": free_text(node.reason),
                "since": iso(node.reason_set_at),
                "by": node.reason_set_by,
            }
        )
        for node in snapshot.nodes
        if _is_problem(node)
    ]
    payload: dict[str, Any] = {
        "time": iso(snapshot.timestamp),
        "nodes": len(snapshot.nodes),
        "state_counts": {state: len(names) for state, names in by_state.items()},
        "nodes_by_state": by_state,
        "problem_nodes": problems,
        "gpus": node_totals("GPU", snapshot.nodes, [n.gpus_total for n in snapshot.nodes],
                            [n.gpus_alloc for n in snapshot.nodes]),
        "cpus": node_totals("CPU", snapshot.nodes, [n.cpus_total for n in snapshot.nodes],
                            [n.cpus_alloc for n in snapshot.nodes]),
        "queue": snapshot.queue.model_dump(),
    }
    if snapshot.jobs is not None:
        reasons = Counter((job.pending_reason or "None") for job in snapshot.jobs if job.state == "PENDING")
        if reasons:
            payload["pending_reasons"] = {free_text(k, 60) or "None": v for k, v in reasons.most_common()}
    else:
        payload["jobs_note"] = "this source has no Slurm job list; queue holds counts only"
    if snapshot.partitions:
        payload["partitions"] = [
            without_none({"name": p.name, "state": p.state, "nodes": len(p.nodes), "gpus": p.total_gpus,
                          "max_time_min": p.max_time_minutes})
            for p in snapshot.partitions
        ]
    if snapshot.scheduler is not None:
        payload["scheduler"] = render_scheduler(snapshot.scheduler)

    def build(shown: int) -> dict[str, Any]:
        if shown == len(problems):
            return payload
        return {
            **payload,
            "nodes_by_state": {state: hostlist(names) for state, names in by_state.items()},
            "problem_nodes": problems[:shown],
            "truncated": f"node lists in Slurm hostlist form (node-[0-3] = node-0..node-3); showing "
            f"{shown} of {len(problems)} problem nodes; get_node_details(node_id) shows one node",
        }

    return fit_to_budget(build, len(problems))


def _job_sort_key(job: SlurmJob) -> tuple[Any, ...]:
    rank = _STATE_ORDER.get(job.state, len(_STATE_ORDER))
    newest = -(job.end_time or job.start_time or job.submit_time).timestamp()
    number = int(job.job_id) if job.job_id.isdigit() else 0
    return (rank, newest if rank == len(_STATE_ORDER) else number, job.job_id)


def render_job(job: SlurmJob, snapshot_time: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": job.job_id,
        "name": free_text(job.name),
        "user": job.user,
        "account": job.account,
        "partition": job.partition,
        "state": job.state,
        "reason": free_text(job.pending_reason or job.state_reason, 60),
        "nodes": hostlist(job.nodes) if len(job.nodes) > 4 else (job.nodes or None),
        "failed_node": job.failed_node,
        "gpus": job.gpus,
        "gpu_idx": job.gpu_indices or None,
        "submitted": iso(job.submit_time),
        "started": iso(job.start_time),
        "ended": iso(job.end_time),
        "exit_code": job.exit_code,
        "signal": job.exit_signal,
    }
    if job.state == "PENDING":
        entry["waiting_min"] = round((snapshot_time - job.submit_time).total_seconds() / 60)
    elif job.state == "RUNNING" and job.start_time is not None:
        entry["running_min"] = round((snapshot_time - job.start_time).total_seconds() / 60)
    return without_none(entry)


def render_slurm_jobs(
    snapshot: SlurmSnapshot,
    jobs: Sequence[SlurmJob],
    *,
    state: str | None = None,
    node: str | None = None,
    user: str | None = None,
) -> dict[str, Any]:
    """Jobs matching all given filters (state already normalised, node a Slurm node name).

    ``jobs`` is the snapshot's job list, passed separately because sources without one
    (``snapshot.jobs is None``) are answered by the caller before any filtering.
    """
    # the filters are the model's arguments, echoed: cleaned as cluster text, since a model that
    # read hostile text may pass it on
    filters = without_none({"state": free_text(state, 20), "node": free_text(node, 60), "user": free_text(user, 60)})
    matched = [
        job
        for job in jobs
        if (state is None or job.state == state)
        and (node is None or node in job.nodes)
        and (user is None or job.user.lower() == user.strip().lower())
    ]
    matched.sort(key=_job_sort_key)
    header: dict[str, Any] = {
        "time": iso(snapshot.timestamp),
        "filters": filters,
        "matched": len(matched),
        "by_state": dict(Counter(job.state for job in matched).most_common()),
    }
    if not matched and user is not None and not any(j.user.lower() == user.strip().lower() for j in jobs):
        users = sorted({job.user for job in jobs})
        header["note"] = f"no jobs of user '{free_text(user, 40)}'; users with jobs: {', '.join(users)}"
    rendered = [render_job(job, snapshot.timestamp) for job in matched]

    return fit_list(
        header,
        "jobs",
        rendered,
        lambda shown: f"showing {shown} of {len(rendered)} jobs (running, then pending, then "
        "the most recent others); narrow with state, node or user",
    )
