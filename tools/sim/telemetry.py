"""GPU and node telemetry of the simulated cluster: columns per time chunk, cached, as models.

Why chunks: history windows, the current reading and the alert evaluator ask for overlapping
ranges of the same series. Columns (and the ``GpuSample`` models built from them) are computed
per aligned chunk of 40 buckets (10 minutes) once, then sliced; a moving realtime window only
computes its newest chunk.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from gpudoc.tools.models import GpuMetrics, GpuSample, GpuSeries, NetworkPort, NodeMetrics, XidEvent
from gpudoc.tools.sim.activity import EnergyMeter, activity
from gpudoc.tools.sim.baseline import SCRAPE_S, Baseline, Columns
from gpudoc.tools.sim.faults import Fault, XidRecord
from gpudoc.tools.sim.topology import IB_PORTS, Topology, node_id

CHUNK = 40
_MAX_CACHED_CHUNKS = 40_000
#: the energy counter integrates power exactly from this long before the anchor on
ENERGY_METERED_S = 2 * 3600


@dataclass(frozen=True)
class SeriesLife:
    """Where a GPU's series stops: fell off the bus / GSP hang (stale) or the host went down."""

    stale_since: float | None
    down_since: float | None

    @property
    def ends_at(self) -> float | None:
        ends = [t for t in (self.stale_since, self.down_since) if t is not None]
        return min(ends) if ends else None


_SAMPLE_FIELDS = frozenset(GpuSample.model_fields)


def trusted_sample(values: dict[str, object]) -> GpuSample:
    """A ``GpuSample`` from values this module already typed exactly (floats, ints, aware datetimes).

    Why skip validation: one hour of a 64-node cluster is 122,880 samples, and re-validating
    values we produced ourselves costs more than computing them. The result is an ordinary
    model (dump, copy and compare work); a test checks it equals the validated construction.
    Samples are cached and shared between calls: callers treat them as read-only.
    """
    sample = GpuSample.__new__(GpuSample)
    object.__setattr__(sample, "__dict__", values)
    object.__setattr__(sample, "__pydantic_fields_set__", set(_SAMPLE_FIELDS))
    object.__setattr__(sample, "__pydantic_extra__", None)
    object.__setattr__(sample, "__pydantic_private__", None)
    return sample


