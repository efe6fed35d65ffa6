"""The scheduler's view of the simulated cluster at a moment: nodes, jobs, partitions, queue.

Why derived from the job plan: node states, ``gres_used`` and the queue must agree with which
GPUs the telemetry shows busy, so all of them read the same plan at the same time.

Checked against what real Slurm reports (``tests/fixtures/slurm/v0.0.38``, recorded from
slurmctld 22.05): ``gres_used`` reads ``gpu:a100:2(IDX:0-1)`` and ``gpu:a100:0(IDX:N/A)`` when
idle; a drained node keeps its base state (``["MIXED", "DRAIN"]`` while a job still runs); a
dead slurmd gives ``["DOWN", "NOT_RESPONDING"]`` with "Not responding" set by Slurm's own user;
ended jobs carry Slurm's reason for the end (``NodeDown``, ``NonZeroExitCode``, ``TimeLimit``),
a return code or the signal that ended them, and no GPU indices any more.
"""

from __future__ import annotations

from datetime import datetime
from typing import Callable

from gpudoc.tools.models import QueueCounts, SlurmJob, SlurmNode, SlurmPartition, SlurmSnapshot
from gpudoc.tools.sim.faults import Fault, NodeCondition
from gpudoc.tools.sim.plan import JobPlan, PlannedJob
from gpudoc.tools.sim.topology import PARTITION_MAX_MINUTES, Topology, node_id

_MEM_PER_GPU_MB = 120_000
_FAILED = {"FAILED", "NODE_FAIL", "TIMEOUT", "OUT_OF_MEMORY"}
#: SlurmUser on a real cluster: who "sets" the reasons slurmctld writes itself
SLURM_USER = "slurm"
#: reasons slurmctld writes itself (domain.md §4); the rest come from admins or health checks (root)
_SLURM_WRITTEN = ("Not responding", "Kill task failed", "gres/gpu count too low", "Node unexpectedly rebooted",
                  "Prolog error", "Epilog error")
#: Slurm's reason for how a job ended (job_state_reason_string)
_END_REASON = {"FAILED": "NonZeroExitCode", "TIMEOUT": "TimeLimit", "NODE_FAIL": "NodeDown",
               "OUT_OF_MEMORY": "OutOfMemory"}
#: jobs ended by Slurm's SIGTERM (scancel, time limit) report that signal, not a return code
_SIGNALLED = {"CANCELLED": 15, "TIMEOUT": 15}
_ACCOUNTS = {"akumar": "nlp", "jchen": "vision", "mgarcia": "nlp", "spatel": "speech", "lnguyen": "bio",
             "rsmith": "vision", "okim": "platform", "tbrown": "bio"}


def index_ranges(indices: list[int]) -> str:
    """``[0, 1, 2, 5]`` -> ``"0-2,5"``, as Slurm prints GPU indices."""
    parts: list[str] = []
    for i in sorted(indices):
        if parts and i == int(parts[-1].split("-")[-1]) + 1:
            parts[-1] = f"{parts[-1].split('-')[0]}-{i}"
        else:
            parts.append(str(i))
    return ",".join(parts)


