"""NVLink degradation (domain.md §7.5): links down, error counters climbing, bandwidth below peers.

Why counters from history: NVLink CRC/replay/recovery counters only matter when they move; a
lifetime total says little, a climb within the last hour means a link is failing now.
"""

from __future__ import annotations

from gpudoc.tools.diagnosis.facts import ClusterFacts, counter_climb, live_gpus, median_or_none
from gpudoc.tools.diagnosis.findings import Finding
from gpudoc.tools.diagnosis.rules import finding, gpu_subject, num
from gpudoc.tools.models import GpuMetrics, GpuSeries

#: NVLink errors gained within the history window worth a warning
ERROR_DELTA = 20
#: bandwidth below this fraction of busy peers' median is a degraded fabric path
BANDWIDTH_RATIO = 0.5
LOADED_UTIL_PCT = 50.0

CAUSE = "an NVLink link or NVSwitch path failing (cable/bridge, GPU or switch)"
ACTION = "check nvidia-smi nvlink -e counters, drain and reset the GPU/fabric; a persistent error is hardware (RMA)"


def analyze_nvlink(facts: ClusterFacts) -> list[Finding]:
    findings: list[Finding] = []
    for node in facts.nodes:
        gpus = live_gpus(node)
        for gpu in gpus:
            evidence = _evidence(gpu, gpus, facts.series(gpu.node_id, gpu.index))
            if not evidence:
                continue
            severity = "critical" if gpu.nvlink_links_down else "warning"
            title = (f"{gpu.nvlink_links_down} NVLink link(s) down" if gpu.nvlink_links_down
                     else "NVLink errors climbing")
            findings.append(finding("gpu.nvlink_error", severity, gpu_subject(gpu.node_id, gpu.index),
                                    title, evidence, CAUSE, ACTION))
    return findings


def _evidence(gpu: GpuMetrics, gpus: list[GpuMetrics], series: GpuSeries | None) -> list[str]:
    evidence: list[str] = []
    if gpu.nvlink_links_down:
        evidence.append(f"{gpu.nvlink_links_down} NVLink link(s) down")
    climb = _error_climb(series)
    if climb:
        evidence.append(climb)
    if evidence and gpu.nvlink_bandwidth_gbps is not None:
        peers = [p.nvlink_bandwidth_gbps for p in gpus if p.index != gpu.index
                 and p.nvlink_bandwidth_gbps is not None and (p.utilization_pct or 0.0) >= LOADED_UTIL_PCT]
        peer_median = median_or_none(peers)  # type: ignore[arg-type]
        if peer_median and gpu.nvlink_bandwidth_gbps < BANDWIDTH_RATIO * peer_median:
            evidence.append(f"NVLink bandwidth {num(gpu.nvlink_bandwidth_gbps)} GB/s vs peers' median {num(peer_median)} GB/s")
    return evidence


def _error_climb(series: GpuSeries | None) -> str | None:
    climb = counter_climb(series, "nvlink_error_count")
    if climb is None or climb.gained < ERROR_DELTA:
        return None
    return f"NVLink errors {climb.first} -> {climb.last} (+{climb.gained}) in {num(climb.minutes, 0)} min"
