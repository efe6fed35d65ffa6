"""Jobs and scheduling (domain.md §7.12, §7.14): stragglers and hangs, idle allocations, jobs
pending while nodes sit drained, QOS limits, and jobs killed by a node failure.

Why utilisation relative to the job's own GPUs: a data-parallel job runs at the pace of its
slowest rank, so one GPU far below its peers (or at 0 % while they work) stalls them all, whereas
a cluster-wide utilisation threshold would flag every light job.
"""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import datetime, timedelta

from gpudoc.tools.diagnosis.facts import ClusterFacts, median_or_none
from gpudoc.tools.diagnosis.findings import Finding
from gpudoc.tools.diagnosis.rules import finding, gpu_subject, num
from gpudoc.tools.models import GpuMetrics, SlurmJob, SlurmNode

IDLE_UTIL_PCT = 1.0
#: a rank at 0 % this long while its peers work is hung
HANG_MINUTES = 10
#: an allocation idle this long is waste
IDLE_ALLOCATION_MINUTES = 30
#: a straggler runs at or below this fraction of its peers' median...
STRAGGLER_RATIO = 0.5
#: ...and at least this many points below it, while the peers are this busy
STRAGGLER_GAP_PCT = 30.0
BUSY_PEERS_PCT = 50.0
RECENT_WINDOW = timedelta(minutes=10)
RESOURCE_REASONS = re.compile(r"^(Resources|ReqNodeNotAvail|Nodes_required_for_job_are_DOWN)", re.IGNORECASE)
QOS_REASONS = re.compile(r"^(QOS|Assoc)", re.IGNORECASE)
#: NODE_FAIL jobs that ended within this window are evidence of a current node problem
NODE_FAIL_WINDOW = timedelta(hours=2)


def analyze_jobs(facts: ClusterFacts) -> list[Finding]:
    findings: list[Finding] = []
    for job in facts.jobs:
        if job.state == "RUNNING":
            gpus = _job_gpus(facts, job)
            findings.extend(_stragglers(facts, job, gpus))
            findings.extend(_idle_allocation(facts, job, gpus))
        elif job.state == "NODE_FAIL":
            findings.extend(_node_fail(facts, job))
    findings.extend(_pending_on_unavailable(facts))
    findings.extend(_qos_limits(facts))
    return findings


def _job_gpus(facts: ClusterFacts, job: SlurmJob) -> list[GpuMetrics]:
    """The job's live GPUs, from the exporter's job label or Slurm's GPU indices."""
    wanted = {(facts.node_id_for_slurm_name(name), index)
              for name, indices in job.gpu_indices.items() for index in indices}
    return [gpu for node in facts.nodes if node.reachable for gpu in node.gpus
            if not gpu.stale and (gpu.job_id == job.job_id or (gpu.node_id, gpu.index) in wanted)]


def _idle_minutes(facts: ClusterFacts, gpu: GpuMetrics) -> tuple[float, bool] | None:
    """How long the GPU has been at ~0 % up to now, and whether that covers the whole history window."""
    series = facts.series(gpu.node_id, gpu.index)
    if series is None or not series.samples or gpu.utilization_pct > IDLE_UTIL_PCT:
        return None
    oldest_idle: datetime | None = None
    for sample in reversed(series.samples):
        if sample.utilization_pct > IDLE_UTIL_PCT:
            break
        oldest_idle = sample.timestamp
    if oldest_idle is None:
        return None
    whole = oldest_idle == series.samples[0].timestamp
    return (facts.collected_at - oldest_idle).total_seconds() / 60, whole


def _recent_mean(facts: ClusterFacts, gpu: GpuMetrics) -> float | None:
    series = facts.series(gpu.node_id, gpu.index)
    if series is None:
        return None
    values = [s.utilization_pct for s in series.samples if facts.collected_at - s.timestamp <= RECENT_WINDOW]
    return sum(values) / len(values) if values else None