class SlurmView:
    """Builds ``SlurmSnapshot``s from the plan and the faults' node conditions."""

    def __init__(self, topo: Topology, plan: JobPlan, faults: list[Fault], at_rel: Callable[[float], datetime]):
        self.topo, self.plan, self.faults, self.at_rel = topo, plan, faults, at_rel

    def conditions(self, node: int, t: float) -> list[NodeCondition]:
        return [c for f in self.faults if (c := f.condition(node)) is not None and c.since <= t]

    def node(self, node: int, t: float) -> SlurmNode:
        topo = self.topo
        gpus: list[int] = []
        cpus = mem = 0
        for job in self.plan.jobs_on(node, t):
            held = job.alloc[node]
            gpus.extend(held)
            cpus += len(held) * (topo.cpus_per_node // topo.gpus_per_node)
            mem += len(held) * _MEM_PER_GPU_MB
        base = "IDLE" if not gpus else ("ALLOCATED" if len(gpus) >= topo.gpus_per_node else "MIXED")
        flags: list[str] = []
        reason, reason_at = None, None
        for cond in self.conditions(node, t):
            base = cond.base or base
            flags.extend(f for f in cond.flags if f not in flags)
            reason, reason_at = cond.reason, self.at_rel(cond.since)
        by = None if reason is None else (SLURM_USER if reason.startswith(_SLURM_WRITTEN) else "root")
        return SlurmNode(
            name=node_id(node), state=[base, *flags], reason=reason, reason_set_at=reason_at, reason_set_by=by,
            cpus_total=topo.cpus_per_node, cpus_alloc=cpus, memory_total_mb=topo.memory_per_node_mb,
            memory_alloc_mb=mem, gpus_total=topo.gpus_per_node, gpus_alloc=len(gpus),
            gres=f"gpu:{topo.gres_name}:{topo.gpus_per_node}(S:0-1)",
            gres_used=f"gpu:{topo.gres_name}:{len(gpus)}(IDX:{index_ranges(gpus) if gpus else 'N/A'})",
            gpu_indices_used=sorted(gpus) if gpus else None,
            partitions=topo.node_partitions(node),
        )

    def job(self, job: PlannedJob, t: float) -> SlurmJob:
        state = job.state_at(t)
        ended = state not in ("PENDING", "RUNNING")
        running = state == "RUNNING"
        exit_code = job.exit_code if job.exit_code is not None else (1 if state == "FAILED" else None)
        per_node = {len(g) for g in job.alloc.values()}
        return SlurmJob(
            job_id=job.job_id, name=job.name, user=job.user, account=_ACCOUNTS.get(job.user), partition=job.partition,
            state=state,  # type: ignore[arg-type]
            pending_reason=job.pending_reason if state == "PENDING" else None,
            state_reason=_END_REASON.get(state) if ended else None,
            nodes=[node_id(n) for n in sorted(job.alloc)] if state != "PENDING" else [],
            gpus=job.gpus, gpus_per_node=per_node.pop() if len(per_node) == 1 else min(job.gpus, 8) or None,
            # Slurm clears an ended job's GPU indices (gres_detail); only running jobs name them
            gpu_indices={node_id(n): list(g) for n, g in sorted(job.alloc.items())} if running else {},
            submit_time=self.at_rel(job.submit), start_time=self.at_rel(job.start) if state != "PENDING" and job.start is not None else None,
            end_time=self.at_rel(job.end) if ended and job.end is not None else None,
            time_limit_minutes=PARTITION_MAX_MINUTES[job.partition],
            exit_code=None if not ended or state in _SIGNALLED else exit_code,
            exit_signal=_SIGNALLED.get(state) if ended else None,
        )

    def queue(self, t: float) -> QueueCounts:
        """The queue counts at ``t`` (jobs submitted by then), without building the job list."""
        states = [j.state_at(t) for j in self.plan.jobs if j.submit <= t]
        return QueueCounts(
            pending=states.count("PENDING"), running=states.count("RUNNING"), completed=states.count("COMPLETED"),
            failed=sum(state in _FAILED for state in states), cancelled=states.count("CANCELLED"),
        )

    def alert_readings(self, t: float) -> dict[str, float]:
        """GPU Watchdog's whole-cluster alert metrics at ``t``."""
        queue = self.queue(t)
        return {
            "slurm_cpus_alloc": float(sum(self.node(n, t).cpus_alloc for n in range(self.topo.nodes))),
            "slurm_queue_pending": float(queue.pending),
            "slurm_queue_running": float(queue.running),
        }

    def snapshot(self, t: float, now: datetime) -> SlurmSnapshot:
        jobs = [self.job(j, t) for j in sorted(self.plan.jobs, key=lambda j: int(j.job_id)) if j.submit <= t]
        queue = self.queue(t)
        partitions = [
            SlurmPartition(name=name, nodes=[node_id(n) for n in members], total_gpus=len(members) * self.topo.gpus_per_node,
                           max_time_minutes=PARTITION_MAX_MINUTES[name])
            for name, members in self.topo.partitions().items()
        ]
        return SlurmSnapshot(nodes=[self.node(n, t) for n in range(self.topo.nodes)], jobs=jobs,
                             partitions=partitions, queue=queue, timestamp=now)
