"""GPU facts: model limits, per-GPU readings, XIDs and history samples.

Units are in the field names: ``_pct`` 0-100, ``_c`` degrees Celsius, ``_w`` watts, ``_mib``
mebibytes, ``_mhz`` megahertz. Times are timezone-aware UTC datetimes.
"""

from __future__ import annotations

from datetime import datetime
from enum import IntFlag

from pydantic import Field

from gpudoc.tools.models.base import Model
from gpudoc.tools.models.text import ClusterName, ClusterText


class ClockEventReason(IntFlag):
    """NVML clock-event (throttle) reason bits, as DCGM_FI_DEV_CLOCKS_EVENT_REASONS reports them."""

    GPU_IDLE = 0x1
    CLOCKS_SETTING = 0x2
    SW_POWER_CAP = 0x4
    HW_SLOWDOWN = 0x8
    SYNC_BOOST = 0x10
    SW_THERMAL = 0x20
    HW_THERMAL = 0x40
    HW_POWER_BRAKE = 0x80
    DISPLAY_CLOCKS = 0x100


def clock_event_names(bits: int | None) -> list[str]:
    """Human names of the set clock-event bits, e.g. ``["sw_thermal", "hw_slowdown"]``."""
    if not bits:
        return []
    return [flag.name.lower() for flag in ClockEventReason if flag.value & bits]


class GpuModelSpec(Model):
    """Limits of a GPU model (domain.md §3): what "hot" or "capped" means for this part."""

    name: str
    memory_total_mib: int
    power_limit_w: float
    idle_power_w: float
    max_operating_temp_c: float
    slowdown_temp_c: float
    shutdown_temp_c: float
    memory_max_temp_c: float
    max_sm_clock_mhz: float
    max_mem_clock_mhz: float
    pcie_gen_max: int
    pcie_width_max: int = 16
    nvlink_count: int
    memory_reserved_mib: int = Field(0, description="framebuffer the driver reserves (FB_RESERVED)")


A100_80GB = GpuModelSpec(
    name="NVIDIA A100-SXM4-80GB",
    memory_total_mib=81920,
    power_limit_w=400,
    idle_power_w=60,
    max_operating_temp_c=85,
    slowdown_temp_c=89,
    shutdown_temp_c=92,
    memory_max_temp_c=95,
    max_sm_clock_mhz=1410,
    max_mem_clock_mhz=1593,
    pcie_gen_max=4,
    nvlink_count=12,
    memory_reserved_mib=565,
)

H100_80GB = GpuModelSpec(
    name="NVIDIA H100 80GB HBM3",
    memory_total_mib=81559,
    power_limit_w=700,
    idle_power_w=85,
    max_operating_temp_c=87,
    slowdown_temp_c=89,
    shutdown_temp_c=95,
    memory_max_temp_c=95,
    max_sm_clock_mhz=1980,
    max_mem_clock_mhz=2619,
    pcie_gen_max=5,
    nvlink_count=18,
    memory_reserved_mib=329,
)

GPU_MODELS: dict[str, GpuModelSpec] = {"a100": A100_80GB, "h100": H100_80GB}


def spec_for_model_name(name: str | None) -> GpuModelSpec | None:
    """Find the limits for a reported model name (``"NVIDIA A100-SXM4-80GB"``), if we know it."""
    if not name:
        return None
    lowered = name.lower()
    for key, spec in GPU_MODELS.items():
        if key in lowered:
            return spec
    return None


class XidEvent(Model):
    """One XID the driver logged for a GPU (or, from an exporter that counts XIDs per window,
    ``count`` occurrences first seen at ``timestamp``)."""

    xid: int
    timestamp: datetime
    message: ClusterText = ""
    job_id: ClusterName | None = None
    count: int = Field(1, ge=1, description="occurrences this record stands for")


class GpuMetrics(Model):
    """A point-in-time reading of one GPU.

    Every source states the first block; a core reading is ``None`` only when the source sent
    one it could not read (``"N/A"``, null), which it says in a note: the GPU and its other
    readings stay. The rest is ``None`` when the source cannot see it. ``stale`` marks a GPU
    whose series stopped updating (fell off the bus, GSP hang).
    """

    node_id: ClusterName
    index: int
    uuid: ClusterName | None = None
    model: ClusterName
    pci_bus_id: ClusterName | None = None
    utilization_pct: float | None
    memory_used_mib: float | None
    memory_total_mib: float | None
    temperature_c: float | None
    power_w: float | None

    memory_util_pct: float | None = None
    memory_temperature_c: float | None = None
    power_limit_w: float | None = Field(default=None, description="enforced power limit")
    default_power_limit_w: float | None = None
    sm_clock_mhz: float | None = None
    mem_clock_mhz: float | None = None
    clock_event_reasons: int | None = None
    last_xid: int | None = Field(default=None, description="last XID seen; keeps its value")
    xid_events: list[XidEvent] | None = None
    correctable_remapped_rows: int | None = None
    uncorrectable_remapped_rows: int | None = None
    remap_pending: bool | None = None
    remap_failure: bool | None = None
    ecc_sbe_volatile: int | None = None
    ecc_dbe_volatile: int | None = None
    pcie_link_gen: int | None = None
    pcie_link_gen_max: int | None = None
    pcie_link_width: int | None = None
    pcie_link_width_max: int | None = None
    pcie_replay_count: int | None = None
    nvlink_error_count: int | None = Field(default=None, description="CRC+replay+recovery total")
    nvlink_crc_flit_errors: int | None = Field(default=None, description="flow-control CRC errors (DCGM 409)")
    nvlink_crc_data_errors: int | None = Field(default=None, description="data CRC errors (DCGM 419)")
    nvlink_replay_errors: int | None = Field(default=None, description="link-level retries (DCGM 429)")
    nvlink_recovery_errors: int | None = Field(default=None, description="link retrainings after an error (DCGM 439)")
    nvlink_links_down: int | None = None
    nvlink_bandwidth_gbps: float | None = None
    memory_reserved_mib: float | None = None
    energy_mj: float | None = Field(default=None, description="energy since boot, millijoules (a counter)")
    encoder_util_pct: float | None = None
    decoder_util_pct: float | None = None
    graphics_active: float | None = Field(default=None, description="ratio 0-1 (DCGM PROF_GR_ENGINE_ACTIVE)")
    tensor_active: float | None = Field(default=None, description="ratio 0-1 (DCGM PROF_PIPE_TENSOR_ACTIVE)")
    dram_active: float | None = Field(default=None, description="ratio 0-1 (DCGM PROF_DRAM_ACTIVE)")
    pcie_tx_bytes_per_s: float | None = None
    pcie_rx_bytes_per_s: float | None = None
    job_id: ClusterName | None = Field(default=None, description="Slurm job using this GPU (hpc_job)")
    stale: bool = False
    last_seen: datetime | None = None


class GpuSample(Model):
    """One point of a GPU's history; counters are ``None`` where the source has no history of them."""

    timestamp: datetime
    utilization_pct: float
    memory_used_mib: float
    memory_total_mib: float
    temperature_c: float
    power_w: float
    sm_clock_mhz: float | None = None
    correctable_remapped_rows: int | None = None
    nvlink_error_count: int | None = None
    pcie_replay_count: int | None = None


class GpuSeries(Model):
    """The history of one GPU over a window, oldest sample first."""

    node_id: ClusterName
    gpu_index: int
    samples: list[GpuSample]
