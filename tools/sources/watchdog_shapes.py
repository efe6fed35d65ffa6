"""The GPU Watchdog REST API's JSON shapes, field for field, as pydantic models.

Why a module of its own: the client (``WatchdogSource``) parses these shapes and the simulator's
server (``gpudoc sim``) renders them, so both sides share one definition and cannot drift apart.
The models mirror the original backend exactly: camelCase names on the wire (including its mixed
spellings ``memoryUsedMB`` in current metrics and ``memoryUsedMb`` in history), no extra fields.
Unknown fields a newer backend might add are ignored when parsing rather than rejected.

Timestamps are ISO 8601 strings; they are rendered the way JavaScript's ``toISOString()`` does
(``2025-01-01T12:00:00.000Z``) and accepted with ``Z`` or an offset. A timestamp without a zone is
taken as UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer
from pydantic.alias_generators import to_camel

from gpudoc.tools.models import AlertEvent, AlertRule, GpuSample, GpuSeries


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def iso_z(value: datetime) -> str:
    """``toISOString()`` form: UTC, milliseconds, ``Z``."""
    return _as_utc(value).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _id_as_text(value: object) -> object:
    # The original's ids are strings; a backend on an integer-keyed database would send numbers.
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


Timestamp = Annotated[datetime, AfterValidator(_as_utc), PlainSerializer(iso_z, return_type=str)]
WireId = Annotated[str, BeforeValidator(_id_as_text)]
Condition = Literal["gt", "lt", "eq", "gte", "lte"]
SlurmNodeStatus = Literal["idle", "alloc", "mix", "down", "drain"]


class WireModel(BaseModel):
    """camelCase on the wire, snake_case in Python; serialise with ``by_alias=True``."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    def to_wire(self) -> dict[str, object]:
        return self.model_dump(mode="json", by_alias=True)


# ---- /api/cluster/status -------------------------------------------------------------------


class SlurmSummaryWire(WireModel):
    cpus_total: int
    cpus_alloc: int
    cpus_idle: int
    nodes_total: int
    jobs_pending: int
    jobs_running: int


class ClusterStatusWire(WireModel):
    healthy: bool
    node_count: int
    gpu_count: int
    avg_utilization: float
    avg_temperature: float
    memory_used_gb: float = Field(alias="memoryUsedGB")
    memory_total_gb: float = Field(alias="memoryTotalGB")
    slurm: SlurmSummaryWire | None
    last_updated: Timestamp


# ---- /api/metrics/current and /api/metrics/gpu/{nodeId} -------------------------------------


class GpuWire(WireModel):
    """One GPU of a node. Memory figures are what nvidia-smi and DCGM call MiB."""

    gpu: str = Field(description='the GPU index as a string, "0"')
    gpu_name: str
    utilization: float
    memory_utilization: float | None
    memory_used_mb: float = Field(alias="memoryUsedMB")
    memory_free_mb: float = Field(alias="memoryFreeMB")
    memory_total_mb: float = Field(alias="memoryTotalMB")
    temperature_c: float = Field(alias="temperatureC")
    power_usage_w: float = Field(alias="powerUsageW")
    sm_clock_mhz: float | None = Field(alias="smClockMHz")
    mem_clock_mhz: float | None = Field(alias="memClockMHz")


class NodeWire(WireModel):
    node_id: str
    hostname: str
    gpus: list[GpuWire]
    timestamp: Timestamp


class CurrentMetricsWire(WireModel):
    nodes: list[NodeWire]
    slurm: SlurmSummaryWire | None
    last_updated: Timestamp


# ---- /api/metrics/history/gpu --------------------------------------------------------------


class HistoryPointWire(WireModel):
    timestamp: Timestamp
    utilization: float
    memory_used_mb: float  # "memoryUsedMb": the history endpoint spells it this way
    memory_total_mb: float
    temperature_c: float = Field(alias="temperatureC")
    power_usage_w: float = Field(alias="powerUsageW")


class GpuHistoryWire(WireModel):
    node_id: str
    gpu_index: int
    data: list[HistoryPointWire]

    # Both directions of the history mapping live here; the API carries no clocks or counters.
    @classmethod
    def from_model(cls, series: GpuSeries) -> GpuHistoryWire:
        return cls(
            node_id=series.node_id,
            gpu_index=series.gpu_index,
            data=[
                HistoryPointWire(
                    timestamp=sample.timestamp,
                    utilization=sample.utilization_pct,
                    memory_used_mb=sample.memory_used_mib,
                    memory_total_mb=sample.memory_total_mib,
                    temperature_c=sample.temperature_c,
                    power_usage_w=sample.power_w,
                )
                for sample in series.samples
            ],
        )

    def to_model(self) -> GpuSeries:
        return GpuSeries(
            node_id=self.node_id,
            gpu_index=self.gpu_index,
            samples=[
                GpuSample(
                    timestamp=point.timestamp,
                    utilization_pct=point.utilization,
                    memory_used_mib=point.memory_used_mb,
                    memory_total_mib=point.memory_total_mb,
                    temperature_c=point.temperature_c,
                    power_w=point.power_usage_w,
                )
                for point in sorted(self.data, key=lambda p: p.timestamp)
            ],
        )


class TimeRangeWire(WireModel):
    start: Timestamp
    end: Timestamp


class HistoryWire(WireModel):
    range: TimeRangeWire
    data: list[GpuHistoryWire]


# ---- /api/alerts and /api/alerts/events/history --------------------------------------------


class AlertRuleWire(WireModel):
    id: WireId
    name: str
    metric: str
    condition: Condition
    threshold: float
    duration: int = Field(description="seconds the condition must hold before the rule fires")
    node_filter: str | None
    enabled: bool
    created_at: Timestamp
    updated_at: Timestamp

    # The original API names the hold time `duration`; everything else maps field for field.
    @classmethod
    def from_model(cls, rule: AlertRule) -> AlertRuleWire:
        return cls(duration=rule.duration_seconds, **rule.model_dump(include=set(cls.model_fields) - {"duration"}))

    def to_model(self) -> AlertRule:
        return AlertRule(duration_seconds=self.duration, **self.model_dump(exclude={"duration"}))


class AlertEventWire(WireModel):
    id: WireId
    rule_id: WireId
    rule_name: str
    node_id: str
    metric: str
    value: float
    threshold: float
    condition: Condition
    fired_at: Timestamp
    resolved_at: Timestamp | None

    # The original API has no GPU index on events: it is dropped going out and absent coming in.
    @classmethod
    def from_model(cls, event: AlertEvent) -> AlertEventWire:
        return cls(**event.model_dump(include=set(cls.model_fields)))

    def to_model(self) -> AlertEvent:
        return AlertEvent(**self.model_dump())


# ---- /api/metrics/slurm --------------------------------------------------------------------


class SlurmNodeWire(WireModel):
    node: str
    status: SlurmNodeStatus
    cpus_alloc: int
    cpus_idle: int
    cpus_total: int
    mem_alloc: int | float = Field(description="MB")
    mem_total: int | float = Field(description="MB")


class SlurmQueueWire(WireModel):
    pending: int
    running: int
    completed: int
    failed: int
    cancelled: int


class SlurmWire(WireModel):
    nodes: list[SlurmNodeWire]
    cpus_total: int
    cpus_alloc: int
    cpus_idle: int
    nodes_total: int
    nodes_idle: int
    nodes_alloc: int
    queue: SlurmQueueWire

