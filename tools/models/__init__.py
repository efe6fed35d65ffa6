"""Typed facts about a GPU cluster: the vocabulary every source, tool and analyzer shares.

Why one package: the simulator, the sources, the analyzers and the LLM tools must agree on units
and on what "absent" means. Every optional field is ``None`` when the source does not report it
(the GPU Watchdog API has no XIDs or ECC, for example) so that nothing downstream can mistake a
missing reading for a healthy zero. One module per area: ``gpu``, ``nodes``, ``slurm``,
``alerts``, ``cluster``; ``text`` is where user-written cluster text is made safe.

Units are in the field names: ``_pct`` 0-100, ``_c`` degrees Celsius, ``_w`` watts, ``_mib``
mebibytes, ``_mhz`` megahertz. Times are timezone-aware UTC datetimes.
"""

from gpudoc.tools.models.alerts import AlertCondition, AlertEvent, AlertRule, AlertState, Silence
from gpudoc.tools.models.base import Model
from gpudoc.tools.models.cluster import ClusterStatus, SlurmSummary
from gpudoc.tools.models.gpu import (
    A100_80GB,
    GPU_MODELS,
    H100_80GB,
    ClockEventReason,
    GpuMetrics,
    GpuModelSpec,
    GpuSample,
    GpuSeries,
    XidEvent,
    clock_event_names,
    spec_for_model_name,
)
from gpudoc.tools.models.nodes import NetworkPort, NodeMetrics
from gpudoc.tools.models.slurm import (
    SLURM_BASE_STATES,
    SLURM_NODE_FLAGS,
    JobState,
    QueueCounts,
    SchedulerHealth,
    SlurmJob,
    SlurmNode,
    SlurmPartition,
    SlurmSnapshot,
    node_sum,
)
from gpudoc.tools.models.text import (
    MAX_CLUSTER_NAME_CHARS,
    MAX_CLUSTER_TEXT_CHARS,
    ClusterName,
    ClusterText,
    ComposedText,
    clean_cluster_text,
    neutralise_markup,
)

__all__ = [
    "A100_80GB", "GPU_MODELS", "H100_80GB", "MAX_CLUSTER_NAME_CHARS", "MAX_CLUSTER_TEXT_CHARS", "SLURM_BASE_STATES",
    "SLURM_NODE_FLAGS", "SchedulerHealth",
    "AlertCondition", "AlertEvent", "AlertRule", "AlertState", "ClockEventReason", "ClusterName", "ClusterStatus",
    "ClusterText", "ComposedText", "GpuMetrics", "GpuModelSpec", "GpuSample", "GpuSeries", "JobState", "Model",
    "NetworkPort", "NodeMetrics", "QueueCounts", "Silence", "SlurmJob", "SlurmNode", "SlurmPartition",
    "SlurmSnapshot", "SlurmSummary", "XidEvent", "clean_cluster_text", "clock_event_names", "neutralise_markup", "node_sum",
    "spec_for_model_name",
]