def _is_far_below(value: float, peer_median: float) -> bool:
    return (peer_median >= BUSY_PEERS_PCT and value <= STRAGGLER_RATIO * peer_median
            and peer_median - value >= STRAGGLER_GAP_PCT)


def _stragglers(facts: ClusterFacts, job: SlurmJob, gpus: list[GpuMetrics]) -> list[Finding]:
    if len(gpus) < 2:
        return []
    flagged: list[tuple[GpuMetrics, list[str]]] = []
    for gpu in gpus:
        peers = [p for p in gpus if p is not gpu]
        peer_median = median_or_none([p.utilization_pct for p in peers])
        if peer_median is None or not _is_far_below(gpu.utilization_pct, peer_median):
            continue
        evidence = [f"utilization {num(gpu.utilization_pct, 0)}% vs median {num(peer_median, 0)}% "
                    f"of the job's other {len(peers)} GPUs"]
        own_recent = _recent_mean(facts, gpu)
        peers_recent = median_or_none([m for p in peers if (m := _recent_mean(facts, p)) is not None])
        if own_recent is not None and peers_recent is not None:
            if not _is_far_below(own_recent, peers_recent):
                continue  # a momentary dip, not a straggler
            evidence.append(f"last 10 min mean {num(own_recent, 0)}% vs peers {num(peers_recent, 0)}%")
        idle = _idle_minutes(facts, gpu)
        if idle and idle[0] >= HANG_MINUTES:
            evidence.append(f"at 0% for {'at least ' if idle[1] else ''}{num(idle[0], 0)} min: the rank looks hung")
        if gpu.sm_clock_mhz is not None:
            evidence.append(f"SM clock {num(gpu.sm_clock_mhz, 0)} MHz, temperature {num(gpu.temperature_c)} °C")
        flagged.append((gpu, evidence))
    if not flagged or len(flagged) * 2 >= len(gpus):
        return []  # most of the job is slow: that is the job, not one straggler
    return [
        finding(
            "job.straggler", "warning", gpu_subject(gpu.node_id, gpu.index),
            f"straggler in job {job.job_id}: GPU far below its peers", evidence,
            "one rank is stalled or slowed (hung process, data loader, a throttled or faulty GPU)",
            f"look at the rank on {gpu.node_id} GPU {gpu.index} (py-spy/stack dump, dmesg, nvidia-smi); "
            f"ask {job.user} to restart the job excluding the node if the GPU is at fault",
            job_id=job.job_id,
        )
        for gpu, evidence in flagged
    ]


def _idle_allocation(facts: ClusterFacts, job: SlurmJob, gpus: list[GpuMetrics]) -> list[Finding]:
    if not gpus or job.start_time is None:
        return []
    running_minutes = (facts.collected_at - job.start_time).total_seconds() / 60
    idles = [_idle_minutes(facts, gpu) for gpu in gpus]
    if any(i is None for i in idles):
        return []
    shortest = min(i[0] for i in idles)  # type: ignore[index]
    idle_for = min(shortest, running_minutes)
    if idle_for < IDLE_ALLOCATION_MINUTES:
        return []
    whole_window = all(i[1] for i in idles) and running_minutes > shortest  # type: ignore[index]
    placement = "; ".join(f"{node} GPU {','.join(str(g.index) for g in group)}"
                          for node, group in _by_node(gpus).items())
    nodes = list(_by_node(gpus))
    return [finding(
        "job.gpus_idle", "warning", job.job_id,
        f"job {job.job_id} holds {len(gpus)} GPU(s) idle for {'at least ' if whole_window else ''}{num(idle_for, 0)} min",
        [f"{len(gpus)} GPU(s) at <=1% utilization for {'at least ' if whole_window else ''}{num(idle_for, 0)} min ({placement})",
         f"job {job.job_id} '{job.name}' of {job.user} in {job.partition}, running {num(running_minutes, 0)} min"],
        "the job is hung, waiting on something else, or does not use its GPUs (wasted allocation)",
        f"ask {job.user} whether job {job.job_id} is progressing; cancel or requeue it if it is stuck",
        nodes=nodes, gpus=[gpu_subject(g.node_id, g.index) for g in gpus], job_id=job.job_id,
    )]


