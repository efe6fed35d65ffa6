"""Jobs and scheduling (domain.md §7.12, §7.14): stragglers and hangs, idle allocations, jobs
pending while nodes sit drained or down, jobs waiting on Resources/Priority, QOS limits, and
jobs killed by a node failure (and the XID that caused it, when telemetry saw one).

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
from gpudoc.tools.diagnosis.rules import finding, gpu_subject, num, reading
from gpudoc.tools.diagnosis.xid import xid_meaning
from gpudoc.tools.models import GpuMetrics, SlurmJob, SlurmNode, XidEvent
from gpudoc.tools.sources.slurm_notation import expand_hostlist

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
#: squeue's "ReqNodeNotAvail, UnavailableNodes:node-[2-3]": the nodes a job waits for by name
UNAVAILABLE_NODES = re.compile(r"UnavailableNodes:(\S+)")
#: reasons that mean "waiting in line" rather than "blocked by a fault or a policy"
QUEUE_REASONS = ("Resources", "Priority")
#: NODE_FAIL jobs that ended within this window are evidence of a current node problem
NODE_FAIL_WINDOW = timedelta(hours=2)
#: an XID this long before a job's NODE_FAIL (or shortly after: clocks differ) caused it
XID_BEFORE_NODE_FAIL = timedelta(minutes=15)
XID_AFTER_NODE_FAIL = timedelta(minutes=1)


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
    findings.extend(_jobs_waiting(facts))
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
    if series is None or not series.samples or gpu.utilization_pct is None or gpu.utilization_pct > IDLE_UTIL_PCT:
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
        peer_median = median_or_none([p.utilization_pct for p in peers if p.utilization_pct is not None])
        if gpu.utilization_pct is None or peer_median is None or not _is_far_below(gpu.utilization_pct, peer_median):
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
            evidence.append(f"SM clock {num(gpu.sm_clock_mhz, 0)} MHz, temperature {reading(gpu.temperature_c, ' °C')}")
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
    ended = f" at {job.end_time:%H:%M:%S}Z" if job.end_time else ""
    blamed = f"; Slurm names {facts.node_id_for_slurm_name(job.failed_node)} as the failed node" if job.failed_node else ""
    evidence = [f"job {job.job_id} '{job.name}' of {job.user} ended NODE_FAIL{ended} on "
                f"{', '.join(nodes) or 'unknown nodes'}{blamed}"]
    xids = _xids_before(facts, job)
    if xids:
        first_node, first_gpu, first = xids[0]
        gap = (job.end_time - first.timestamp).total_seconds() if job.end_time else None
        before = f", {num(abs(gap) / 60, 1)} min {'before' if gap >= 0 else 'after'} the job ended" if gap is not None else ""
        evidence += [f"XID {event.xid} ({xid_meaning(event.xid)}) on {node} GPU {gpu} at {event.timestamp:%H:%M:%S}Z"
                     for node, gpu, event in xids[:4]]
        evidence[1] += before
        return [finding(
            "job.node_fail_after_xid", "warning", job.job_id,
            f"job {job.job_id} ended NODE_FAIL right after XID {first.xid} on {first_node} GPU {first_gpu}",
            evidence,
            f"the GPU fault (XID {first.xid}: {xid_meaning(first.xid)}) took {first_node} out from under the job",
            f"handle {first_node} GPU {first_gpu} per its XID finding; ask {job.user} to requeue job {job.job_id} "
            f"excluding {first_node} (sbatch --exclude={first_node})",
            nodes=nodes, gpus=sorted({gpu_subject(n, g) for n, g, _ in xids}), job_id=job.job_id,
        )]
    return [finding(
        "job.node_fail", "warning", job.job_id, f"job {job.job_id} ended NODE_FAIL", evidence,
        "a node of the job failed under it", "find the failed node's problem; requeue the job",
        nodes=nodes, job_id=job.job_id,
    )]


def _xids_before(facts: ClusterFacts, job: SlurmJob) -> list[tuple[str, int, XidEvent]]:
    """XIDs on the job's GPUs (its nodes' GPUs when Slurm no longer says which) shortly before
    it ended, earliest first. Application XIDs (13/31/43) kill a program, not a node: left out."""
    if job.end_time is None:
        return []
    wanted = {facts.node_id_for_slurm_name(n): set(i) for n, i in job.gpu_indices.items()}
    nodes = {facts.node_id_for_slurm_name(n) for n in job.nodes}
    found = []
    for node in facts.nodes:
        if node.node_id not in nodes:
            continue
        for gpu in node.gpus:
            if node.node_id in wanted and gpu.index not in wanted[node.node_id]:
                continue
            for event in gpu.xid_events or []:
                if event.xid in (13, 31, 43):
                    continue
                if job.end_time - XID_BEFORE_NODE_FAIL <= event.timestamp <= job.end_time + XID_AFTER_NODE_FAIL:
                    found.append((node.node_id, gpu.index, event))
    return sorted(found, key=lambda item: item[2].timestamp)


def _unavailable_nodes(facts: ClusterFacts) -> list[SlurmNode]:
    return [n for n in facts.slurm.nodes if n.is_drained or n.is_down or n.is_failing] if facts.slurm else []


def _named_unavailable(job: SlurmJob) -> list[str]:
    """The nodes squeue says a ReqNodeNotAvail job waits for, if it names them."""
    match = UNAVAILABLE_NODES.search(job.pending_reason or "")
    if match is None:
        return []
    try:
        return expand_hostlist(match.group(1).rstrip(","))
    except ValueError:
        return []


def _waits_for(job: SlurmJob, node: SlurmNode) -> bool:
    named = _named_unavailable(job)
    if named:
        return node.name in named
    return not node.partitions or job.partition in node.partitions


def _pending_on_unavailable(facts: ClusterFacts) -> list[Finding]:
    pending = [j for j in facts.jobs if j.state == "PENDING" and j.pending_reason
               and RESOURCE_REASONS.match(j.pending_reason)]
    if not pending:
        return []
    findings = []
    for node in _unavailable_nodes(facts):
        waiting = [j for j in pending if _waits_for(j, node)]
        if not waiting:
            continue
        node_id = facts.node_id_for_slurm_name(node.name)
        reasons = sorted({j.pending_reason.split(",")[0] for j in waiting if j.pending_reason})
        shown = ", ".join(j.job_id for j in waiting[:10]) + (f" (+{len(waiting) - 10} more)" if len(waiting) > 10 else "")
        why = f'; reason "{node.reason}"' if node.reason else ""
        by_name = [j.job_id for j in waiting if node.name in _named_unavailable(j)]
        gpus = "its GPUs (count not reported)" if node.gpus_total is None else f"{node.gpus_total} GPUs"
        evidence = [f"{node_id} {node.sinfo_state}: {gpus} closed to new jobs{why}",
                    f"pending: {shown}; {sum(j.gpus for j in waiting)} GPUs requested"]
        if by_name:
            evidence.append(f"jobs {', '.join(by_name[:10])} ask for {node.name} by name (ReqNodeNotAvail)")
        findings.append(finding(
            "sched.pending_on_unavailable_nodes", "warning", node_id,
            f"{len(waiting)} job(s) pending on {'/'.join(reasons)} while {node_id} is {node.sinfo_state}",
            evidence,
            "capacity is out of service while work waits for it",
            f"fix and resume {node_id} (scontrol update nodename={node.name} state=resume) if its "
            f"{'drain ' if node.is_drained else ''}reason no longer holds",
        ))
    return findings


def _jobs_waiting(facts: ClusterFacts) -> list[Finding]:
    """Jobs queued on Resources or Priority, per partition: how long, how much, and what holds
    the GPUs, so "why are jobs pending?" is answered with numbers even when nothing is broken."""
    groups: dict[tuple[str, str], list[SlurmJob]] = defaultdict(list)
    for job in facts.jobs:
        reason = (job.pending_reason or "").split(",")[0]
        if job.state == "PENDING" and reason in QUEUE_REASONS:
            groups[(job.partition, reason)].append(job)
    findings = []
    for (partition, reason), jobs in sorted(groups.items()):
        jobs.sort(key=lambda j: j.submit_time)
        longest = (facts.collected_at - jobs[0].submit_time).total_seconds() / 60
        evidence = [f"{len(jobs)} job(s) pending on {reason} in {partition}, longest {num(longest, 0)} min "
                    f"(job {jobs[0].job_id}); {sum(j.gpus for j in jobs)} GPUs requested",
                    _capacity(facts, partition)]
        if reason == "Resources":
            cause = "the GPUs these jobs ask for are held by running jobs (or out of service)"
            action = ("see what holds the GPUs (get_slurm_jobs state=RUNNING) and when it ends; resume "
                      "drained nodes; shorter time limits let backfill start small jobs sooner")
        else:
            cause = "jobs ahead in the queue (higher priority) get the GPUs first; these wait their turn"
            action = "nothing is broken; sprio shows the priority factors if the order looks wrong"
        findings.append(finding(
            "sched.jobs_waiting", "info", jobs[0].job_id,
            f"{len(jobs)} job(s) in {partition} waiting on {reason} for up to {num(longest, 0)} min",
            evidence, cause, action, nodes=[], job_id=jobs[0].job_id,
        ))
    return findings


def _capacity(facts: ClusterFacts, partition: str) -> str:
    """GPUs of a partition: total, allocated, free on nodes that take jobs, out of service."""
    nodes = [n for n in facts.slurm.nodes if not n.partitions or partition in n.partitions] if facts.slurm else []
    counted = [n for n in nodes if n.gpus_total is not None]
    if not counted:
        return f"{partition}: GPU counts not reported by this source"
    total = sum(n.gpus_total or 0 for n in counted)
    alloc = sum(n.gpus_alloc or 0 for n in counted)
    free = sum((n.gpus_total or 0) - (n.gpus_alloc or 0) for n in counted if n.accepts_jobs)
    out = [n for n in counted if not n.accepts_jobs]
    text = f"{partition}: {total} GPUs, {alloc} allocated, {free} free on nodes taking jobs"
    if out:
        text += (f"; {sum(n.gpus_total or 0 for n in out)} on nodes out of service ("
                 + ", ".join(f"{facts.node_id_for_slurm_name(n.name)} {n.sinfo_state}" for n in out[:6]) + ")")
    if len(counted) < len(nodes):
        text += f" (GPU counts of {len(nodes) - len(counted)} of its {len(nodes)} nodes not reported)"
    return text


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
