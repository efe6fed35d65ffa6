"""The GPU Watchdog REST API's JSON shapes, field for field, as the real backend sends them.

Why one module for both directions: the client (``WatchdogSource``) reads these shapes and the
simulator's server (``gpudoc sim``) writes them. What they say is taken from the real backend
(``tests/fixtures/gpu_watchdog/``, recorded from it, and its public source): camelCase names,
its mixed spellings (``memoryUsedMB`` in current metrics, ``memoryUsedMb`` in history), times
as ISO 8601 strings on node readings and ``lastUpdated`` but epoch-millisecond numbers in
history points and ranges, alert rules and events, numeric event ids, and the full Slurm
object (``nodes``, ``queue``) under ``slurm`` in ``/api/metrics/current``. The contract tests
check the simulator's responses and the recordings against one independent description.

Reading is lenient (``sources.wire``), because one odd field must not cost the whole
cluster: an optional field that is missing or unusable becomes ``None`` and is listed (``"slurm.
queue not reported by this backend"``); a record without what identifies it (a GPU without its
index, a Slurm node without its name, an event without its rule) is left out of its list, and
listed. Readings are optional, so one unreadable value (``"utilization": "N/A"``) costs that
value, not the GPU or the Slurm node.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from pydantic import ConfigDict, Field
from pydantic.alias_generators import to_camel

from gpudoc.tools.models import AlertCondition, AlertEvent, AlertRule, GpuSample, GpuSeries
from gpudoc.tools.sources.wire import EpochMs, IsoTime, LenientModel, Records, TextId, epoch_ms


class WireModel(LenientModel):
    """camelCase on the wire (``to_camel``), snake_case in Python; numbers written as
    JavaScript writes them (``81920``, not ``81920.0``)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    def to_wire(self, *, exclude: set[str] | None = None) -> dict[str, Any]:
        return _js_numbers(super().to_wire(exclude=exclude))


def _js_numbers(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, dict):
        return {key: _js_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_js_numbers(item) for item in value]
    return value


# ---- GET /api/cluster/status -------------------------------------------------------------------


class SlurmSummaryWire(WireModel):
    cpus_total: int | None = None
    cpus_alloc: int | None = None
    cpus_idle: int | None = None
    nodes_total: int | None = None
    jobs_pending: int | None = None
    jobs_running: int | None = None


class ClusterStatusWire(WireModel):
    """The backend's one-glance summary. Its ``healthy`` is true while any node reports, and
    ``nodeCount``/``gpuCount`` count only the nodes that report."""

    healthy: bool | None = None
    node_count: int | None = None
    gpu_count: int | None = None
    avg_utilization: float | None = None
    avg_temperature: float | None = None
    memory_used_gb: float | None = Field(None, alias="memoryUsedGB")
    memory_total_gb: float | None = Field(None, alias="memoryTotalGB")
    slurm: SlurmSummaryWire | None = None
    last_updated: IsoTime | None = None


# ---- GET /api/metrics/current, /api/metrics/gpu/{nodeId}, /api/metrics/slurm --------------------


class GpuWire(WireModel):
    """One GPU of a node, as the collector parsed it from the node's exporter.

    The collector writes 0 for a series the exporter lacks: without ``DCGM_FI_DEV_FB_TOTAL``
    (not in dcgm-exporter's default set) ``memoryTotalMB`` is 0, and without a ``gpu_name``
    label ``gpuName`` is ``"Unknown"``.
    """

    record_key: ClassVar[str | None] = "gpu"
    null_is_unusable: ClassVar[bool] = True

    gpu: str = Field(description='the GPU index as a string, "0"')
    gpu_name: str | None = Field(None, description="spaces written as underscores by the exporter")
    utilization: float | None = None
    memory_utilization: float | None = None
    memory_used_mb: float | None = Field(None, alias="memoryUsedMB")
    memory_free_mb: float | None = Field(None, alias="memoryFreeMB")
    memory_total_mb: float | None = Field(None, alias="memoryTotalMB")
    temperature_c: float | None = Field(None, alias="temperatureC")
    power_usage_w: float | None = Field(None, alias="powerUsageW")
    sm_clock_mhz: float | None = Field(None, alias="smClockMHz")
    mem_clock_mhz: float | None = Field(None, alias="memClockMHz")