def _by_node(gpus: list[GpuMetrics]) -> dict[str, list[GpuMetrics]]:
    grouped: dict[str, list[GpuMetrics]] = defaultdict(list)
    for gpu in gpus:
        grouped[gpu.node_id].append(gpu)
    return dict(grouped)


def _node_fail(facts: ClusterFacts, job: SlurmJob) -> list[Finding]:
    if job.end_time is not None and facts.collected_at - job.end_time > NODE_FAIL_WINDOW:
        return []
    nodes = [facts.node_id_for_slurm_name(n) for n in job.nodes]
    ended = f" at {job.end_time:%H:%M}Z" if job.end_time else ""
    return [finding(
        "job.node_fail", "warning", job.job_id, f"job {job.job_id} ended NODE_FAIL",
        [f"job {job.job_id} of {job.user} ended NODE_FAIL{ended} on {', '.join(nodes) or 'unknown nodes'}"],
        "a node of the job failed under it", "find the failed node's problem; requeue the job",
        nodes=nodes, job_id=job.job_id,
    )]


def _unavailable_nodes(facts: ClusterFacts) -> list[SlurmNode]:
    return [n for n in facts.slurm.nodes if n.is_drained or n.is_down] if facts.slurm else []


def _pending_on_unavailable(facts: ClusterFacts) -> list[Finding]:
    pending = [j for j in facts.jobs if j.state == "PENDING" and j.pending_reason
               and RESOURCE_REASONS.match(j.pending_reason)]
    if not pending:
        return []
    findings = []
    for node in _unavailable_nodes(facts):
        waiting = [j for j in pending if not node.partitions or j.partition in node.partitions]
        if not waiting:
            continue
        node_id = facts.node_id_for_slurm_name(node.name)
        reasons = sorted({j.pending_reason.split(",")[0] for j in waiting if j.pending_reason})
        shown = ", ".join(j.job_id for j in waiting[:10]) + (f" (+{len(waiting) - 10} more)" if len(waiting) > 10 else "")
        findings.append(finding(
            "sched.pending_on_unavailable_nodes", "warning", node_id,
            f"{len(waiting)} job(s) pending on {'/'.join(reasons)} while {node_id} is {node.sinfo_state}",
            [f"{node_id} {node.sinfo_state}: {node.gpus_total} GPUs closed to new jobs",
             f"pending: {shown}; {sum(j.gpus for j in waiting)} GPUs requested"],
            "capacity is out of service while work waits for it",
            f"fix and resume {node_id} (scontrol update nodename={node.name} state=resume) if its drain reason no longer holds",
        ))
    return findings


def _qos_limits(facts: ClusterFacts) -> list[Finding]:
    groups: dict[tuple[str, str], list[SlurmJob]] = defaultdict(list)
    for job in facts.jobs:
        if job.state == "PENDING" and job.pending_reason and QOS_REASONS.match(job.pending_reason):
            groups[(job.pending_reason, job.user)].append(job)
    return [
        finding(
            "sched.qos_limit", "info", jobs[0].job_id,
            f"{len(jobs)} job(s) of {user} held by a QOS/association limit ({reason})",
            [f"jobs {', '.join(j.job_id for j in jobs)} pending on {reason}; {sum(j.gpus for j in jobs)} GPUs requested"],
            "a policy limit on the user's or account's GPUs, not a fault",
            "nothing to fix unless the limit is wrong (sacctmgr show qos / assoc)",
            nodes=[], job_id=jobs[0].job_id,
        )
        for (reason, user), jobs in sorted(groups.items())
    ]
