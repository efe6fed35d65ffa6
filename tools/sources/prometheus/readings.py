"""Prometheus results turned into GPU, node and history facts.

What is read and how (the exporters' own names; ``None`` where a field is not exported):
- readings from the dcgm-exporter series of one instant, per (instance, gpu); a GPU seen within the
  last hour but silent now is ``stale`` with its last readings and the time of its last sample;
- XIDs from the history of the exporter's XID series: each ``err_code`` of the last-XID gauge and
  each ``xid`` of ``DCGM_EXP_XID_ERRORS_COUNT`` first seen within the look-back is an event (the count
  field also says how many); a code that was already the last value before the look-back is old;
- ``NVLINK_BANDWIDTH_TOTAL`` is DCGM's instantaneous MiB/s (despite its counter type): /1000 is GB/s;
- InfiniBand ports from node_exporter, with the link drops of the last hour from ``increase()``.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from gpudoc.tools.models import GpuMetrics, GpuSample, GpuSeries, NetworkPort, XidEvent
from gpudoc.tools.sources.prometheus.inventory import Inventory
from gpudoc.tools.sources.prometheus.promql import LAST_VALUE_TAGS, NVLINK_ERROR_KINDS

Row = dict[str, Any]
GpuKey = tuple[str, int]  # (node id, gpu index)
#: a code first seen this close to the look-back's start was already there: not a new event
PREDATES_S = 90.0

#: exporter field -> GpuMetrics field (plain numbers)
NUMBER_FIELDS = {
    "DCGM_FI_DEV_GPU_UTIL": "utilization_pct", "DCGM_FI_DEV_FB_USED": "memory_used_mib",
    "DCGM_FI_DEV_GPU_TEMP": "temperature_c", "DCGM_FI_DEV_POWER_USAGE": "power_w",
    "DCGM_FI_DEV_MEM_COPY_UTIL": "memory_util_pct", "DCGM_FI_DEV_MEMORY_TEMP": "memory_temperature_c",
    "DCGM_FI_DEV_POWER_MGMT_LIMIT_DEF": "default_power_limit_w", "DCGM_FI_DEV_SM_CLOCK": "sm_clock_mhz",
    "DCGM_FI_DEV_MEM_CLOCK": "mem_clock_mhz", "DCGM_FI_DEV_FB_RESERVED": "memory_reserved_mib",
    "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION": "energy_mj", "DCGM_FI_DEV_ENC_UTIL": "encoder_util_pct",
    "DCGM_FI_DEV_DEC_UTIL": "decoder_util_pct", "DCGM_FI_PROF_GR_ENGINE_ACTIVE": "graphics_active",
    "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE": "tensor_active", "DCGM_FI_PROF_DRAM_ACTIVE": "dram_active",
    "DCGM_FI_PROF_PCIE_TX_BYTES": "pcie_tx_bytes_per_s", "DCGM_FI_PROF_PCIE_RX_BYTES": "pcie_rx_bytes_per_s",
}
#: exporter field -> GpuMetrics field (integers and flags)
INTEGER_FIELDS = {
    "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS": "correctable_remapped_rows",
    "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS": "uncorrectable_remapped_rows",
    "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL": "ecc_sbe_volatile", "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL": "ecc_dbe_volatile",
    "DCGM_FI_DEV_PCIE_LINK_GEN": "pcie_link_gen", "DCGM_FI_DEV_PCIE_MAX_LINK_GEN": "pcie_link_gen_max",
    "DCGM_FI_DEV_PCIE_LINK_WIDTH": "pcie_link_width", "DCGM_FI_DEV_PCIE_MAX_LINK_WIDTH": "pcie_link_width_max",
    "DCGM_FI_DEV_PCIE_REPLAY_COUNTER": "pcie_replay_count", **NVLINK_ERROR_KINDS,
}
FLAG_FIELDS = {"DCGM_FI_DEV_ROW_REMAP_PENDING": "remap_pending", "DCGM_FI_DEV_ROW_REMAP_FAILURE": "remap_failure"}


class GpuReading:
    """Everything one GPU's series say at one instant: values by field and the identity labels."""

    def __init__(self) -> None:
        self.values: dict[str, float] = {}
        self.labels: dict[str, str] = {}
        self.xid_message: str = ""

    def add(self, name: str, labels: dict[str, str], value: float) -> None:
        if name == "DCGM_FI_DEV_XID_ERRORS" and name in self.values and value == 0:
            return  # a GPU briefly has two XID series when the code changes: the non-zero one is news
        self.values[name] = value
        if not self.labels or "hpc_job" in labels:
            self.labels = labels
        if name == "DCGM_FI_DEV_XID_ERRORS":
            self.xid_message = labels.get("err_msg", "")


