"""One node rendered in full for the model: what ``get_node_details`` returns.

Every field the source reported for each GPU (fields equal on all GPUs written once, so the GPU
that differs stands out), the model's limits, the node's anomalies (the same ones its line in
``get_current_metrics`` names), its network ports, its Slurm state and the jobs running on it.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from gpudoc.tools.compact import fit_to_budget, free_text, iso, r1, rint, without_none
from gpudoc.tools.models import GpuMetrics, NodeMetrics, SlurmJob, SlurmNode, clock_event_names
from gpudoc.tools.render_metrics import node_anomalies, node_spec

MAX_XID_EVENTS_SHOWN = 5

_Format = Callable[[Any], Any]


def _ratio(value: float) -> float:
    """Activity ratios (0-1) to two decimals: one decimal would hide a tensor pipe at 4 %."""
    return round(float(value), 2) + 0.0


def _xid_events(events: Any) -> list[dict[str, Any]]:
    newest = sorted(events, key=lambda e: e.timestamp, reverse=True)[:MAX_XID_EVENTS_SHOWN]
    return [
        without_none(
            {"xid": e.xid, "time": iso(e.timestamp), "msg": free_text(e.message) or None, "job": e.job_id}
        )
        for e in newest
    ]


#: Every GpuMetrics field: its key in the output and how its value is written.
#: ``node_id`` and ``model`` are given once per node instead.
GPU_FIELD_KEYS: dict[str, tuple[str, _Format]] = {
    "index": ("gpu", int),
    "uuid": ("uuid", str),
    "pci_bus_id": ("pci", str),
    "utilization_pct": ("util_pct", r1),
    "memory_used_mib": ("mem_used_mib", rint),
    "memory_total_mib": ("mem_total_mib", rint),
    "temperature_c": ("temp_c", r1),
    "power_w": ("power_w", r1),
    "memory_util_pct": ("mem_util_pct", r1),
    "memory_temperature_c": ("mem_temp_c", r1),
    "power_limit_w": ("power_limit_w", r1),
    "default_power_limit_w": ("default_power_limit_w", r1),
    "sm_clock_mhz": ("sm_clock_mhz", rint),
    "mem_clock_mhz": ("mem_clock_mhz", rint),
    "clock_event_reasons": ("clock_events", clock_event_names),
    "last_xid": ("last_xid", int),
    "xid_events": ("xids", _xid_events),
    "correctable_remapped_rows": ("corr_remapped_rows", int),
    "uncorrectable_remapped_rows": ("uncorr_remapped_rows", int),
    "remap_pending": ("remap_pending", bool),
    "remap_failure": ("remap_failure", bool),
    "ecc_sbe_volatile": ("ecc_sbe_volatile", int),
    "ecc_dbe_volatile": ("ecc_dbe_volatile", int),
    "pcie_link_gen": ("pcie_gen", int),
    "pcie_link_gen_max": ("pcie_gen_max", int),
    "pcie_link_width": ("pcie_width", int),
    "pcie_link_width_max": ("pcie_width_max", int),
    "pcie_replay_count": ("pcie_replays", int),
    "nvlink_error_count": ("nvlink_errors", int),
    "nvlink_crc_flit_errors": ("nvlink_crc_flit_errors", int),
    "nvlink_crc_data_errors": ("nvlink_crc_data_errors", int),
    "nvlink_replay_errors": ("nvlink_replay_errors", int),
    "nvlink_recovery_errors": ("nvlink_recovery_errors", int),
    "nvlink_links_down": ("nvlink_links_down", int),
    "nvlink_bandwidth_gbps": ("nvlink_bw_gbps", r1),
    "memory_reserved_mib": ("mem_reserved_mib", rint),
    "tensor_active": ("tensor_active", _ratio),
    "job_id": ("job", str),
    "stale": ("stale", bool),
    "last_seen": ("last_seen", iso),
}
GPU_FIELDS_PER_NODE = frozenset({"node_id", "model"})
#: readings left out of the tool output: they restate others (graphics and DRAM activity follow
#: utilisation and memory utilisation), count since boot (energy) or describe load rather than
#: health (PCIe throughput, video engines), and every number shown is one more the model can misquote
GPU_FIELDS_LEFT_OUT = frozenset({"graphics_active", "dram_active", "energy_mj", "pcie_tx_bytes_per_s",
                                 "pcie_rx_bytes_per_s", "encoder_util_pct", "decoder_util_pct"})

#: Keys every GPU entry keeps: its identity and its core readings. Any other field with one
#: value on every GPU of the node is written once under ``same_for_all_gpus``, so a GPU that
#: differs (a lowered power limit, a narrower link, an XID) stands out instead of hiding in
#: eight copies of the same zeros.
PER_GPU_KEYS = frozenset({"gpu", "uuid", "pci", "util_pct", "mem_used_mib", "temp_c", "power_w"})


def gpu_details(gpu: GpuMetrics, node_model: str | None) -> dict[str, Any]:
    """Every field the source reported for one GPU; ``None`` fields omitted, ``stale`` only when true."""
    out: dict[str, Any] = {}
    for attribute, (key, fmt) in GPU_FIELD_KEYS.items():
        value = getattr(gpu, attribute)
        if value is None or (attribute == "stale" and not value):
            continue
        out[key] = fmt(value)
    if gpu.model != node_model:
        out["model"] = gpu.model
    return out


def slurm_node_for(node: NodeMetrics, slurm_nodes: Sequence[SlurmNode]) -> SlurmNode | None:
    """The Slurm node of a metrics node: Slurm names nodes by node id or by hostname, or gives
    the hostname as NodeHostname (only when one Slurm node has it: several slurmd may share a host)."""
    for candidate in slurm_nodes:
        if candidate.name in (node.node_id, node.hostname):
            return candidate
    by_host = [c for c in slurm_nodes if c.hostname is not None and c.hostname in (node.node_id, node.hostname)]
    return by_host[0] if len(by_host) == 1 else None


def render_slurm_node(slurm_node: SlurmNode) -> dict[str, Any]:
    return without_none(
        {
            "state": slurm_node.state,
            "sinfo": slurm_node.sinfo_state,
            "reason": free_text(slurm_node.reason),
            "reason_since": iso(slurm_node.reason_set_at),
            "reason_by": slurm_node.reason_set_by,
            "gpus_total": slurm_node.gpus_total,
            "gpus_alloc": slurm_node.gpus_alloc,
            "cpus_alloc": slurm_node.cpus_alloc,
            "cpus_total": slurm_node.cpus_total,
            "partitions": slurm_node.partitions or None,
        }
    )


def render_job_on_node(job: SlurmJob, slurm_name: str) -> dict[str, Any]:
    return without_none(
        {
            "id": job.job_id,
            "name": free_text(job.name),
            "user": job.user,
            "state": job.state,
            "gpus_here": job.gpu_indices.get(slurm_name),
            "started": iso(job.start_time),
        }
    )


def render_node_details(
    node: NodeMetrics,
    slurm_node: SlurmNode | None,
    jobs: Sequence[SlurmJob] | None,
    slurm_note: str | None = None,
) -> dict[str, Any]:
    """One node: every GPU with all its fields, the model's limits, its Slurm state and jobs."""
    model = node.gpus[0].model if node.gpus else None
    spec = node_spec(node)
    payload: dict[str, Any] = {"node": node.node_id}
    if node.hostname != node.node_id:
        payload["host"] = node.hostname
    payload["time"] = iso(node.timestamp)
    if not node.reachable:
        payload["reachable"] = False
    if model:
        payload["model"] = model
    if spec is not None:
        payload["limits"] = {
            "max_operating_c": spec.max_operating_temp_c,
            "slowdown_c": spec.slowdown_temp_c,
            "shutdown_c": spec.shutdown_temp_c,
            "mem_max_c": spec.memory_max_temp_c,
            "power_limit_w": spec.power_limit_w,
        }
    if node.driver_version:
        payload["driver"] = node.driver_version
    anomalies = node_anomalies(node)
    if anomalies:
        payload["anomalies"] = anomalies
    gpus = [gpu_details(gpu, model) for gpu in node.gpus]
    shared = {
        key: value
        for key, value in (gpus[0].items() if gpus else ())
        if key not in PER_GPU_KEYS and all(key in g and g[key] == value for g in gpus)
    }
    if len(gpus) > 1 and shared:
        payload["same_for_all_gpus"] = shared
        gpus = [{k: v for k, v in g.items() if k not in shared} for g in gpus]
    payload["gpus"] = gpus
    if node.network:
        payload["network"] = [
            without_none(
                {
                    "device": p.device,
                    "port": p.port,
                    "state": p.state_id,
                    "phys_state": p.physical_state_id,
                    "link_downed": p.link_downed_total,
                    "link_recovered": p.link_error_recovery_total,
                    "rate_gbps": r1(p.rate_gbps),
                }
            )
            for p in node.network
        ]
    if slurm_node is not None:
        payload["slurm"] = render_slurm_node(slurm_node)
        if jobs is not None:
            on_node = [j for j in jobs if slurm_node.name in j.nodes and j.state in ("RUNNING", "COMPLETING")]
            payload["jobs"] = [render_job_on_node(j, slurm_node.name) for j in on_node]
    elif slurm_note:
        payload["slurm"] = slurm_note

    jobs_list: list[Any] = payload.get("jobs", [])

    def build(shown: int) -> dict[str, Any]:
        if shown == len(jobs_list):
            return payload
        return {
            **payload,
            "jobs": jobs_list[:shown],
            "truncated": f"showing {shown} of {len(jobs_list)} jobs on this node; "
            f"get_slurm_jobs(node='{node.node_id}') lists them with filters",
        }

    return fit_to_budget(build, len(jobs_list))
