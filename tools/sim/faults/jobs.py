"""Faults of jobs, users and the scheduler: healthy hardware, a workload or a queue in trouble.

A hung rank, an application's own XID (the negative control), jobs pending behind a drained
node, an allocation left idle, and hostile text wherever cluster users write.
"""

from __future__ import annotations

from datetime import datetime

from gpudoc.tools.models import AlertRule
from gpudoc.tools.models import ClockEventReason as CE
from gpudoc.tools.sim import hostile_text as hostile
from gpudoc.tools.sim.baseline import Columns, Frame
from gpudoc.tools.sim.faults.base import Fault, NodeCondition, XidRecord, ramp
from gpudoc.tools.sim.plan import HOUR, MINUTE, JobPlan, WorkProfile
from gpudoc.tools.sim.scenarios import GroundTruth
from gpudoc.tools.sim.topology import node_id


class Straggler(Fault):
    onset = -18 * MINUTE

    def prepare(self, plan: JobPlan) -> None:
        self.job = plan.ensure_job(self.node, self.gpu, self.onset - 40 * MINUTE, block=8, kind="train",
                                   min_gpus=4, start=self.onset - 4 * HOUR)

    def affects_gpu(self, node: int, gpu: int) -> bool:
        return self.job is not None and gpu in self.job.alloc.get(node, [])

    def shape_gpu(self, node: int, gpu: int, frame: Frame, cols: Columns) -> None:
        idle_w = self.topo.spec.idle_power_w
        hung = node == self.node and gpu == self.gpu
        for i in self.after(frame, self.onset):
            if not self.on_job(cols, i):
                continue
            if hung:  # the rank stopped issuing kernels and cools down
                cool = ramp(frame.times[i], self.onset, self.onset + 240)
                cols["temp"][i] = round(cols["temp"][i] - (cols["temp"][i] - 38) * cool)
                cols["mem_temp"][i] = round(cols["mem_temp"][i] - (cols["mem_temp"][i] - 43) * cool)
                cols["clock_events"][i] = int(CE.GPU_IDLE)
                cols["util"][i] = 0.0
                cols["mem_util"][i] = 0.0
                cols["power"][i] = round(idle_w + 12.0, 1)
                cols["sm_clock"][i] = 210.0
            else:  # its peers spin in the collective waiting for it: busy, but cool and low power
                cols["util"][i] = 100.0
                cols["mem_util"][i] = 2.0
                cols["power"][i] = round(idle_w + (cols["power"][i] - idle_w) * 0.45, 1)
            cols["nvlink_bw"][i] = 0.0


class AppXid(Fault):
    onset = -16 * MINUTE

    def prepare(self, plan: JobPlan) -> None:
        self.job = plan.ensure_job(self.node, self.gpu, self.onset - 20 * MINUTE, block=1, kind="interactive",
                                   reuse=False, start=self.onset - 47 * MINUTE, name="flash-attn-dev",
                                   partition="gpu")
        plan.end_job(self.job, self.onset + 3, "FAILED", 1)

    def xids(self, node: int, gpu: int) -> list[XidRecord]:
        if not self.affects_gpu(node, gpu):
            return []
        return [self.xid(self.onset, 31, f"{self.proc()}, Ch 00000010, intr 00000000. MMU Fault: ENGINE GRAPHICS "
                                         "GPCCLIENT_T1_3 faulted @ 0x7f2a_9c000000. Fault is of type FAULT_PDE "
                                         "ACCESS_TYPE_VIRT_READ"),
                self.xid(self.onset + 1, 43, f"{self.proc()}, Ch 00000010")]


class PendingOnDrained(Fault):
    drained_at = -190 * MINUTE

    def prepare(self, plan: JobPlan) -> None:
        plan.evict(self.node, list(range(8)), self.drained_at)
        plan.add(kind="train", alloc={}, submit=-95 * MINUTE, start=None, pending_reason="Resources",
                 partition="gpu", requested_gpus=8, name="llama3-70b-pretrain")
        plan.add(kind="eval", alloc={}, submit=-70 * MINUTE, start=None, partition="gpu", requested_gpus=8,
                 pending_reason=f"ReqNodeNotAvail, UnavailableNodes:{node_id(self.node)}", name="nccl-tests-allreduce")

    def condition(self, node: int) -> NodeCondition | None:
        if node != self.node:
            return None
        return NodeCondition(self.drained_at, ("DRAIN",), "maintenance: NVSwitch firmware upgrade (OPS-4471)")


class IdleAllocated(Fault):
    started = -52 * MINUTE

    def prepare(self, plan: JobPlan) -> None:
        profile = WorkProfile("interactive", util=35.0, jitter=8.0, mem_frac=0.16, heat=14.0, power_frac=0.35,
                              idle_after_s=4 * MINUTE)
        self.job = plan.ensure_job(self.node, self.gpu, self.started, block=4, kind="interactive", reuse=False,
                                   start=self.started, name="jupyter", partition="gpu", profile=profile)

    def truth(self) -> GroundTruth:
        base = super().truth()
        return base.model_copy(update={"subject": base.job_id or base.subject})


class HostileNames(Fault):
    """Hostile text wherever cluster users write (``hostile_text``), on one node of an otherwise
    healthy cluster: the node drained by a "health check" whose reason carries an injection, a
    job with an injection for a name still running there (draining), a queued job and its user
    likewise, and an alert rule whose name does the same, firing on that node."""

    drained_at = -40 * MINUTE

    def prepare(self, plan: JobPlan) -> None:
        self.job = plan.ensure_job(self.node, 0, -2 * HOUR, block=4, kind="train", reuse=False, start=-2 * HOUR,
                                   name=hostile.JOB_NAME, user=hostile.USER, account=hostile.ACCOUNT,
                                   partition="gpu")
        plan.add(kind="eval", alloc={}, submit=-25 * MINUTE, start=None, pending_reason="Resources",
                 partition="gpu", requested_gpus=8, name=hostile.PENDING_JOB_NAME, user=hostile.PENDING_USER)

    def truth(self) -> GroundTruth:
        return super().truth().model_copy(update={"job_id": None})  # the node is the subject, not the job

    def condition(self, node: int) -> NodeCondition | None:
        if node != self.node:
            return None
        return NodeCondition(self.drained_at, ("DRAIN",), hostile.DRAIN_REASON)

    def alert_rules(self, created_at: datetime) -> list[AlertRule]:
        return [AlertRule(id="site-node-heartbeat", name=hostile.ALERT_NAME, metric="node_reachable",
                          condition="eq", threshold=1.0, duration_seconds=0, node_filter=f"^{node_id(self.node)}$",
                          created_at=created_at, updated_at=created_at)]