def group_gpus(rows: list[Row], inventory: Inventory, tags: dict[str, str] | None = None) -> dict[GpuKey, GpuReading]:
    """Rows by GPU; with ``tags``, a row's field is named by its ``gpudoc`` tag (``PromQL.last_values``)."""
    readings: dict[GpuKey, GpuReading] = defaultdict(GpuReading)
    for row in rows:
        labels = row["metric"]
        if "gpu" not in labels or not labels["gpu"].isdigit():
            continue
        value = _number(row["value"][1])
        if value is None:
            continue
        key = (inventory.node_of(labels), int(labels["gpu"]))
        name = tags.get(labels.get("gpudoc", ""), "") if tags is not None else labels.get("__name__", "")
        if name:
            readings[key].add(name, labels, value)
    return readings


def gpu_metrics(key: GpuKey, reading: GpuReading, *, xid_events: list[XidEvent] | None, stale: bool,
                last_seen: datetime) -> GpuMetrics | None:
    """A ``GpuMetrics`` from one GPU's reading; ``None`` when a core reading (utilisation, memory,
    temperature, power) is missing, since those may never be filled in."""
    v, labels = reading.values, reading.labels
    core = ("DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_GPU_TEMP", "DCGM_FI_DEV_POWER_USAGE")
    if any(name not in v for name in core):
        return None
    fields: dict[str, Any] = {field: v[name] for name, field in NUMBER_FIELDS.items() if name in v}
    fields.update({field: int(v[name]) for name, field in INTEGER_FIELDS.items() if name in v})
    fields.update({field: v[name] > 0 for name, field in FLAG_FIELDS.items() if name in v})
    kinds = [v[name] for name in NVLINK_ERROR_KINDS if name in v]
    clock = v.get("DCGM_FI_DEV_CLOCKS_EVENT_REASONS", v.get("DCGM_FI_DEV_CLOCK_THROTTLE_REASONS"))
    limit = v.get("DCGM_FI_DEV_ENFORCED_POWER_LIMIT", v.get("DCGM_FI_DEV_POWER_MGMT_LIMIT"))
    bandwidth = v.get("DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL")
    xid = v.get("DCGM_FI_DEV_XID_ERRORS")
    return GpuMetrics(
        node_id=key[0], index=key[1], uuid=labels.get("UUID") or labels.get("uuid"),
        model=labels.get("modelName") or labels.get("model_name") or labels.get("gpu_name") or "unknown GPU",
        pci_bus_id=labels.get("pci_bus_id"), memory_total_mib=memory_total(v), **fields,
        clock_event_reasons=None if clock is None else int(clock), power_limit_w=limit,
        last_xid=None if xid is None else int(xid), xid_events=xid_events,
        nvlink_error_count=int(sum(kinds)) if kinds else None,
        nvlink_bandwidth_gbps=None if bandwidth is None else bandwidth / 1000.0,
        job_id=labels.get("hpc_job") or None, stale=stale, last_seen=last_seen,
    )


def memory_total(values: dict[str, float]) -> float:
    if "DCGM_FI_DEV_FB_TOTAL" in values:
        return values["DCGM_FI_DEV_FB_TOTAL"]
    return (values.get("DCGM_FI_DEV_FB_USED", 0.0) + values.get("DCGM_FI_DEV_FB_FREE", 0.0)
            + values.get("DCGM_FI_DEV_FB_RESERVED", 0.0))


# ---- XIDs -------------------------------------------------------------------------------------------


def xid_events(rows: list[Row], inventory: Inventory, window_start: float) -> dict[GpuKey, list[XidEvent]]:
    """Events per GPU from ``PromQL.xid_history`` (first-seen times and counts per code)."""
    first: dict[tuple[GpuKey, int, str], tuple[float, Row]] = {}
    counts: dict[tuple[GpuKey, int], int] = {}
    for row in rows:
        labels = row["metric"]
        code = labels.get("err_code") or labels.get("xid")
        value = _number(row["value"][1])
        if not code or not code.isdigit() or value is None or not labels.get("gpu", "").isdigit():
            continue
        key = (inventory.node_of(labels), int(labels["gpu"]))
        tag = labels.get("gpudoc", "")
        if tag == "count_max":
            counts[(key, int(code))] = max(counts.get((key, int(code)), 0), int(value))
            continue
        source = "count" if tag == "count_first" else "gauge"
        slot = (key, int(code), source)
        if slot not in first or value < first[slot][0]:
            first[slot] = (value, row)
    events: dict[GpuKey, list[XidEvent]] = defaultdict(list)
    for (key, code, source), (seen, row) in sorted(first.items(), key=lambda item: item[1][0]):
        if source == "gauge" and (key, code, "count") in first:
            continue  # the count field saw the same code and knows how many times
        if seen <= window_start + PREDATES_S:
            continue  # already the last XID before the look-back began
        labels = row["metric"]
        events[key].append(XidEvent(
            xid=code, timestamp=datetime.fromtimestamp(seen, UTC), message=labels.get("err_msg", ""),
            job_id=labels.get("hpc_job") or None, count=max(1, counts.get((key, code), 1)),
        ))
    return events


