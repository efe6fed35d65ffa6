"""PCIe link problems (domain.md §3, §7.8): a degraded link under load, and replay-counter rates.

Why "under load": GPUs drop to a lower PCIe generation when idle to save power, so a Gen1 link
on an idle GPU is normal and must not be reported; a narrower or slower link while the GPU is
busy, or replays climbing, is a signal-integrity problem (riser, slot, cable, retimer).
"""

from __future__ import annotations

from gpudoc.tools.diagnosis.facts import ClusterFacts, counter_climb, live_gpus
from gpudoc.tools.diagnosis.findings import Finding
from gpudoc.tools.diagnosis.rules import finding, gpu_subject, num
from gpudoc.tools.models import GpuMetrics, GpuSeries

LOADED_UTIL_PCT = 30.0
#: PCIe replays gained within the history window worth a warning (healthy links replay ~never)
REPLAY_DELTA = 100

CAUSE = "PCIe signal-integrity problem (slot, riser, retimer, cable) or a degraded link training"
ACTION = "reseat the GPU/riser and check the slot at the next maintenance; run dcgmi diag; RMA if it persists"


def analyze_pcie(facts: ClusterFacts) -> list[Finding]:
    findings: list[Finding] = []
    for node in facts.nodes:
        for gpu in live_gpus(node):
            subject = gpu_subject(gpu.node_id, gpu.index)
            link = _degraded_under_load(gpu)
            if link:
                findings.append(finding("gpu.pcie_link_degraded", "warning", subject,
                                        "PCIe link degraded under load", [link], CAUSE, ACTION))
            replays = _replay_rate(facts.series(gpu.node_id, gpu.index))
            if replays:
                findings.append(finding("gpu.pcie_replays", "warning", subject,
                                        "PCIe replay counter climbing", [replays], CAUSE, ACTION))
    return findings


def _degraded_under_load(gpu: GpuMetrics) -> str | None:
    if gpu.utilization_pct is None or gpu.utilization_pct < LOADED_UTIL_PCT:
        return None  # idle links downshift to save power: normal (unknown load: cannot tell)
    narrow = (gpu.pcie_link_width is not None and gpu.pcie_link_width_max is not None
              and gpu.pcie_link_width < gpu.pcie_link_width_max)
    slow = (gpu.pcie_link_gen is not None and gpu.pcie_link_gen_max is not None
            and gpu.pcie_link_gen < gpu.pcie_link_gen_max)
    if not (narrow or slow):
        return None
    parts = []
    if gpu.pcie_link_width is not None:
        parts.append(f"link x{gpu.pcie_link_width} of x{gpu.pcie_link_width_max}")
    if gpu.pcie_link_gen is not None:
        parts.append(f"Gen{gpu.pcie_link_gen} of Gen{gpu.pcie_link_gen_max}")
    parts.append(f"at {num(gpu.utilization_pct, 0)}% utilization")
    return ", ".join(parts)


def _replay_rate(series: GpuSeries | None) -> str | None:
    climb = counter_climb(series, "pcie_replay_count")
    if climb is None or climb.gained < REPLAY_DELTA or climb.minutes <= 0:
        return None
    return (f"PCIe replays {climb.first} -> {climb.last} (+{climb.gained}) in {num(climb.minutes, 0)} min, "
            f"{num(climb.gained / climb.minutes)}/min")