class NodeWire(WireModel):
    """A node whose exporter answered the last scrape; ``nodeId`` is ``node-<position in the
    collector's endpoint list>``, ``hostname`` comes from the endpoint's URL."""

    record_key: ClassVar[str | None] = "node_id"

    node_id: str
    hostname: str | None = None
    gpus: Records[GpuWire] | None = None
    timestamp: IsoTime | None = None


class SlurmNodeWire(WireModel):
    """One Slurm node. ``status`` is the exporter's label: ``idle|alloc|mix|down|drain`` as the
    backend types it, though prometheus-slurm-exporter writes sinfo's long names (``allocated``,
    ``drained``, ``down*``), which the backend passes through."""

    record_key: ClassVar[str | None] = "node"
    null_is_unusable: ClassVar[bool] = True

    node: str
    status: str | None = None
    cpus_alloc: int | None = None
    cpus_idle: int | None = None
    cpus_total: int | None = None
    mem_alloc: float | None = Field(None, description="MB")
    mem_total: float | None = Field(None, description="MB")


class SlurmQueueWire(WireModel):
    null_is_unusable: ClassVar[bool] = True

    pending: int | None = None
    running: int | None = None
    completed: int | None = None
    failed: int | None = None
    cancelled: int | None = None


class SlurmWire(WireModel):
    """``GET /api/metrics/slurm``, and ``slurm`` in ``GET /api/metrics/current``."""

    nodes: Records[SlurmNodeWire] | None = None
    cpus_total: int | None = None
    cpus_alloc: int | None = None
    cpus_idle: int | None = None
    nodes_total: int | None = None
    nodes_idle: int | None = None
    nodes_alloc: int | None = None
    queue: SlurmQueueWire | None = None


class CurrentMetricsWire(WireModel):
    """The collector's whole state: reporting nodes, Slurm (``null`` without Slurm), when."""

    nodes: Records[NodeWire] | None = None
    slurm: SlurmWire | None = None
    last_updated: IsoTime | None = None


# ---- GET /api/cluster/nodes --------------------------------------------------------------------


class GpuSummaryWire(WireModel):
    record_key: ClassVar[str | None] = "index"

    index: str
    name: str | None = None
    utilization: float | None = None
    memory_used_mb: float | None = Field(None, alias="memoryUsedMB")
    memory_total_mb: float | None = Field(None, alias="memoryTotalMB")
    temperature_c: float | None = Field(None, alias="temperatureC")
    power_usage_w: float | None = Field(None, alias="powerUsageW")


class NodeSummaryWire(WireModel):
    record_key: ClassVar[str | None] = "node_id"

    node_id: str
    hostname: str | None = None
    gpu_count: int | None = None
    gpus: Records[GpuSummaryWire] | None = None
    timestamp: IsoTime | None = None


# ---- GET /api/metrics/history/gpu and /api/metrics/history/slurm ---------------------------------


class HistoryPointWire(WireModel):
    timestamp: EpochMs
    utilization: float
    memory_used_mb: float  # "memoryUsedMb": the history endpoint spells it this way
    memory_total_mb: float
    temperature_c: float = Field(alias="temperatureC")
    power_usage_w: float = Field(alias="powerUsageW")


