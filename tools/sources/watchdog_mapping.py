"""GPU Watchdog wire shapes to gpudoc's facts, value by value, saying what had to give.

Why a module of its own: the HTTP client (``watchdog.py``) fetches and reads, this module
decides what each wire value means. Three things need care because the real backend does them:

* it drops a node whose exporter cannot be scraped, so its ``nodeCount`` counts reporting nodes
  and its ``healthy`` is true while any node reports; Slurm's node list still names the silent
  node, which becomes ``NodeMetrics(reachable=False)`` here and counts against health;
* its collector writes 0 for a series the exporter lacks (``memoryTotalMB`` without
  ``DCGM_FI_DEV_FB_TOTAL``, the default of NVIDIA's dcgm-exporter) and ``"Unknown"`` for a GPU
  without a ``gpu_name`` label; such values are replaced by what can be derived (used + free)
  or marked unknown, with a note;
* a GPU whose exporter writes only a reading the collector does not parse (a GPU that fell off
  the bus keeps its XID series and nothing else) comes out with every reading 0: that is no
  reading at all, so the GPU is marked stale, never read as an idle GPU at 0 °C;
* its Slurm statuses are the exporter's labels, short (``alloc``) or sinfo's long names
  (``allocated``, ``down*``).
"""

from __future__ import annotations

import re
from datetime import datetime

from gpudoc.tools.models import (
    ClusterStatus,
    GpuMetrics,
    NodeMetrics,
    QueueCounts,
    SlurmNode,
    SlurmSnapshot,
    SlurmSummary,
)
from gpudoc.tools.sources.notes import note
from gpudoc.tools.sources.watchdog_shapes import GpuWire, NodeWire, SlurmNodeWire, SlurmWire

#: the model name a GPU gets when the exporter does not say
UNKNOWN_GPU_MODEL = "unknown"

#: the exporter's Slurm node status (without sinfo's trailing flag characters) to slurmrestd's
#: state array: base state first, then flags
SLURM_STATUS_TO_STATE: dict[str, list[str]] = {
    "idle": ["IDLE"],
    "alloc": ["ALLOCATED"],
    "allocated": ["ALLOCATED"],
    "mix": ["MIXED"],
    "mixed": ["MIXED"],
    "down": ["DOWN"],
    "drain": ["IDLE", "DRAIN"],
    "drained": ["IDLE", "DRAIN"],
    "draining": ["MIXED", "DRAIN"],
    "drng": ["MIXED", "DRAIN"],
    "completing": ["ALLOCATED", "COMPLETING"],
    "comp": ["ALLOCATED", "COMPLETING"],
    "fail": ["DOWN", "FAIL"],
    "failing": ["ALLOCATED", "FAIL"],
    "maint": ["IDLE", "MAINTENANCE"],
    "reserved": ["IDLE", "RESERVED"],
    "resv": ["IDLE", "RESERVED"],
    "planned": ["IDLE", "PLANNED"],
    "future": ["FUTURE"],
    "unknown": ["UNKNOWN"],
}

_RECORD_KEY = re.compile(r"\[[^\]]*\]")


def note_issues(endpoint: str, issues: list[str]) -> None:
    """Pass wire issues on as notes, one line per kind: a field missing on 512 GPUs is one line
    with a count and an example, not 512 lines."""
    groups: dict[str, list[str]] = {}
    for line in issues:
        groups.setdefault(_RECORD_KEY.sub("[*]", line), []).append(line)
    for pattern, lines in groups.items():
        if len(lines) == 1:
            note(f"{endpoint}: {lines[0]}")
        else:
            note(f"{endpoint}: {pattern} ({len(lines)} records, e.g. {_RECORD_KEY.findall(lines[0])})")


def model_name(gpu_name: str | None) -> str | None:
    """The exporter writes spaces as underscores (``NVIDIA_A100-SXM4-80GB``); ``Unknown`` means
    it had no name label."""
    if gpu_name is None or gpu_name.strip().lower() in ("", "unknown"):
        return None
    return gpu_name.replace("_", " ").strip()


def node_metrics(node: NodeWire, fallback_time: datetime) -> NodeMetrics:
    stamp = node.timestamp or fallback_time
    gpus = sorted(node.gpus or [], key=lambda g: _gpu_sort_key(g.gpu))
    return NodeMetrics(
        node_id=node.node_id,
        hostname=node.hostname or node.node_id,
        timestamp=stamp,
        reachable=True,
        gpus=[gpu_metrics(node.node_id, gpu, stamp) for gpu in gpus if gpu.gpu.strip().isdigit()],
    )


