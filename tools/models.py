"""Typed facts about a GPU cluster: the vocabulary every source, tool and analyzer shares.

Why one module: the simulator, the GPU Watchdog adapter, the analyzers and the LLM tools must
agree on units and on what "absent" means. Every optional field is ``None`` when the source does
not report it (the GPU Watchdog API has no XIDs or ECC, for example) so that nothing downstream
can mistake a missing reading for a healthy zero.

Units are in the field names: ``_pct`` 0-100, ``_c`` degrees Celsius, ``_w`` watts, ``_mib``
mebibytes, ``_mhz`` megahertz. Times are timezone-aware UTC datetimes.
"""

from __future__ import annotations

from datetime import datetime
from enum import IntFlag, StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Model(BaseModel):
    """Base for all cluster facts: immutable-by-convention, strict about unknown fields."""

    model_config = ConfigDict(extra="forbid", frozen=False)


# --------------------------------------------------------------------------------------------
# GPUs
# --------------------------------------------------------------------------------------------


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
    """One XID the driver logged for a GPU."""

    xid: int
    timestamp: datetime
    message: str = ""
    job_id: str | None = None


class GpuMetrics(Model):
    """A point-in-time reading of one GPU.

    Only the first block is guaranteed by every source; the rest is ``None`` when the source
    cannot see it. ``stale`` marks a GPU whose series stopped updating (fell off the bus, GSP hang).
    """

    node_id: str
    index: int
    uuid: str | None = None
    model: str
    pci_bus_id: str | None = None
    utilization_pct: float
    memory_used_mib: float
    memory_total_mib: float
    temperature_c: float
    power_w: float

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
    nvlink_links_down: int | None = None
    nvlink_bandwidth_gbps: float | None = None
    job_id: str | None = Field(default=None, description="Slurm job using this GPU (hpc_job)")
    stale: bool = False
    last_seen: datetime | None = None


class NetworkPort(Model):
    """An InfiniBand port of a node (node_exporter's infiniband collector)."""

    device: str
    port: int = 1
    state_id: int = Field(description="4 = ACTIVE; anything else is not passing traffic")
    link_downed_total: int = 0
    rate_gbps: float | None = None


class NodeMetrics(Model):
    """All current readings of one node; ``reachable=False`` when its exporters went silent."""

    node_id: str
    hostname: str
    timestamp: datetime
    reachable: bool = True
    gpus: list[GpuMetrics] = Field(default_factory=list)
    network: list[NetworkPort] | None = None
    driver_version: str | None = None


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

    node_id: str
    gpu_index: int
    samples: list[GpuSample]


# --------------------------------------------------------------------------------------------
# Slurm
# --------------------------------------------------------------------------------------------

SLURM_BASE_STATES = ("IDLE", "ALLOCATED", "MIXED", "DOWN", "ERROR", "FUTURE", "UNKNOWN")


class SlurmNode(Model):
    """A Slurm node as slurmrestd reports it: ``state`` is base state first, then flags."""

    name: str
    state: list[str] = Field(description='e.g. ["IDLE", "DRAIN"] (sinfo: drained)')
    reason: str | None = None
    reason_set_at: datetime | None = None
    cpus_total: int
    cpus_alloc: int
    memory_total_mb: int
    memory_alloc_mb: int
    gpus_total: int
    gpus_alloc: int | None = None
    gres_used: str | None = Field(default=None, description='e.g. "gpu:a100:2(IDX:0-1)"')
    partitions: list[str] = Field(default_factory=list)

    @property
    def base_state(self) -> str:
        return self.state[0] if self.state else "UNKNOWN"

    @property
    def flags(self) -> list[str]:
        return self.state[1:]

    @property
    def is_drained(self) -> bool:
        return "DRAIN" in self.flags

    @property
    def is_down(self) -> bool:
        return self.base_state == "DOWN" or "NOT_RESPONDING" in self.flags

    @property
    def sinfo_state(self) -> str:
        """The name sinfo would print (idle, alloc, mix, drained, draining, down*, ...)."""
        base = self.base_state
        if "DRAIN" in self.flags:
            return "drained" if base == "IDLE" else "draining"
        short = {"ALLOCATED": "alloc", "MIXED": "mix"}.get(base, base.lower())
        return short + ("*" if "NOT_RESPONDING" in self.flags else "")


JobState = Literal[
    "PENDING",
    "RUNNING",
    "COMPLETED",
    "CANCELLED",
    "FAILED",
    "TIMEOUT",
    "NODE_FAIL",
    "PREEMPTED",
    "OUT_OF_MEMORY",
    "REQUEUED",
    "COMPLETING",
]


class SlurmJob(Model):
    """A Slurm job. ``gpu_indices`` maps node name to the GPU indices the job holds there."""

    job_id: str
    name: str
    user: str
    partition: str
    state: JobState
    pending_reason: str | None = None
    nodes: list[str] = Field(default_factory=list)
    gpus: int = 0
    gpu_indices: dict[str, list[int]] = Field(default_factory=dict)
    submit_time: datetime
    start_time: datetime | None = None
    end_time: datetime | None = None
    exit_code: int | None = None


class SlurmPartition(Model):
    name: str
    state: str = "UP"
    nodes: list[str]
    total_gpus: int
    max_time_minutes: int | None = None


class QueueCounts(Model):
    pending: int = 0
    running: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0


class SlurmSnapshot(Model):
    """What the scheduler says. ``jobs``/``partitions`` are ``None`` when the source has no list."""

    nodes: list[SlurmNode]
    jobs: list[SlurmJob] | None = None
    partitions: list[SlurmPartition] | None = None
    queue: QueueCounts
    timestamp: datetime


# --------------------------------------------------------------------------------------------
# Alerts
# --------------------------------------------------------------------------------------------

AlertCondition = Literal["gt", "lt", "eq", "gte", "lte"]


class AlertRule(Model):
    """A threshold rule in GPU Watchdog's form: fire when ``metric condition threshold`` for ``duration`` s."""

    id: str
    name: str
    metric: str
    condition: AlertCondition
    threshold: float
    duration_seconds: int = 0
    node_filter: str | None = None
    enabled: bool = True
    created_at: datetime
    updated_at: datetime


class AlertEvent(Model):
    """One firing of a rule on one node (and GPU, when the metric is per GPU)."""

    id: str
    rule_id: str
    rule_name: str
    node_id: str
    gpu_index: int | None = None
    metric: str
    value: float
    threshold: float
    condition: AlertCondition
    fired_at: datetime
    resolved_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.resolved_at is None


# --------------------------------------------------------------------------------------------
# Cluster summary
# --------------------------------------------------------------------------------------------


class SlurmSummary(Model):
    cpus_total: int
    cpus_alloc: int
    cpus_idle: int
    nodes_total: int
    jobs_pending: int
    jobs_running: int


class ClusterStatus(Model):
    """The one-glance view (GPU Watchdog's ``/api/cluster/status``)."""

    healthy: bool
    node_count: int
    gpu_count: int
    avg_utilization_pct: float
    avg_temperature_c: float
    memory_used_gb: float
    memory_total_gb: float
    slurm: SlurmSummary | None = None
    last_updated: datetime