class Telemetry:
    """Answers "what did GPU g of node n read at bucket b" for any b, with faults applied."""

    def __init__(self, topo: Topology, baseline: Baseline, faults: list[Fault]):
        self.topo, self.baseline, self.faults = topo, baseline, faults
        self._gpu_chunks: dict[tuple[int, int, int], Columns] = {}
        self._node_chunks: dict[tuple[int, int], Columns] = {}
        self._sample_chunks: dict[tuple[int, int, int], list[GpuSample]] = {}
        self._stamps: dict[int, datetime] = {}
        self._xids: dict[tuple[int, int], list[XidRecord]] = {}
        self._job_kinds = {job.job_id: job.profile.kind for job in baseline.plan.jobs}
        self.energy = EnergyMeter(baseline.noise, int((baseline.anchor_epoch - ENERGY_METERED_S) // SCRAPE_S), CHUNK,
                                  topo.spec.idle_power_w, self._chunk_power)

    # ---- time ----------------------------------------------------------------------------
    def rel(self, bucket: int) -> float:
        return bucket * SCRAPE_S - self.baseline.anchor_epoch

    def stamp(self, bucket: int) -> datetime:
        stamp = self._stamps.get(bucket)
        if stamp is None:
            stamp = self._stamps[bucket] = datetime.fromtimestamp(bucket * SCRAPE_S, tz=timezone.utc)
        return stamp

    def at_rel(self, t: float) -> datetime:
        return datetime.fromtimestamp(self.baseline.anchor_epoch + t, tz=timezone.utc)

    # ---- per-series facts ------------------------------------------------------------------
    def life(self, node: int, gpu: int) -> SeriesLife:
        stale = [t for f in self.faults if (t := f.stale_since(node, gpu)) is not None]
        return SeriesLife(min(stale) if stale else None, self.down_since(node))

    def down_since(self, node: int) -> float | None:
        down = [t for f in self.faults if (t := f.down_since(node)) is not None]
        return min(down) if down else None

    def xids(self, node: int, gpu: int) -> list[XidRecord]:
        key = (node, gpu)
        if key not in self._xids:
            self._xids[key] = sorted((r for f in self.faults for r in f.xids(node, gpu)), key=lambda r: r.t)
        return self._xids[key]

    # ---- columns ---------------------------------------------------------------------------
    def gpu_chunk(self, node: int, gpu: int, chunk: int) -> Columns:
        key = (node, gpu, chunk)
        cols = self._gpu_chunks.get(key)
        if cols is None:
            self._trim()
            cols = self._gpu_chunks[key] = self._compute_gpu_chunk(node, gpu, chunk)
        return cols

    def _compute_gpu_chunk(self, node: int, gpu: int, chunk: int) -> Columns:
        frame = self.baseline.frame(chunk * CHUNK, chunk * CHUNK + CHUNK - 1)
        cols = self.baseline.gpu(node, gpu, frame)
        for fault in self.faults:
            if fault.affects_gpu(node, gpu):
                fault.shape_gpu(node, gpu, frame, cols)
        return cols

    def _chunk_power(self, node: int, gpu: int, chunk: int) -> list[float]:
        """Power readings of a chunk for the energy counter, without caching chunks nobody served."""
        cached = self._gpu_chunks.get((node, gpu, chunk))
        return (cached or self._compute_gpu_chunk(node, gpu, chunk))["power"]

    def node_chunk(self, node: int, chunk: int) -> Columns:
        key = (node, chunk)
        cols = self._node_chunks.get(key)
        if cols is None:
            frame = self.baseline.frame(chunk * CHUNK, chunk * CHUNK + CHUNK - 1)
            cols = self.baseline.node(node, frame)
            for fault in self.faults:
                if fault.node == node:
                    fault.shape_node(node, frame, cols)
            self._node_chunks[key] = cols
        return cols

    def gpu_point(self, node: int, gpu: int, bucket: int) -> dict[str, object]:
        cols = self.gpu_chunk(node, gpu, bucket // CHUNK)
        i = bucket % CHUNK
        return {name: values[i] for name, values in cols.items()}

    def node_point(self, node: int, bucket: int) -> dict[str, object]:
        cols = self.node_chunk(node, bucket // CHUNK)
        i = bucket % CHUNK
        return {name: values[i] for name, values in cols.items()}

    def _trim(self) -> None:
        """Bound memory in long realtime runs: forget the oldest chunks."""
        if len(self._gpu_chunks) < _MAX_CACHED_CHUNKS:
            return
        newest = max(k[2] for k in self._gpu_chunks)
        for store in (self._gpu_chunks, self._sample_chunks):
            for key in [k for k in store if k[2] < newest - 12]:
                del store[key]
        for nkey in [k for k in self._node_chunks if k[1] < newest - 12]:
            del self._node_chunks[nkey]

    # ---- models ----------------------------------------------------------------------------
    def _samples_chunk(self, node: int, gpu: int, chunk: int) -> list[GpuSample]:
        key = (node, gpu, chunk)
        samples = self._sample_chunks.get(key)
        if samples is None:
            c = self.gpu_chunk(node, gpu, chunk)
            total = float(self.topo.spec.memory_total_mib)
            stamps = [self.stamp(chunk * CHUNK + i) for i in range(CHUNK)]
            samples = [
                trusted_sample({"timestamp": ts, "utilization_pct": util, "memory_used_mib": mem,
                                "memory_total_mib": total, "temperature_c": temp, "power_w": power, "sm_clock_mhz": sm,
                                "correctable_remapped_rows": rows, "nvlink_error_count": nvl, "pcie_replay_count": pcie})
                for ts, util, mem, temp, power, sm, rows, nvl, pcie in zip(
                    stamps, c["util"], c["mem_used"], c["temp"], c["power"], c["sm_clock"], c["corr_rows"],
                    c["nvlink_errors"], c["pcie_replay"])
            ]
            self._sample_chunks[key] = samples
        return samples

    def series(self, node: int, gpu: int, first: int, last: int) -> GpuSeries:
        """Samples in buckets [first, last], stopping where the series stopped (stale / host down)."""
        ends = self.life(node, gpu).ends_at
        if ends is not None:
            last = min(last, self.last_bucket_before(ends))
        out: list[GpuSample] = []
        for chunk in range(first // CHUNK, last // CHUNK + 1):
            lo, hi = max(first, chunk * CHUNK), min(last, chunk * CHUNK + CHUNK - 1)
            if lo <= hi:
                out.extend(self._samples_chunk(node, gpu, chunk)[lo - chunk * CHUNK: hi - chunk * CHUNK + 1])
        return GpuSeries(node_id=node_id(node), gpu_index=gpu, samples=out)

    def last_bucket_before(self, t: float) -> int:
        """The last scrape strictly before relative time ``t``."""
        b = int((self.baseline.anchor_epoch + t) // SCRAPE_S)
        return b - 1 if b * SCRAPE_S >= self.baseline.anchor_epoch + t else b

    def gpu_metrics(self, node: int, gpu: int, bucket: int) -> GpuMetrics:
        life, spec = self.life(node, gpu), self.topo.spec
        ends = life.stale_since
        stale = ends is not None and self.rel(bucket) >= ends
        seen = self.last_bucket_before(ends) if stale and ends is not None else bucket
        p = self.gpu_point(node, gpu, seen)
        now_rel = self.rel(bucket)
        events = [XidEvent(xid=r.xid, timestamp=self.at_rel(r.t), message=r.message,
                           job_id=r.job.job_id if r.job else None)
                  for r in self.xids(node, gpu) if r.t <= now_rel]
        extras = activity(p["util"], p["mem_util"], self._job_kinds.get(p["job_id"]))
        return GpuMetrics(
            node_id=node_id(node), index=gpu, uuid=self.topo.uuid(node, gpu), model=spec.name,
            pci_bus_id=self.topo.pci_bus_id(gpu), utilization_pct=p["util"], memory_used_mib=p["mem_used"],
            memory_total_mib=spec.memory_total_mib, temperature_c=p["temp"], power_w=p["power"],
            memory_util_pct=p["mem_util"], memory_temperature_c=p["mem_temp"], power_limit_w=p["power_limit"],
            default_power_limit_w=spec.power_limit_w, sm_clock_mhz=p["sm_clock"], mem_clock_mhz=p["mem_clock"],
            clock_event_reasons=p["clock_events"], last_xid=events[-1].xid if events else 0, xid_events=events,
            correctable_remapped_rows=p["corr_rows"], uncorrectable_remapped_rows=p["uncorr_rows"],
            remap_pending=p["remap_pending"], remap_failure=p["remap_failure"], ecc_sbe_volatile=p["ecc_sbe"],
            ecc_dbe_volatile=p["ecc_dbe"], pcie_link_gen=p["pcie_gen"], pcie_link_gen_max=spec.pcie_gen_max,
            pcie_link_width=p["pcie_width"], pcie_link_width_max=spec.pcie_width_max,
            pcie_replay_count=p["pcie_replay"], nvlink_error_count=p["nvlink_errors"],
            nvlink_crc_flit_errors=p["nvlink_crc_flit"], nvlink_crc_data_errors=p["nvlink_crc_data"],
            nvlink_replay_errors=p["nvlink_replay"], nvlink_recovery_errors=p["nvlink_recovery"],
            nvlink_links_down=p["nvlink_down"], nvlink_bandwidth_gbps=p["nvlink_bw"], job_id=p["job_id"],
            memory_reserved_mib=spec.memory_reserved_mib, energy_mj=self.energy.energy_mj(node, gpu, seen),
            **extras, stale=stale, last_seen=self.stamp(seen),
        )

    def node_metrics(self, node: int, bucket: int, now: datetime) -> NodeMetrics:
        down = self.down_since(node)
        if down is not None and self.rel(bucket) >= down:
            return NodeMetrics(node_id=node_id(node), hostname=self.topo.hostname(node), timestamp=now,
                               reachable=False, gpus=[], network=None, driver_version=None)
        p = self.node_point(node, bucket)
        hour_ago = self.node_point(node, bucket - 3600 // SCRAPE_S)
        # a port that is down polls for its peer; one coming back (init) already has its physical link;
        # a flapping link also recovers from errors without going down, a few times per drop
        ports = [NetworkPort(device=f"mlx5_{k}", port=1, state_id=p[f"ib_state_{k}"],
                             physical_state_id=2 if p[f"ib_state_{k}"] == 1 else 5,
                             link_downed_total=p[f"ib_downed_{k}"],
                             link_downed_last_hour=p[f"ib_downed_{k}"] - hour_ago[f"ib_downed_{k}"],
                             link_error_recovery_total=3 * p[f"ib_downed_{k}"],
                             rate_gbps=self.topo.ib_rate_gbps)
                 for k in range(IB_PORTS)]
        gpus = [self.gpu_metrics(node, g, bucket) for g in range(self.topo.gpus_per_node)]
        return NodeMetrics(node_id=node_id(node), hostname=self.topo.hostname(node), timestamp=now, reachable=True,
                           gpus=gpus, network=ports, driver_version=self.topo.driver_version)