class GpuHistoryWire(WireModel):
    """One GPU's stored points, newest first as the backend sends them."""

    node_id: str
    gpu_index: int
    data: Records[HistoryPointWire]

    # Both directions of the history mapping live here; the API carries no clocks or counters.
    @staticmethod
    def json_of(series: GpuSeries, start: datetime, end: datetime) -> dict[str, Any]:
        """One GPU's wire JSON, its samples from ``start`` to ``end`` newest first, as the backend
        sends them. Written directly rather than through the models: the samples are typed facts
        already, and hours of history are tens of thousands of points."""
        return {
            "nodeId": series.node_id,
            "gpuIndex": series.gpu_index,
            "data": [
                {
                    "timestamp": epoch_ms(sample.timestamp),
                    "utilization": _js_numbers(sample.utilization_pct),
                    "memoryUsedMb": _js_numbers(sample.memory_used_mib),
                    "memoryTotalMb": _js_numbers(sample.memory_total_mib),
                    "temperatureC": _js_numbers(sample.temperature_c),
                    "powerUsageW": _js_numbers(sample.power_w),
                }
                for sample in reversed(series.samples)
                if start <= sample.timestamp <= end
            ],
        }

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
    start: EpochMs
    end: EpochMs


class HistoryWire(WireModel):
    range: TimeRangeWire | None = None
    data: Records[GpuHistoryWire]


class SlurmHistoryPointWire(WireModel):
    timestamp: EpochMs
    cpus_total: int
    cpus_alloc: int
    cpus_idle: int
    nodes_total: int
    nodes_idle: int
    nodes_alloc: int
    queue_pending: int
    queue_running: int
    queue_completed: int
    queue_failed: int


class SlurmHistoryDataWire(WireModel):
    data: Records[SlurmHistoryPointWire]


class SlurmHistoryWire(WireModel):
    """Note the nested ``data.data``: the backend wraps the points once more than for GPUs."""

    range: TimeRangeWire
    data: SlurmHistoryDataWire


# ---- /api/alerts and /api/alerts/events/history ------------------------------------------------

#: The metrics the backend's alert rules may name (its ``AlertMetricSchema``).
WATCHDOG_ALERT_METRICS = (
    "gpu_utilization",
    "gpu_memory_used",
    "gpu_memory_percent",
    "gpu_temperature",
    "gpu_power",
    "slurm_cpus_alloc",
    "slurm_queue_pending",
    "slurm_queue_running",
)


class AlertRuleWire(WireModel):
    record_key: ClassVar[str | None] = "id"

    id: TextId
    name: str
    metric: str
    condition: AlertCondition
    threshold: float
    duration: int | None = Field(None, description="seconds the condition must hold before the rule fires")
    node_filter: str | None = Field(None, description="a regular expression over node ids")
    enabled: bool
    created_at: EpochMs
    updated_at: EpochMs

    # The API names the hold time `duration`; everything else maps field for field.
    @classmethod
    def from_model(cls, rule: AlertRule) -> AlertRuleWire:
        return cls(duration=rule.duration_seconds, **rule.model_dump(include=set(cls.model_fields) - {"duration"}))

    def to_model(self) -> AlertRule:
        return AlertRule(duration_seconds=self.duration or 0, **self.model_dump(exclude={"duration"}))


class AlertEventWire(WireModel):
    """One firing. The backend's ids are integers; it has no GPU index on events."""

    record_key: ClassVar[str | None] = "id"

    id: int | str
    rule_id: TextId
    rule_name: str
    node_id: str
    metric: str
    value: float
    threshold: float
    condition: AlertCondition
    fired_at: EpochMs
    resolved_at: EpochMs | None = None

    @classmethod
    def from_model(cls, event: AlertEvent) -> AlertEventWire:
        wire_id: int | str = int(event.id) if event.id.isdigit() else event.id
        return cls(id=wire_id, **event.model_dump(include=set(cls.model_fields) - {"id"}))

    def to_model(self) -> AlertEvent:
        return AlertEvent(id=str(self.id), **self.model_dump(exclude={"id"}))


# ---- GET /health -------------------------------------------------------------------------------


class HealthWire(WireModel):
    status: str
    timestamp: IsoTime

