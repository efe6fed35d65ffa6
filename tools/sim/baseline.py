"""The healthy signals of every GPU and node, as columns over a list of time buckets.

Why columns: history, the current reading and the alert evaluator all read the same values,
so they are produced once per (GPU, bucket range) as plain lists that the faults then bend in
place. Every value is a function of the seed, the job plan and the bucket only.

Ranges (domain.md §3, A100 fleet): a training GPU runs 55-72 °C and 250-340 W on an A100
(below the 85 °C / 95 %-of-limit warning lines); an idle GPU sits at 26-36 °C, near its idle
power, with its PCIe link dropped to gen 1 (normal power saving, not a fault).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from dataclasses import dataclass

from gpudoc.tools.models import ClockEventReason
from gpudoc.tools.sim.noise import Noise, series_key
from gpudoc.tools.sim.plan import JobPlan, PlannedJob
from gpudoc.tools.sim.topology import IB_PORTS, Topology

SCRAPE_S = 15
IDLE_SM_MHZ = 210.0

GPU_COLUMNS = (
    "util", "mem_util", "mem_used", "temp", "mem_temp", "power", "power_limit", "sm_clock", "mem_clock",
    "clock_events", "pcie_gen", "pcie_width", "pcie_replay", "nvlink_errors", "nvlink_crc_flit", "nvlink_crc_data",
    "nvlink_replay", "nvlink_recovery", "nvlink_down", "nvlink_bw", "corr_rows", "uncorr_rows", "remap_pending", "remap_failure", "ecc_sbe", "ecc_dbe", "job_id",
)


@dataclass
class Frame:
    """The time axis of a column set: absolute 15 s buckets and seconds relative to the anchor."""

    buckets: list[int]
    times: list[float]

    def index_from(self, t: float) -> int:
        """First position whose time is at or after ``t``."""
        return bisect_left(self.times, t)


Columns = dict[str, list]
_SEGMENT_COLUMNS = ("util", "temp", "power", "sm_clock", "mem_used", "clock_events", "pcie_gen", "nvlink_bw", "job_id")


class Baseline:
    """Computes healthy columns for one cluster (topology + job plan + noise)."""

    def __init__(self, topo: Topology, plan: JobPlan, noise: Noise, anchor_epoch: float):
        self.topo, self.plan, self.noise, self.anchor_epoch = topo, plan, noise, anchor_epoch
        self.spec = topo.spec

    def frame(self, first_bucket: int, last_bucket: int) -> Frame:
        buckets = list(range(first_bucket, last_bucket + 1))
        return Frame(buckets, [b * SCRAPE_S - self.anchor_epoch for b in buckets])

    def _static(self, node: int, gpu: int) -> tuple[float, float, float]:
        """Per-GPU constants: ambient temperature, heat offset (slot in the chassis), HBM delta."""
        key = series_key(node, gpu)
        return (30.0 + 3.0 * self.noise.at(key, 0, 90), 2.5 * self.noise.at(key, 0, 91),
                5.0 + 2.0 * self.noise.at(key, 0, 92))

    def gpu(self, node: int, gpu: int, frame: Frame) -> Columns:
        """Healthy columns of one GPU over ``frame``, built segment by segment (job held / idle)."""
        n = len(frame.times)
        cols: Columns = {name: [] for name in _SEGMENT_COLUMNS}
        noise = self.noise.channels(series_key(node, gpu), frame.buckets, 2)
        for lo, hi, job, holding in self._segments(node, gpu, frame.times):
            part = [channel[lo:hi] for channel in noise]
            if job is None:
                seg = self._idle(node, gpu, frame.times[lo:hi], part)
            elif holding:
                seg = self._holding(node, gpu, job, frame.times[lo:hi], part)
            else:
                seg = self._working(node, gpu, job, frame.times[lo:hi], part)
            for name in _SEGMENT_COLUMNS:
                cols[name].extend(seg[name])
        spec = self.spec
        cols["util"] = [int(v * 10.0 + 0.5) / 10.0 for v in cols["util"]]
        cols["mem_util"] = [int(v * 5.5 + 0.5) / 10.0 for v in cols["util"]]
        cols["power"] = [int(v * 10.0 + 0.5) / 10.0 for v in cols["power"]]
        hbm = self._static(node, gpu)[2]
        cols["mem_temp"] = [float(int(v + hbm + 0.5)) for v in cols["temp"]]
        cols["temp"] = [float(int(v + 0.5)) for v in cols["temp"]]
        cols["power_limit"] = [spec.power_limit_w] * n
        cols["mem_clock"] = [spec.max_mem_clock_mhz] * n
        cols["pcie_width"] = [spec.pcie_width_max] * n
        for counter in ("pcie_replay", "nvlink_errors", "nvlink_crc_flit", "nvlink_crc_data", "nvlink_replay",
                        "nvlink_recovery", "nvlink_down", "corr_rows", "uncorr_rows", "ecc_sbe", "ecc_dbe"):
            cols[counter] = [0] * n
        cols["remap_pending"] = [False] * n
        cols["remap_failure"] = [False] * n
        return cols

    def _segments(self, node: int, gpu: int, times: list[float]) -> list[tuple[int, int, PlannedJob | None, bool]]:
        """Cut the frame where the GPU changes hands: (lo, hi, job or None, holding-but-idle)."""
        cuts: list[tuple[int, int, PlannedJob | None, bool]] = []
        pos, n = 0, len(times)
        for job in self.plan.gpu_jobs(node, gpu):
            assert job.start is not None
            lo = max(pos, bisect_left(times, job.start))
            hi = n if job.end is None else bisect_left(times, job.end)
            if hi <= lo:
                continue
            if lo > pos:
                cuts.append((pos, lo, None, False))
            split = hi
            if job.profile.idle_after_s is not None:
                split = min(hi, max(lo, bisect_left(times, job.start + job.profile.idle_after_s)))
            if split > lo:
                cuts.append((lo, split, job, False))
            if hi > split:
                cuts.append((split, hi, job, True))
            pos = hi
        if pos < n:
            cuts.append((pos, n, None, False))
        return cuts

    def _working(self, node: int, gpu: int, job: PlannedJob, times: list[float], noise: list[list[float]]) -> Columns:
        spec, p, start = self.spec, job.profile, job.start or 0.0
        ambient, offset, _ = self._static(node, gpu)
        n_util, n_temp = noise
        n_pow, n_clk = n_temp, n_temp  # one channel: temperature, power and boost wobble move together
        since = [t - start for t in times]
        ckpt = p.ckpt_period_s
        util = [min(100.0, max(1.0, (p.util + p.jitter * x) * (0.15 if ckpt and s % ckpt < 45.0 else 1.0)
                               * (0.4 + 0.6 * min(1.0, (s + SCRAPE_S) / 90.0))))
                for s, x in zip(since, n_util)]
        heat = p.heat * p.util / 100.0
        temp = [ambient + offset + heat * (1.0 - math.exp(-(s + SCRAPE_S) / 150.0)) + 0.5 * x
                for s, x in zip(since, n_temp)]
        span = spec.power_limit_w * p.power_frac - spec.idle_power_w
        power = [spec.idle_power_w + span * u / 100.0 + 4.0 * x for u, x in zip(util, n_pow)]
        top = spec.max_sm_clock_mhz
        sm = [top if -0.6 < x < 0.6 else top - 15.0 for x in n_clk]  # boost wobbles one 15 MHz step
        n = len(times)
        return {"util": util, "temp": temp, "power": power, "sm_clock": sm,
                "mem_used": self._memory(job, since, n_util), "clock_events": [0] * n,
                "pcie_gen": [spec.pcie_gen_max] * n, "nvlink_bw": [int(p.nvlink_gbps * u / 10.0) / 10.0 for u in util],
                "job_id": [job.job_id] * n}

    def _holding(self, node: int, gpu: int, job: PlannedJob, times: list[float], noise: list[list[float]]) -> Columns:
        """A job holds the GPU with a CUDA context but launches nothing: idle clocks, memory kept."""
        spec = self.spec
        ambient, _, _ = self._static(node, gpu)
        n_util, n_temp = noise
        n_pow = n_temp
        n = len(times)
        return {"util": [0.0] * n, "temp": [ambient + 2.0 + 0.3 * x for x in n_temp],
                "power": [spec.idle_power_w + 6.0 + 2.0 * x for x in n_pow], "sm_clock": [IDLE_SM_MHZ] * n,
                "mem_used": self._memory(job, [t - (job.start or 0.0) for t in times], n_util),
                "clock_events": [int(ClockEventReason.GPU_IDLE)] * n, "pcie_gen": [1] * n, "nvlink_bw": [0.0] * n,
                "job_id": [job.job_id] * n}

    def _idle(self, node: int, gpu: int, times: list[float], noise: list[list[float]]) -> Columns:
        """No job: idle power, low clocks, PCIe down to gen 1, cooling off after the last job."""
        spec = self.spec
        ambient, _, _ = self._static(node, gpu)
        _, n_temp = noise
        n_pow = n_temp
        ended = [j for j in self.plan.gpu_jobs(node, gpu) if j.end is not None and j.end <= times[0]]
        last = max(ended, key=lambda j: j.end or 0.0) if ended else None
        if last is not None and last.end is not None:
            heat, end = last.profile.heat * last.profile.util / 100.0, last.end
            cooling = [heat * math.exp(-(t - end) / 120.0) for t in times]
        else:
            cooling = [0.0] * len(times)
        n = len(times)
        return {"util": [0.0] * n, "temp": [ambient + c + 0.3 * x for c, x in zip(cooling, n_temp)],
                "power": [spec.idle_power_w * (0.96 + 0.03 * x) + 0.4 * c for c, x in zip(cooling, n_pow)],
                "sm_clock": [IDLE_SM_MHZ] * n, "mem_used": [0.0] * n,
                "clock_events": [int(ClockEventReason.GPU_IDLE)] * n, "pcie_gen": [1] * n, "nvlink_bw": [0.0] * n,
                "job_id": [None] * n}

    def _memory(self, job: PlannedJob, since: list[float], n_util: list[float]) -> list[int]:
        total = self.spec.memory_total_mib * job.profile.mem_frac
        return [float(max(0, int(total * min(1.0, 0.3 + s / 120.0) + 30.0 * x))) for s, x in zip(since, n_util)]

    def node(self, node: int, frame: Frame) -> Columns:
        """Node-level columns: reachability and the InfiniBand ports (state 4 = ACTIVE)."""
        n = len(frame.times)
        cols: Columns = {"reachable": [True] * n}
        for port in range(IB_PORTS):
            cols[f"ib_state_{port}"] = [4] * n
            cols[f"ib_downed_{port}"] = [0] * n
        return cols
