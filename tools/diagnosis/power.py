"""Power brake and power-cap misconfiguration (domain.md §7.7).

Why node-level when every GPU shows it: a brake signal or a lowered cap on all GPUs of a node
comes from the node (PSU, BMC, a management script), so one node finding replaces eight GPU ones.
"""

from __future__ import annotations

from gpudoc.tools.diagnosis.facts import ClusterFacts, live_gpus, spec_of
from gpudoc.tools.diagnosis.findings import Finding
from gpudoc.tools.diagnosis.rules import finding, gpu_subject, num, reading
from gpudoc.tools.models import ClockEventReason, GpuMetrics, NodeMetrics

#: an enforced limit below this fraction of the default is a cap, not rounding
CAP_RATIO = 0.95
#: without a reported default, only a limit this far below the model's nominal is called a cap
CAP_RATIO_VS_SPEC = 0.8

BRAKE_CAUSE = "the node asserted the hardware power brake (PSU fault or redundancy loss, BMC power policy)"
BRAKE_ACTION = "check PSUs and the BMC event log (ipmitool sel list); drain the node if the brake persists"
CAP_CAUSE = "a power limit set below the default (nvidia-smi -pl, a management policy or a leftover test)"
CAP_ACTION = "restore the default limit (nvidia-smi -pl <default>) unless the cap is intentional"


def analyze_power(facts: ClusterFacts) -> list[Finding]:
    findings: list[Finding] = []
    for node in facts.nodes:
        gpus = live_gpus(node)
        findings.extend(_brakes(node, gpus))
        findings.extend(_caps(node, gpus))
    return findings


def _clock(gpu: GpuMetrics) -> str:
    spec = spec_of(gpu)
    if gpu.sm_clock_mhz is None:
        return ""
    of = f" of {num(spec.max_sm_clock_mhz, 0)}" if spec else ""
    return f", SM clock {num(gpu.sm_clock_mhz, 0)} MHz{of}"


def _brakes(node: NodeMetrics, gpus: list[GpuMetrics]) -> list[Finding]:
    braked = [g for g in gpus if (g.clock_event_reasons or 0) & ClockEventReason.HW_POWER_BRAKE]
    if not braked:
        return []
    evidence = [f"gpu-{g.index}: hw_power_brake set, power {reading(g.power_w, ' W', 0)}{_clock(g)}" for g in braked]
    if len(braked) == len(gpus) and len(gpus) > 1:
        return [finding("node.power_brake", "warning", node.node_id,
                        f"hardware power brake on all {len(gpus)} GPUs", evidence, BRAKE_CAUSE, BRAKE_ACTION)]
    return [finding("gpu.power_brake", "warning", gpu_subject(g.node_id, g.index),
                    "hardware power brake slowing the GPU", [line], BRAKE_CAUSE, BRAKE_ACTION)
            for g, line in zip(braked, evidence)]


def _cap_of(gpu: GpuMetrics) -> tuple[float, float] | None:
    """(enforced, reference) when the enforced limit is meaningfully below the default."""
    if gpu.power_limit_w is None:
        return None
    if gpu.default_power_limit_w:
        if gpu.power_limit_w < CAP_RATIO * gpu.default_power_limit_w:
            return gpu.power_limit_w, gpu.default_power_limit_w
        return None
    spec = spec_of(gpu)
    if spec and gpu.power_limit_w < CAP_RATIO_VS_SPEC * spec.power_limit_w:
        return gpu.power_limit_w, spec.power_limit_w
    return None


def _caps(node: NodeMetrics, gpus: list[GpuMetrics]) -> list[Finding]:
    capped = [(g, cap) for g in gpus if (cap := _cap_of(g))]
    if not capped:
        return []
    evidence = [
        f"gpu-{g.index}: enforced power limit {num(limit, 0)} W, default {num(default, 0)} W; "
        f"drawing {reading(g.power_w, ' W', 0)}{_clock(g)}"
        for g, (limit, default) in capped
    ]
    if len(capped) == len(gpus) and len(gpus) > 1:
        return [finding("node.power_cap_below_default", "warning", node.node_id,
                        f"power limit below default on all {len(gpus)} GPUs", evidence, CAP_CAUSE, CAP_ACTION)]
    return [finding("gpu.power_cap_below_default", "warning", gpu_subject(g.node_id, g.index),
                    "enforced power limit below the default", [line], CAP_CAUSE, CAP_ACTION)
            for (g, _), line in zip(capped, evidence)]
