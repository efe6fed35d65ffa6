"""The injected faults: how each scenario bends the job plan, the signals and the Slurm state.

Each fault is an onset some minutes before "now" (times are seconds relative to the anchor) and
the signals domain.md §7 lists, developing from there: a temperature ramp, a counter climbing,
a series going stale, an XID with its kernel-log line, the job failing, the node drained.
Faults only touch their own GPU/node, so several can coexist; when two faults land on the same
GPU they share its job.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from gpudoc.tools.models import AlertRule
from gpudoc.tools.models import ClockEventReason as CE
from gpudoc.tools.sim import hostile_text as hostile
from gpudoc.tools.sim.baseline import Columns, Frame
from gpudoc.tools.sim.noise import Noise, series_key
from gpudoc.tools.sim.plan import HOUR, MINUTE, JobPlan, PlannedJob, WorkProfile
from gpudoc.tools.sim.scenarios import SCENARIOS, GroundTruth, ScenarioPlacement
from gpudoc.tools.sim.topology import Topology, node_id


@dataclass(frozen=True)
class XidRecord:
    t: float
    xid: int
    message: str
    job: PlannedJob | None


@dataclass(frozen=True)
class NodeCondition:
    """A Slurm flag set on a node from ``since`` on (``base`` overrides the computed base state)."""

    since: float
    flags: tuple[str, ...]
    reason: str
    base: str | None = None


def ramp(t: float, start: float, end: float) -> float:
    """0 before ``start``, 1 after ``end``, linear between."""
    if t <= start:
        return 0.0
    return 1.0 if t >= end else (t - start) / (end - start)


class Fault:
    """A scenario placed on the cluster. Subclasses override only what their fault changes."""

    onset: float = -20 * MINUTE

    def __init__(self, placement: ScenarioPlacement, topo: Topology, noise: Noise):
        self.placement, self.topo, self.noise = placement, topo, noise
        self.name = placement.name
        self.node = placement.node if placement.node is not None else -1
        self.gpu = placement.gpu if placement.gpu is not None else -1
        self.job: PlannedJob | None = None

    # --- lifecycle ------------------------------------------------------------------------
    def prepare(self, plan: JobPlan) -> None:
        """Bend the job plan (make sure a job runs where the fault needs one, fail it, ...)."""

    def truth(self) -> GroundTruth:
        spec = SCENARIOS[self.name]
        return GroundTruth(scenario=self.name, subject=self.placement.subject or "cluster",
                           severity=spec.severity, hardware=spec.hardware,
                           job_id=self.job.job_id if self.job else None)

    # --- signals ---------------------------------------------------------------------------
    def affects_gpu(self, node: int, gpu: int) -> bool:
        return node == self.node and gpu == self.gpu

    def shape_gpu(self, node: int, gpu: int, frame: Frame, cols: Columns) -> None:
        """Change the columns of an affected GPU in place."""

    def shape_node(self, node: int, frame: Frame, cols: Columns) -> None:
        """Change the node-level columns in place (only called for ``self.node``)."""

    def xids(self, node: int, gpu: int) -> list[XidRecord]:
        return []

    def stale_since(self, node: int, gpu: int) -> float | None:
        return None

    def down_since(self, node: int) -> float | None:
        return None

    def condition(self, node: int) -> NodeCondition | None:
        return None

    def alert_rules(self, created_at: datetime) -> list[AlertRule]:
        """Rules an operator (or anyone who may create rules) added for this fault's place."""
        return []

    # --- helpers ----------------------------------------------------------------------------
    def xid(self, t: float, xid: int, text: str) -> XidRecord:
        return XidRecord(t, xid, f"NVRM: Xid (PCI:{self.topo.kernel_pci(self.gpu)}): {xid}, {text}", self.job)

    def proc(self) -> str:
        pid = 20000 + (self.job.key * 7919 if self.job else 0) % 40000
        return f"pid={pid}, name=python"

    def busy_job(self, plan: JobPlan, *, min_gpus: int = 1, lead: float = 30 * MINUTE) -> PlannedJob:
        """A training job running on the faulty GPU since well before the onset."""
        return plan.ensure_job(self.node, self.gpu, self.onset - lead, block=8, kind="train",
                               min_gpus=min_gpus, start=self.onset - 3 * HOUR)

    def after(self, frame: Frame, t: float) -> range:
        return range(frame.index_from(t), len(frame.times))

    def on_job(self, cols: Columns, i: int) -> bool:
        return self.job is not None and cols["job_id"][i] == self.job.job_id