def gpu_metrics(node_id: str, gpu: GpuWire, stamp: datetime) -> GpuMetrics:
    """One GPU; a reading the backend sent unreadable is ``None`` (the wire notes say which)."""
    if _no_readings(gpu):
        note(f"{node_id} gpu-{gpu.gpu.strip()}: every reading is 0 or unreadable (0 is the collector's value "
             "for a series its exporter did not write): no current readings, shown as stale")
        return GpuMetrics(
            node_id=node_id, index=int(gpu.gpu), model=model_name(gpu.gpu_name) or UNKNOWN_GPU_MODEL,
            utilization_pct=None, memory_used_mib=None, memory_total_mib=None, temperature_c=None, power_w=None,
            stale=True, last_seen=None,
        )
    model = model_name(gpu.gpu_name)
    if model is None:
        note("GPU model not reported for some GPUs (the exporter has no gpu_name label): "
             "their temperature and power limits are unknown")
    return GpuMetrics(
        node_id=node_id,
        index=int(gpu.gpu),
        model=model or UNKNOWN_GPU_MODEL,
        utilization_pct=gpu.utilization,
        memory_used_mib=gpu.memory_used_mb,
        memory_total_mib=_memory_total(gpu),
        temperature_c=gpu.temperature_c,
        power_w=gpu.power_usage_w,
        memory_util_pct=gpu.memory_utilization,
        sm_clock_mhz=gpu.sm_clock_mhz or None,
        mem_clock_mhz=gpu.mem_clock_mhz or None,
        last_seen=stamp,
    )


def _no_readings(gpu: GpuWire) -> bool:
    """No live GPU reads 0 °C, 0 W and no framebuffer at once: the exporter wrote none of them."""
    return not any((gpu.temperature_c, gpu.power_usage_w, gpu.memory_used_mb, gpu.memory_free_mb,
                    gpu.memory_total_mb))


def _memory_total(gpu: GpuWire) -> float | None:
    if gpu.memory_total_mb:
        return gpu.memory_total_mb
    if gpu.memory_free_mb is not None and gpu.memory_used_mb is not None:
        note("memoryTotalMB is 0 or absent on some GPUs (the exporter sends no DCGM_FI_DEV_FB_TOTAL); "
             "memory used + free stands in for the total")
        return gpu.memory_used_mb + gpu.memory_free_mb
    note("GPU memory total unknown on some GPUs (no usable memoryTotalMB, nor memoryUsedMB and memoryFreeMB): "
         "memory percentages left out")
    return None


def _gpu_sort_key(gpu: str) -> tuple[int, str]:
    return (int(gpu), gpu) if gpu.strip().isdigit() else (1 << 30, gpu)


def with_silent_nodes(nodes: list[NodeMetrics], slurm: SlurmWire | None, as_of: datetime) -> list[NodeMetrics]:
    """Add the Slurm nodes that send no telemetry as unreachable, in Slurm's node order.

    The backend drops a node whose exporter failed its scrape; Slurm still lists it, usually as
    down. Without this the node would be "unknown" exactly when it matters most.
    """
    slurm_nodes = list(slurm.nodes or []) if slurm is not None else []
    known = {node.node_id for node in nodes} | {node.hostname for node in nodes}
    silent = [
        NodeMetrics(node_id=s.node, hostname=s.node, timestamp=as_of, reachable=False)
        for s in slurm_nodes
        if s.node not in known
    ]
    if not silent:
        return nodes
    order = {s.node: i for i, s in enumerate(slurm_nodes)}

    def position(node: NodeMetrics) -> int:
        return order.get(node.node_id, order.get(node.hostname, len(order)))

    return sorted(nodes + silent, key=position)


def slurm_state(node: SlurmNodeWire) -> list[str]:
    """slurmrestd's state array for the exporter's status label (``UNKNOWN`` for one we cannot read)."""
    raw = (node.status or "").strip().lower()
    base = raw.rstrip("*~#%$@!^-+")
    state = SLURM_STATUS_TO_STATE.get(base)
    if state is None:
        shown = f"'{node.status}'" if node.status is not None else "none"
        note(f"Slurm node {node.node}: status {shown} not understood; its state is shown as UNKNOWN")
        return ["UNKNOWN"]
    return state + (["NOT_RESPONDING"] if raw.endswith("*") and "NOT_RESPONDING" not in state else [])