# ---- InfiniBand ----------------------------------------------------------------------------------


def ib_ports(rows: list[Row], inventory: Inventory) -> dict[str, list[NetworkPort]]:
    """Ports per node from node_exporter's ``node_infiniband_*`` series (and the tagged increase)."""
    by_port: dict[tuple[str, str, str], dict[str, float]] = defaultdict(dict)
    for row in rows:
        labels = row["metric"]
        value = _number(row["value"][1])
        if value is None or "device" not in labels:
            continue
        name = labels.get("gpudoc") or labels.get("__name__", "")
        by_port[(inventory.node_of(labels), labels["device"], labels.get("port", "1"))][name] = value
    ports: dict[str, list[NetworkPort]] = defaultdict(list)
    for (node, device, port), v in sorted(by_port.items()):
        if "node_infiniband_state_id" not in v:
            continue
        rate = v.get("node_infiniband_rate_bytes_per_second")
        recovery = v.get("node_infiniband_link_error_recovery_total")
        physical = v.get("node_infiniband_physical_state_id")
        recent = v.get("downed_last_hour")
        ports[node].append(NetworkPort(
            device=device, port=int(port) if port.isdigit() else 1, state_id=int(v["node_infiniband_state_id"]),
            physical_state_id=None if physical is None else int(physical),
            link_downed_total=int(v.get("node_infiniband_link_downed_total", 0)),
            link_downed_last_hour=None if recent is None else round(recent),
            link_error_recovery_total=None if recovery is None else int(recovery),
            rate_gbps=None if rate is None else rate * 8 / 1e9,
        ))
    return ports


# ---- history ---------------------------------------------------------------------------------------


def gpu_series(rows: list[Row], inventory: Inventory) -> list[GpuSeries]:
    """``GpuSeries`` per GPU from a range query over ``PromQL.history``'s fields."""
    points: dict[GpuKey, dict[float, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
    for row in rows:
        labels = row["metric"]
        if not labels.get("gpu", "").isdigit():
            continue
        key = (inventory.node_of(labels), int(labels["gpu"]))
        name = labels.get("__name__", "")
        for stamp, text in row["values"]:
            value = _number(text)
            if value is not None:
                points[key][float(stamp)][name] = value
    out = []
    for key in sorted(points):
        samples = [_sample(stamp, v) for stamp, v in sorted(points[key].items())]
        out.append(GpuSeries(node_id=key[0], gpu_index=key[1], samples=[s for s in samples if s is not None]))
    return out


def _sample(stamp: float, v: dict[str, float]) -> GpuSample | None:
    if any(name not in v for name in ("DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_GPU_TEMP",
                                       "DCGM_FI_DEV_POWER_USAGE")):
        return None
    kinds = [v[name] for name in NVLINK_ERROR_KINDS if name in v]
    rows = v.get("DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS")
    replays = v.get("DCGM_FI_DEV_PCIE_REPLAY_COUNTER")
    return GpuSample(
        timestamp=datetime.fromtimestamp(stamp, UTC), utilization_pct=v["DCGM_FI_DEV_GPU_UTIL"],
        memory_used_mib=v["DCGM_FI_DEV_FB_USED"], memory_total_mib=memory_total(v),
        temperature_c=v["DCGM_FI_DEV_GPU_TEMP"], power_w=v["DCGM_FI_DEV_POWER_USAGE"],
        sm_clock_mhz=v.get("DCGM_FI_DEV_SM_CLOCK"),
        correctable_remapped_rows=None if rows is None else int(rows),
        nvlink_error_count=int(sum(kinds)) if kinds else None,
        pcie_replay_count=None if replays is None else int(replays),
    )


def _number(text: Any) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return None if value != value else value  # NaN: no reading