class FellOffBus(Fault):
    onset = -26 * MINUTE

    def prepare(self, plan: JobPlan) -> None:
        self.job = self.busy_job(plan)
        for job in plan.jobs_on(self.node, self.onset):
            plan.end_job(job, self.onset + 20, "NODE_FAIL", None)

    def xids(self, node: int, gpu: int) -> list[XidRecord]:
        return [self.xid(self.onset, 79, "GPU has fallen off the bus.")] if self.affects_gpu(node, gpu) else []

    def stale_since(self, node: int, gpu: int) -> float | None:
        return self.onset if self.affects_gpu(node, gpu) else None

    def condition(self, node: int) -> NodeCondition | None:
        if node != self.node:
            return None
        return NodeCondition(self.onset + 30, ("DRAIN",), "gres/gpu count too low (7 < 8)")


class HbmUncorrectable(Fault):
    onset = -18 * MINUTE

    def prepare(self, plan: JobPlan) -> None:
        self.job = self.busy_job(plan)
        plan.end_job(self.job, self.onset + 5, "FAILED", 1)

    def xids(self, node: int, gpu: int) -> list[XidRecord]:
        if not self.affects_gpu(node, gpu):
            return []
        return [self.xid(self.onset, 48, f"{self.proc()}, An uncorrectable double bit error (DBE) has been "
                                         "detected on GPU in the framebuffer at partition 6, subpartition 0."),
                self.xid(self.onset + 1, 95, f"{self.proc()}, Uncontained: FBHUB. RST: Yes, D-RST: No")]

    def shape_gpu(self, node: int, gpu: int, frame: Frame, cols: Columns) -> None:
        for i in self.after(frame, self.onset):
            cols["uncorr_rows"][i] = 1
            cols["remap_pending"][i] = True
            cols["ecc_dbe"][i] = 1
            cols["ecc_sbe"][i] = 3


class RowRemapFailure(Fault):
    onset = -33 * MINUTE
    first_error = -41 * MINUTE

    def prepare(self, plan: JobPlan) -> None:
        self.job = self.busy_job(plan, lead=40 * MINUTE)
        plan.end_job(self.job, self.onset + 5, "FAILED", 1)

    def xids(self, node: int, gpu: int) -> list[XidRecord]:
        if not self.affects_gpu(node, gpu):
            return []
        return [self.xid(self.first_error, 63, "Row Remapper: New row (0x00000000004a1f80) marked for remapping, "
                                               "reset gpu to activate."),
                self.xid(self.onset, 64, "Row Remapper Error: remapping failed for row 0x00000000004a1fa0; "
                                         "the bank has no spare rows left, reset the GPU and run field diagnostics.")]

    def shape_gpu(self, node: int, gpu: int, frame: Frame, cols: Columns) -> None:
        for i in self.after(frame, self.first_error):
            cols["uncorr_rows"][i] = 1 if frame.times[i] < self.onset else 2
            cols["remap_pending"][i] = True
            cols["remap_failure"][i] = frame.times[i] >= self.onset
            cols["ecc_dbe"][i] = 1 if frame.times[i] < self.onset else 2

    def condition(self, node: int) -> NodeCondition | None:
        if node != self.node:
            return None
        return NodeCondition(self.onset + 60, ("DRAIN",), f"nhc: gpu {self.gpu} row remap failure (XID 64)")