def slurm_snapshot(slurm: SlurmWire, as_of: datetime) -> SlurmSnapshot:
    """Slurm's view as the backend's Slurm metrics carry it. They have no gres, so Slurm's GPU
    counts are not known here: ``gpus_total`` stays ``None``. (Counting the GPUs telemetry shows
    instead would make a node that lost a GPU, or a silent node, look configured that way.)"""
    if slurm.nodes:
        note("Slurm GPU counts (gres) are not reported by GPU Watchdog's Slurm metrics: GPUs per node "
             "come from telemetry only, and a GPU Slurm no longer sees cannot be told from here")
    return SlurmSnapshot(
        nodes=[
            SlurmNode(
                name=node.node,
                state=slurm_state(node),
                cpus_total=node.cpus_total,
                cpus_alloc=node.cpus_alloc,
                memory_total_mb=None if node.mem_total is None else round(node.mem_total),
                memory_alloc_mb=None if node.mem_alloc is None else round(node.mem_alloc),
            )
            for node in slurm.nodes or []
        ],
        jobs=None,
        partitions=None,
        queue=_queue(slurm),
        timestamp=as_of,
    )


def _queue(slurm: SlurmWire) -> QueueCounts:
    counts = slurm.queue.model_dump() if slurm.queue is not None else {}
    missing = [name for name in QueueCounts.model_fields if counts.get(name) is None]
    if missing:
        note(f"Slurm queue counts not reported by this backend: {', '.join(missing)}; shown as unknown (null)")
    return QueueCounts(**{name: counts.get(name) for name in QueueCounts.model_fields})


def cluster_status(nodes: list[NodeMetrics], slurm: SlurmWire | None, last_updated: datetime) -> ClusterStatus:
    """The backend's summary, computed as it computes it, except for what it gets wrong: a node
    that Slurm lists but that sends no telemetry counts as a node and makes the cluster
    unhealthy, as does a Slurm node that is down."""
    reporting = [node for node in nodes if node.reachable]
    silent = [node.node_id for node in nodes if not node.reachable]
    gpus = [gpu for node in reporting for gpu in node.gpus]
    live = [gpu for gpu in gpus if not gpu.stale]
    down = [s.node for s in (slurm.nodes or [] if slurm else []) if "DOWN" in slurm_state(s)]
    if silent or down:
        problems = []
        if silent:
            problems.append(f"{_names(silent)} known to Slurm but sending no telemetry")
        if down:
            problems.append(f"Slurm marks {_names(down)} down")
        note(f"healthy is false: {'; '.join(problems)}. (GPU Watchdog's own status counts only the nodes "
             "that report and calls the cluster healthy while any does; the node count here includes the silent ones.)")
    return ClusterStatus(
        healthy=bool(reporting) and not silent and not down,
        node_count=len(nodes),
        gpu_count=len(gpus),
        avg_utilization_pct=_mean([g.utilization_pct for g in live]),
        avg_temperature_c=_mean([g.temperature_c for g in live]),
        memory_used_gb=round(sum(g.memory_used_mib or 0.0 for g in live) / 1024, 1),
        memory_total_gb=round(sum(g.memory_total_mib or 0.0 for g in live) / 1024, 1),
        slurm=None if slurm is None else _slurm_summary(slurm),
        last_updated=last_updated,
    )


def _slurm_summary(slurm: SlurmWire) -> SlurmSummary:
    queue = slurm.queue
    return SlurmSummary(
        cpus_total=slurm.cpus_total,
        cpus_alloc=slurm.cpus_alloc,
        cpus_idle=slurm.cpus_idle,
        nodes_total=slurm.nodes_total,
        jobs_pending=queue.pending if queue else None,
        jobs_running=queue.running if queue else None,
    )


def _mean(values: list[float | None]) -> float:
    """The mean of the readings there are (an unreadable one is left out, not read as 0)."""
    known = [value for value in values if value is not None]
    return round(sum(known) / len(known), 1) if known else 0.0


def _names(names: list[str], shown: int = 6) -> str:
    text = ", ".join(names[:shown])
    return text + (f" and {len(names) - shown} more" if len(names) > shown else "")
