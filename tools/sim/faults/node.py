"""Node and network faults: a host that stops answering, an InfiniBand port that flaps.

They act on node-level columns and on Slurm's view of the node, not on one GPU.
"""

from __future__ import annotations

from gpudoc.tools.sim.baseline import Columns, Frame
from gpudoc.tools.sim.faults.base import Fault, NodeCondition
from gpudoc.tools.sim.plan import HOUR, MINUTE, JobPlan


class HostDown(Fault):
    onset = -12 * MINUTE
    slurmd_timeout = 300.0

    def prepare(self, plan: JobPlan) -> None:
        for job in plan.jobs_on(self.node, self.onset):
            plan.end_job(job, self.onset + self.slurmd_timeout, "NODE_FAIL", None)

    def down_since(self, node: int) -> float | None:
        return self.onset if node == self.node else None

    def condition(self, node: int) -> NodeCondition | None:
        if node != self.node:
            return None
        return NodeCondition(self.onset + self.slurmd_timeout, ("NOT_RESPONDING",), "Not responding", base="DOWN")

    def shape_node(self, node: int, frame: Frame, cols: Columns) -> None:
        for i in self.after(frame, self.onset):
            cols["reachable"][i] = False


class IbFlap(Fault):
    onset = -24 * MINUTE
    port = 1
    cycle = 120.0
    nccl_timeout = 10 * MINUTE

    def prepare(self, plan: JobPlan) -> None:
        self.job = plan.ensure_multinode(self.node, self.onset - HOUR, start=self.onset - 5 * HOUR)
        plan.end_job(self.job, self.onset + self.nccl_timeout, "FAILED", 134)  # SIGABRT from the NCCL watchdog

    def shape_node(self, node: int, frame: Frame, cols: Columns) -> None:
        state, downed = cols[f"ib_state_{self.port}"], cols[f"ib_downed_{self.port}"]
        for i in self.after(frame, self.onset):
            phase = (frame.times[i] - self.onset) % self.cycle
            state[i] = 1 if phase < 30 else (2 if phase < 40 else 4)
            downed[i] = 1 + int((frame.times[i] - self.onset) // self.cycle)
