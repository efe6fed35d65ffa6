"""Current readings rendered for the model: cluster status and one summary line per node.

Why per-node summaries for the whole cluster: 64 nodes x 8 GPUs x 30 fields is a dump no model
reads well. A node line carries what decides where to look next (utilisation, temperature and
power min/avg/max, the hottest GPU, and anomalies stated with their numbers); the full detail of
one node is one ``get_node_details`` call away (``tools/render_node_details.py``).
"""

from __future__ import annotations

from statistics import fmean
from typing import Any, Iterable, Sequence

from gpudoc.tools.compact import fit_to_budget, hhmm, iso, r1, without_none
from gpudoc.tools.models import (
    ClusterStatus,
    GpuMetrics,
    GpuModelSpec,
    NodeMetrics,
    clock_event_names,
    spec_for_model_name,
)

#: Clock-event bits that are normal operation, not a symptom.
BENIGN_CLOCK_EVENTS = frozenset({"gpu_idle", "sync_boost", "display_clocks"})

#: Utilisation above which a narrowed PCIe link matters (an idle GPU may legitimately downshift).
PCIE_UNDER_LOAD_UTIL_PCT = 20.0

MAX_ANOMALIES_PER_NODE = 6



def render_cluster_status(status: ClusterStatus) -> dict[str, Any]:
    slurm = status.slurm
    return without_none(
        {
            "healthy": status.healthy,
            "nodes": status.node_count,
            "gpus": status.gpu_count,
            "util_pct_avg": r1(status.avg_utilization_pct),
            "temp_c_avg": r1(status.avg_temperature_c),
            "mem_used_gb": r1(status.memory_used_gb),
            "mem_total_gb": r1(status.memory_total_gb),
            "slurm": None
            if slurm is None
            else without_none({
                "nodes": slurm.nodes_total,
                "cpus_total": slurm.cpus_total,
                "cpus_alloc": slurm.cpus_alloc,
                "cpus_idle": slurm.cpus_idle,
                "jobs_running": slurm.jobs_running,
                "jobs_pending": slurm.jobs_pending,
            }),
            "updated": iso(status.last_updated),
        }
    )


def _known(values: Iterable[float | None]) -> list[float]:
    """The readings there are: one a source sent unreadable (``None``) is left out, never read as 0."""
    return [value for value in values if value is not None]


def _stats(values: Sequence[float | None]) -> dict[str, float | None] | None:
    known = _known(values)
    if not known:
        return None
    stats: dict[str, Any] = {"min": r1(min(known)), "avg": r1(fmean(known)), "max": r1(max(known))}
    if len(known) < len(values):
        stats["of"] = f"{len(known)} of {len(values)} GPUs (the rest not reported)"
    return stats


def node_spec(node: NodeMetrics) -> GpuModelSpec | None:
    return spec_for_model_name(node.gpus[0].model) if node.gpus else None


def gpu_anomalies(gpu: GpuMetrics, spec: GpuModelSpec | None) -> list[str]:
    """Facts about one GPU that deserve a look, each with its number; strongest first."""
    tag = f"gpu-{gpu.index}"
    found: list[str] = []
    if gpu.stale:
        seen = f" (last update {hhmm(gpu.last_seen)})" if gpu.last_seen else ""
        found.append(f"{tag} stale: no fresh metrics{seen}")
    if gpu.xid_events:
        latest = max(gpu.xid_events, key=lambda event: event.timestamp)
        found.append(f"{tag} XID {latest.xid} at {hhmm(latest.timestamp)}")
    elif gpu.last_xid:
        found.append(f"{tag} last XID {gpu.last_xid}")
    if gpu.remap_failure:
        found.append(f"{tag} row remap failure")
    if gpu.uncorrectable_remapped_rows:
        found.append(f"{tag} uncorrectable remapped rows {gpu.uncorrectable_remapped_rows}")
    if gpu.remap_pending:
        found.append(f"{tag} row remap pending (applies at next reset)")
    if gpu.ecc_dbe_volatile:
        found.append(f"{tag} double-bit ECC errors {gpu.ecc_dbe_volatile}")
    if gpu.nvlink_links_down:
        found.append(f"{tag} NVLink links down {gpu.nvlink_links_down}")
    if spec is not None and gpu.temperature_c is not None and gpu.temperature_c >= spec.max_operating_temp_c:
        found.append(f"{tag} {gpu.temperature_c:.1f} °C >= max operating {spec.max_operating_temp_c:.0f} °C")
    if (
        spec is not None
        and gpu.memory_temperature_c is not None
        and gpu.memory_temperature_c >= spec.memory_max_temp_c
    ):
        found.append(f"{tag} memory {gpu.memory_temperature_c:.1f} °C >= max {spec.memory_max_temp_c:.0f} °C")
    events = [name for name in clock_event_names(gpu.clock_event_reasons) if name not in BENIGN_CLOCK_EVENTS]
    if events:
        found.append(f"{tag} clock events {','.join(events)}")
    if (
        gpu.power_limit_w is not None
        and gpu.default_power_limit_w is not None
        and gpu.power_limit_w < gpu.default_power_limit_w
    ):
        found.append(
            f"{tag} power limit {gpu.power_limit_w:.0f} W < default {gpu.default_power_limit_w:.0f} W"
        )
    if (
        gpu.pcie_link_width is not None
        and gpu.pcie_link_width_max is not None
        and gpu.pcie_link_width < gpu.pcie_link_width_max
        and gpu.utilization_pct is not None
        and gpu.utilization_pct >= PCIE_UNDER_LOAD_UTIL_PCT
    ):
        found.append(
            f"{tag} PCIe x{gpu.pcie_link_width} of x{gpu.pcie_link_width_max} "
            f"at {gpu.utilization_pct:.0f}% util"
        )
    return found