class CorrectableStorm(Fault):
    onset = -38 * MINUTE
    row_every = 210.0

    def prepare(self, plan: JobPlan) -> None:
        self.job = self.busy_job(plan)

    def _rows(self, t: float) -> int:
        return 0 if t < self.onset else min(12, 1 + int((t - self.onset) // self.row_every))

    def xids(self, node: int, gpu: int) -> list[XidRecord]:
        if not self.affects_gpu(node, gpu):
            return []
        records = [self.xid(self.onset + 60, 92, "High single-bit ECC error rate")]
        for row in range(12):
            t = self.onset + row * self.row_every
            if t > 0:
                break
            records.append(self.xid(t + 1, 63, f"Row Remapper: New row (0x0000000000{0x31a40 + row * 0x40:06x}) "
                                                "marked for remapping, reset gpu to activate."))
        return sorted(records, key=lambda r: r.t)

    def shape_gpu(self, node: int, gpu: int, frame: Frame, cols: Columns) -> None:
        for i in self.after(frame, self.onset):
            t = frame.times[i]
            cols["corr_rows"][i] = self._rows(t)
            cols["remap_pending"][i] = True
            minutes = (t - self.onset) / 60.0
            cols["ecc_sbe"][i] = int(41 * minutes + 8 * math.sin(2.3 * minutes))  # uneven but never decreasing


class NvlinkDegraded(Fault):
    onset = -21 * MINUTE

    def prepare(self, plan: JobPlan) -> None:
        self.job = self.busy_job(plan, min_gpus=2)

    def affects_gpu(self, node: int, gpu: int) -> bool:
        return self.job is not None and gpu in self.job.alloc.get(node, [])

    def xids(self, node: int, gpu: int) -> list[XidRecord]:
        if node != self.node or gpu != self.gpu:
            return []
        text = f"{self.proc()}, NVLink: fatal error detected on link 5(0x0, 0x0, 0x10000, 0x0, 0x0, 0x0, 0x0)"
        return [self.xid(self.onset, 74, text), self.xid(self.onset + 7 * MINUTE, 74, text)]

    def shape_gpu(self, node: int, gpu: int, frame: Frame, cols: Columns) -> None:
        idle_w = self.topo.spec.idle_power_w
        for i in self.after(frame, self.onset):
            if not self.on_job(cols, i):
                continue
            cols["util"][i] = round(cols["util"][i] * 0.55, 1)
            cols["power"][i] = round(idle_w + (cols["power"][i] - idle_w) * 0.6, 1)
            cols["nvlink_bw"][i] = round(cols["nvlink_bw"][i] * 0.2, 1)
            if node == self.node and gpu == self.gpu:
                minutes = (frame.times[i] - self.onset) / 60.0
                total = int(120 * minutes + 6 * minutes * minutes)
                # DCGM counts the kinds apart: mostly flow-control CRC, then data CRC and replays;
                # a recovery is the link retraining after it went down (about every 3 minutes)
                recovery = 1 + int(minutes / 3)
                flit, data = int(total * 0.6), int(total * 0.25)
                cols["nvlink_crc_flit"][i], cols["nvlink_crc_data"][i] = flit, data
                cols["nvlink_recovery"][i] = min(recovery, total - flit - data)
                cols["nvlink_replay"][i] = total - flit - data - cols["nvlink_recovery"][i]
                cols["nvlink_errors"][i] = total
                cols["nvlink_down"][i] = 2
                cols["nvlink_bw"][i] = 0.0


class ThermalThrottle(Fault):
    onset = -35 * MINUTE
    peak_c = 89.0

    def prepare(self, plan: JobPlan) -> None:
        self.job = self.busy_job(plan)

    def shape_gpu(self, node: int, gpu: int, frame: Frame, cols: Columns) -> None:
        key, spec = series_key(node, gpu), self.topo.spec
        for i in self.after(frame, self.onset):
            r = ramp(frame.times[i], self.onset, -5 * MINUTE)
            temp = cols["temp"][i] + (self.peak_c - cols["temp"][i]) * r + 0.8 * self.noise.at(key, frame.buckets[i], 21)
            slow = min(1.0, max(0.0, (temp - 83.0) / 6.0))
            bits = cols["clock_events"][i]
            if temp >= 85:
                bits |= CE.SW_THERMAL
            if temp >= 88:
                bits |= CE.HW_THERMAL | CE.HW_SLOWDOWN
            cols["temp"][i] = round(temp)
            cols["mem_temp"][i] = round(temp + 2)
            cols["clock_events"][i] = int(bits)
            cols["sm_clock"][i] = round(spec.max_sm_clock_mhz * (1 - 0.5 * slow) / 15.0) * 15.0
            cols["power"][i] = round(spec.idle_power_w + (cols["power"][i] - spec.idle_power_w) * (1 - 0.4 * slow), 1)


class PowerBrake(Fault):
    onset = -22 * MINUTE

    def prepare(self, plan: JobPlan) -> None:
        self.job = self.busy_job(plan)

    def shape_gpu(self, node: int, gpu: int, frame: Frame, cols: Columns) -> None:
        key, spec = series_key(node, gpu), self.topo.spec
        limit = spec.power_limit_w * 0.5
        for i in self.after(frame, self.onset):
            cols["power_limit"][i] = limit
            cols["power"][i] = round(min(cols["power"][i], limit * 0.97 + 2 * self.noise.at(key, frame.buckets[i], 22)), 1)
            cols["sm_clock"][i] = round(spec.max_sm_clock_mhz * 0.6 / 15.0) * 15.0
            cols["clock_events"][i] = int(cols["clock_events"][i] | CE.HW_POWER_BRAKE | CE.SW_POWER_CAP)


class PcieDegraded(Fault):
    onset = -30 * MINUTE

    def prepare(self, plan: JobPlan) -> None:
        self.job = self.busy_job(plan)

    def shape_gpu(self, node: int, gpu: int, frame: Frame, cols: Columns) -> None:
        for i in self.after(frame, self.onset):
            minutes = (frame.times[i] - self.onset) / 60.0
            cols["pcie_width"][i] = 8
            cols["pcie_replay"][i] = int(52 * minutes + 10 * math.sin(1.7 * minutes))  # uneven, never decreasing


class GspHang(Fault):
    onset = -14 * MINUTE

    def prepare(self, plan: JobPlan) -> None:
        self.job = self.busy_job(plan)
        plan.end_job(self.job, self.onset + 4 * MINUTE, "FAILED", 1)

    def xids(self, node: int, gpu: int) -> list[XidRecord]:
        if not self.affects_gpu(node, gpu):
            return []
        return [self.xid(self.onset, 119, f"{self.proc()}, Timeout after 6s of waiting for RPC response from "
                                          f"GPU{self.gpu} GSP! Expected function 76 (GSP_RM_CONTROL) (0x20800a4c 0x4).")]

    def stale_since(self, node: int, gpu: int) -> float | None:
        return self.onset + 15 if self.affects_gpu(node, gpu) else None

    def condition(self, node: int) -> NodeCondition | None:
        if node != self.node:
            return None
        return NodeCondition(self.onset + 6 * MINUTE, ("DRAIN",), "Kill task failed")


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


class Healthy(Fault):
    """No fault: named so that evals can ask for the baseline explicitly."""


FAULTS: dict[str, type[Fault]] = {
    "xid79-fell-off-bus": FellOffBus, "hbm-uncorrectable": HbmUncorrectable, "row-remap-failure": RowRemapFailure,
    "ecc-correctable-storm": CorrectableStorm, "nvlink-degraded": NvlinkDegraded, "thermal-throttle": ThermalThrottle,
    "power-brake": PowerBrake, "pcie-degraded": PcieDegraded, "gsp-hang": GspHang, "host-down": HostDown,
    "ib-flap": IbFlap, "straggler": Straggler, "app-xid": AppXid, "pending-on-drained": PendingOnDrained,
    "idle-allocated": IdleAllocated, "hostile-names": HostileNames, "healthy": Healthy,
}
assert set(FAULTS) == set(SCENARIOS), "every catalogued scenario needs a fault"


def build_fault(placement: ScenarioPlacement, topo: Topology, noise: Noise) -> Fault:
    return FAULTS[placement.name](placement, topo, noise)
