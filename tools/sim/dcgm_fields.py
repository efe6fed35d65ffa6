"""The DCGM fields the simulated dcgm-exporter can export, and the counters CSV that picks them.

Why a CSV: the real dcgm-exporter exports exactly the fields listed in its counters file
(``-f file.csv``; ``etc/default-counters.csv`` when none is given), each with the Prometheus type and
help text written there. Many fields gpudoc's rules need are commented out of the default file
(ECC counts, clock-event reasons, power limits, PCIe link state, row-remap pending, NVLink error
counters), so a Prometheus fed by a default exporter lacks them. The simulator reads the same
CSV format, so it can stand in for a default exporter (``default``), for one configured with
gpudoc's counters file (``gpudoc``, the fields of ``infra/dcgm-exporter/gpudoc-counters.csv``), or
for any operator's file (a path).

Values are written as DCGM's field types are: integers with ``%d``, doubles with ``%f``
(``POWER_USAGE`` ``245.120000``). ``NVLINK_BANDWIDTH_TOTAL`` is declared a counter in NVIDIA's file
but DCGM fills it with an instantaneous throughput (MiB/s), and the simulator does the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal

from gpudoc.tools.models import GpuMetrics

FieldKind = Literal["gauge", "counter", "label"]
#: the exporter's own field counting XIDs per time window (``DCGM_EXP_XID_ERRORS_COUNT``)
XID_COUNT_FIELD = "DCGM_EXP_XID_ERRORS_COUNT"
#: the label field carrying the driver version
DRIVER_VERSION_FIELD = "DCGM_FI_DRIVER_VERSION"
#: what ``--xid-count-window-size`` defaults to in dcgm-exporter (5 minutes)
XID_COUNT_WINDOW_MS = 300_000


@dataclass(frozen=True)
class DcgmField:
    """A field the simulator can fill: how DCGM types it and where its value comes from."""

    name: str
    kind: FieldKind
    help: str
    value: Callable[[GpuMetrics], float | int | bool | None]
    double: bool = False  # DCGM_FT_DOUBLE (written with %f) rather than DCGM_FT_INT64 (%d)


def _fb_free(gpu: GpuMetrics) -> float:
    """Free framebuffer as DCGM reports it: total minus used minus what the driver reserves."""
    return max(gpu.memory_total_mib - gpu.memory_used_mib - (gpu.memory_reserved_mib or 0.0), 0.0)


def _nvlink_mib_s(gpu: GpuMetrics) -> float | None:
    return None if gpu.nvlink_bandwidth_gbps is None else gpu.nvlink_bandwidth_gbps * 1000.0


def _field(name: str, kind: FieldKind, help_text: str, value: Callable[[GpuMetrics], object],
           double: bool = False) -> DcgmField:
    return DcgmField(name, kind, help_text, value, double)  # type: ignore[arg-type]


#: Every field the simulator can fill, with the type and help NVIDIA's counters files give it.
FIELDS: dict[str, DcgmField] = {f.name: f for f in (
    _field("DCGM_FI_DEV_SM_CLOCK", "gauge", "SM clock frequency (in MHz).", lambda g: g.sm_clock_mhz),
    _field("DCGM_FI_DEV_MEM_CLOCK", "gauge", "Memory clock frequency (in MHz).", lambda g: g.mem_clock_mhz),
    _field("DCGM_FI_DEV_MEMORY_TEMP", "gauge", "Memory temperature (in C).", lambda g: g.memory_temperature_c),
    _field("DCGM_FI_DEV_GPU_TEMP", "gauge", "GPU temperature (in C).", lambda g: g.temperature_c),
    _field("DCGM_FI_DEV_POWER_USAGE", "gauge", "Power draw (in W).", lambda g: g.power_w, double=True),
    _field("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "counter", "Total energy consumption since boot (in mJ).",
           lambda g: g.energy_mj),
    _field("DCGM_FI_DEV_PCIE_REPLAY_COUNTER", "counter", "Total number of PCIe retries.",
           lambda g: g.pcie_replay_count),
    _field("DCGM_FI_DEV_GPU_UTIL", "gauge", "GPU utilization (in %).", lambda g: g.utilization_pct),
    _field("DCGM_FI_DEV_MEM_COPY_UTIL", "gauge", "Memory utilization (in %).", lambda g: g.memory_util_pct),
    _field("DCGM_FI_DEV_ENC_UTIL", "gauge", "Encoder utilization (in %).", lambda g: g.encoder_util_pct),
    _field("DCGM_FI_DEV_DEC_UTIL", "gauge", "Decoder utilization (in %).", lambda g: g.decoder_util_pct),
    _field("DCGM_FI_DEV_XID_ERRORS", "gauge", "Value of the last XID error encountered.", lambda g: g.last_xid),
    _field("DCGM_FI_DEV_FB_FREE", "gauge", "Framebuffer memory free (in MiB).", _fb_free),
    _field("DCGM_FI_DEV_FB_USED", "gauge", "Framebuffer memory used (in MiB).", lambda g: g.memory_used_mib),
    _field("DCGM_FI_DEV_FB_RESERVED", "gauge", "Framebuffer memory reserved (in MiB).",
           lambda g: g.memory_reserved_mib),
    _field("DCGM_FI_DEV_FB_TOTAL", "gauge", "Framebuffer memory total (in MiB).", lambda g: g.memory_total_mib),
    _field("DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL", "counter",
           "Total number of NVLink bandwidth counters for all lanes.", _nvlink_mib_s),
    # blank on GPUs without vGPU, so never exported (listed so the default file parses)
    _field("DCGM_FI_DEV_VGPU_LICENSE_STATUS", "gauge", "vGPU License status", lambda g: None),
    _field("DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS", "counter", "Number of remapped rows for uncorrectable errors",
           lambda g: g.uncorrectable_remapped_rows),
    _field("DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS", "counter", "Number of remapped rows for correctable errors",
           lambda g: g.correctable_remapped_rows),
    _field("DCGM_FI_DEV_ROW_REMAP_FAILURE", "gauge", "Whether remapping of rows has failed",
           lambda g: g.remap_failure),
    _field("DCGM_FI_DEV_ROW_REMAP_PENDING", "gauge", "Whether remapping of rows is pending",
           lambda g: g.remap_pending),
    _field(DRIVER_VERSION_FIELD, "label", "Driver Version", lambda g: None),
    _field("DCGM_FI_PROF_GR_ENGINE_ACTIVE", "gauge", "Ratio of time the graphics engine is active.",
           lambda g: g.graphics_active, double=True),
    _field("DCGM_FI_PROF_PIPE_TENSOR_ACTIVE", "gauge", "Ratio of cycles the tensor (HMMA) pipe is active.",
           lambda g: g.tensor_active, double=True),
    _field("DCGM_FI_PROF_DRAM_ACTIVE", "gauge",
           "Ratio of cycles the device memory interface is active sending or receiving data.",
           lambda g: g.dram_active, double=True),
    _field("DCGM_FI_PROF_PCIE_TX_BYTES", "gauge",
           "The rate of data transmitted over the PCIe bus - including both protocol headers and data payloads - "
           "in bytes per second.", lambda g: g.pcie_tx_bytes_per_s),
    _field("DCGM_FI_PROF_PCIE_RX_BYTES", "gauge",
           "The rate of data received over the PCIe bus - including both protocol headers and data payloads - "
           "in bytes per second.", lambda g: g.pcie_rx_bytes_per_s),
    # off in NVIDIA's default file
    _field("DCGM_FI_DEV_ECC_SBE_VOL_TOTAL", "counter", "Total number of single-bit volatile ECC errors.",
           lambda g: g.ecc_sbe_volatile),
    _field("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", "counter", "Total number of double-bit volatile ECC errors.",
           lambda g: g.ecc_dbe_volatile),
    _field("DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL", "counter",
           "Total number of NVLink flow-control CRC errors.", lambda g: g.nvlink_crc_flit_errors),
    _field("DCGM_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL", "counter", "Total number of NVLink data CRC errors.",
           lambda g: g.nvlink_crc_data_errors),
    _field("DCGM_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL", "counter", "Total number of NVLink retries.",
           lambda g: g.nvlink_replay_errors),
    _field("DCGM_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL", "counter", "Total number of NVLink recovery errors.",
           lambda g: g.nvlink_recovery_errors),
    _field("DCGM_FI_DEV_CLOCKS_EVENT_REASONS", "gauge", "Current clock event reasons (bitmask).",
           lambda g: g.clock_event_reasons),
    _field("DCGM_FI_DEV_CLOCK_THROTTLE_REASONS", "gauge", "Current clock throttle reasons (bitmask).",
           lambda g: g.clock_event_reasons),
    _field("DCGM_FI_DEV_ENFORCED_POWER_LIMIT", "gauge", "Effective power limit that the driver enforces (in W).",
           lambda g: g.power_limit_w, double=True),
    _field("DCGM_FI_DEV_POWER_MGMT_LIMIT", "gauge", "Current power limit (in W).",
           lambda g: g.power_limit_w, double=True),
    _field("DCGM_FI_DEV_POWER_MGMT_LIMIT_DEF", "gauge", "Default power management limit (in W).",
           lambda g: g.default_power_limit_w, double=True),
    _field("DCGM_FI_DEV_PCIE_LINK_GEN", "gauge", "PCIe current link generation.", lambda g: g.pcie_link_gen),
    _field("DCGM_FI_DEV_PCIE_MAX_LINK_GEN", "gauge", "PCIe max link generation.", lambda g: g.pcie_link_gen_max),
    _field("DCGM_FI_DEV_PCIE_LINK_WIDTH", "gauge", "PCIe current link width.", lambda g: g.pcie_link_width),
    _field("DCGM_FI_DEV_PCIE_MAX_LINK_WIDTH", "gauge", "PCIe max link width.", lambda g: g.pcie_link_width_max),
    _field(XID_COUNT_FIELD, "counter", "reported XIDs during last window", lambda g: None),
)}


@dataclass(frozen=True)
class Counter:
    """One line of a counters CSV: the field, and the type and help the file gives it."""

    name: str
    kind: FieldKind
    help: str


#: NVIDIA's ``etc/default-counters.csv`` (dcgm-exporter 4.x): the fields a default exporter exports
NVIDIA_DEFAULT_FIELDS: tuple[str, ...] = (
    "DCGM_FI_DEV_SM_CLOCK", "DCGM_FI_DEV_MEM_CLOCK", "DCGM_FI_DEV_MEMORY_TEMP", "DCGM_FI_DEV_GPU_TEMP",
    "DCGM_FI_DEV_POWER_USAGE", "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "DCGM_FI_DEV_PCIE_REPLAY_COUNTER",
    "DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_MEM_COPY_UTIL", "DCGM_FI_DEV_ENC_UTIL", "DCGM_FI_DEV_DEC_UTIL",
    "DCGM_FI_DEV_XID_ERRORS", "DCGM_FI_DEV_FB_FREE", "DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_FB_RESERVED",
    "DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL", "DCGM_FI_DEV_VGPU_LICENSE_STATUS", "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS",
    "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS", "DCGM_FI_DEV_ROW_REMAP_FAILURE", DRIVER_VERSION_FIELD,
    "DCGM_FI_PROF_GR_ENGINE_ACTIVE", "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE", "DCGM_FI_PROF_DRAM_ACTIVE",
    "DCGM_FI_PROF_PCIE_TX_BYTES", "DCGM_FI_PROF_PCIE_RX_BYTES",
)

#: what ``infra/dcgm-exporter/gpudoc-counters.csv`` adds to NVIDIA's defaults (a test keeps them equal)
GPUDOC_EXTRA_FIELDS: tuple[str, ...] = (
    "DCGM_FI_DEV_FB_TOTAL", "DCGM_FI_DEV_ROW_REMAP_PENDING", "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL",
    "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", "DCGM_FI_DEV_CLOCKS_EVENT_REASONS", "DCGM_FI_DEV_ENFORCED_POWER_LIMIT",
    "DCGM_FI_DEV_POWER_MGMT_LIMIT_DEF", "DCGM_FI_DEV_PCIE_LINK_GEN", "DCGM_FI_DEV_PCIE_MAX_LINK_GEN",
    "DCGM_FI_DEV_PCIE_LINK_WIDTH", "DCGM_FI_DEV_PCIE_MAX_LINK_WIDTH",
    "DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL", "DCGM_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL",
    "DCGM_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL", "DCGM_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL",
    XID_COUNT_FIELD,
)


class CountersError(ValueError):
    """A counters file that cannot be read or parsed; the message names the file and line."""


def _builtin(names: tuple[str, ...]) -> list[Counter]:
    return [Counter(name, FIELDS[name].kind, FIELDS[name].help) for name in names]


COUNTER_PROFILES: dict[str, list[Counter]] = {
    "default": _builtin(NVIDIA_DEFAULT_FIELDS),
    "gpudoc": _builtin(NVIDIA_DEFAULT_FIELDS + GPUDOC_EXTRA_FIELDS),
}


def parse_counters_csv(text: str, origin: str = "counters file") -> tuple[list[Counter], list[str]]:
    """The counters of a dcgm-exporter CSV (``FIELD, type, help``; ``#`` comments) and the names the
    simulator cannot fill (left out, as a real exporter leaves out fields its GPU does not support)."""
    counters: list[Counter] = []
    unsupported: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = [part.strip() for part in line.split(",", 2)]
        if len(parts) < 2 or not parts[0]:
            raise CountersError(f"{origin}, line {number}: expected 'FIELD, type, help', got {raw.strip()!r}")
        name, kind = parts[0], parts[1].lower()
        if kind not in ("gauge", "counter", "label"):
            raise CountersError(f"{origin}, line {number}: type must be gauge, counter or label, not {parts[1]!r}")
        if name not in FIELDS:
            unsupported.append(name)
            continue
        counters.append(Counter(name, kind, parts[2] if len(parts) > 2 else FIELDS[name].help))  # type: ignore[arg-type]
    return counters, unsupported


def load_counters(spec: str) -> tuple[list[Counter], list[str]]:
    """``default``, ``gpudoc`` or the path of a counters CSV."""
    if spec in COUNTER_PROFILES:
        return list(COUNTER_PROFILES[spec]), []
    path = Path(spec)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CountersError(
            f"Cannot read the dcgm-exporter counters file '{spec}': {exc.strerror}. "
            f"Give a CSV path or one of: {', '.join(COUNTER_PROFILES)}."
        ) from None
    return parse_counters_csv(text, str(path))
