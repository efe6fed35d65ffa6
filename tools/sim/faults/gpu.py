"""GPU hardware faults: the XIDs, memory errors, links, heat and power limits of one GPU.

Each bends one GPU's columns (and its job) the way domain.md §7 describes the real failure: an
XID with its kernel-log line, a counter climbing, a series going stale, a clock-event bit set.
"""

from __future__ import annotations

import math

from gpudoc.tools.models import ClockEventReason as CE
from gpudoc.tools.sim.baseline import Columns, Frame
from gpudoc.tools.sim.faults.base import Fault, NodeCondition, XidRecord, ramp
from gpudoc.tools.sim.noise import series_key
from gpudoc.tools.sim.plan import MINUTE, JobPlan


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