def node_anomalies(node: NodeMetrics) -> list[str]:
    if not node.reachable:
        return ["node unreachable: its exporters stopped answering"]
    spec = node_spec(node)
    found = [item for gpu in node.gpus for item in gpu_anomalies(gpu, spec)]
    for port in node.network or []:
        if port.state_id != 4:
            found.append(f"network {port.device}/{port.port} state {port.state_id} (4 = active)")
        if port.link_downed_total:
            found.append(f"network {port.device}/{port.port} link downed {port.link_downed_total} times")
    return found


def node_current_summary(node: NodeMetrics) -> dict[str, Any]:
    """One node's current readings in one entry (stale GPUs are left out of the statistics)."""
    entry: dict[str, Any] = {"node": node.node_id}
    if node.hostname and node.hostname != node.node_id:
        entry["host"] = node.hostname
    entry["gpus"] = len(node.gpus)
    live = [gpu for gpu in node.gpus if not gpu.stale] if node.reachable else []
    if live:
        entry["util_pct"] = _stats([g.utilization_pct for g in live])
        entry["temp_c"] = _stats([g.temperature_c for g in live])
        entry["power_w"] = _stats([g.power_w for g in live])
        entry["mem_used_pct_avg"] = r1(
            fmean(used)
            if (used := [100.0 * g.memory_used_mib / g.memory_total_mib for g in live
                         if g.memory_total_mib and g.memory_used_mib is not None])
            else None
        )
        hot = [g for g in live if g.temperature_c is not None]
        if hot:
            hottest = max(hot, key=lambda g: g.temperature_c or 0.0)
            entry["hottest"] = {"gpu": hottest.index, "temp_c": r1(hottest.temperature_c)}
    anomalies = node_anomalies(node)
    if anomalies:
        shown = anomalies[:MAX_ANOMALIES_PER_NODE]
        if len(anomalies) > MAX_ANOMALIES_PER_NODE:
            shown.append(
                f"+{len(anomalies) - MAX_ANOMALIES_PER_NODE} more: get_node_details('{node.node_id}')"
            )
        entry["anomalies"] = shown
    return without_none(entry)


def _priority(entry: dict[str, Any]) -> tuple[float, ...]:
    """Nodes with anomalies first (most first), then the hottest."""
    return (-len(entry.get("anomalies", [])), -entry.get("temp_c", {}).get("max", 0.0))


def render_current_metrics(nodes: Sequence[NodeMetrics]) -> dict[str, Any]:
    """The whole cluster, one entry per node, within the output budget."""
    entries = [node_current_summary(node) for node in nodes]
    total_gpus = sum(len(node.gpus) for node in nodes)
    live = [g for node in nodes if node.reachable for g in node.gpus if not g.stale]
    header: dict[str, Any] = {
        "time": iso(max((node.timestamp for node in nodes), default=None)),
        "nodes": len(nodes),
        "gpus": total_gpus,
    }
    if live:
        header["cluster"] = {
            "util_pct_avg": r1(fmean(utils)) if (utils := _known(g.utilization_pct for g in live)) else None,
            "temp_c_max": r1(max(temps)) if (temps := _known(g.temperature_c for g in live)) else None,
            "power_w_total": r1(sum(powers)) if (powers := _known(g.power_w for g in live)) else None,
        }
        header["cluster"] = without_none(header["cluster"])
        unreported = [f"{name} of {count} GPU(s)" for name, count in (
            ("utilization", sum(g.utilization_pct is None for g in live)),
            ("temperature", sum(g.temperature_c is None for g in live)),
            ("power", sum(g.power_w is None for g in live))) if count]
        if unreported:  # each figure leaves out only the GPUs that lack its own reading
            header["cluster"]["partial"] = "not reported, so left out of these: " + ", ".join(unreported)
    header["nodes_with_anomalies"] = sum(1 for e in entries if "anomalies" in e)
    ranked = sorted(entries, key=_priority)

    def build(shown: int) -> dict[str, Any]:
        if shown == len(entries):
            return {**header, "per_node": entries}
        rest = ranked[shown:]
        rest_temps = [e["temp_c"]["max"] for e in rest if "temp_c" in e]
        return {
            **header,
            "truncated": (
                f"showing {shown} of {len(entries)} nodes: nodes with anomalies first, then the "
                f"hottest; the rest are summarised in not_shown. Use get_node_details(node_id) "
                f"for one node or diagnose_cluster for problems."
            ),
            "per_node": ranked[:shown],
            "not_shown": without_none(
                {
                    "nodes": len(rest),
                    "with_anomalies": sum(1 for e in rest if "anomalies" in e),
                    "temp_c_max": max(rest_temps) if rest_temps else None,
                }
            ),
        }

    return fit_to_budget(build, len(entries))
