"""Thermal slowdown and hot outliers (domain.md §3, §7.6).

Why both an absolute and a relative rule: a GPU at its slowdown temperature with thermal
clock-event bits is already losing clock speed, and a GPU 15 °C hotter than its peers under the
same load points at its own cooling (fan, heatsink, thermal paste) long before it reaches 89 °C.
"""

from __future__ import annotations

from gpudoc.tools.diagnosis.facts import ClusterFacts, live_gpus, median_or_none, spec_of
from gpudoc.tools.diagnosis.findings import Finding
from gpudoc.tools.diagnosis.rules import finding, gpu_subject, num, reading
from gpudoc.tools.models import ClockEventReason, GpuMetrics, NodeMetrics, clock_event_names

THERMAL_BITS = ClockEventReason.SW_THERMAL | ClockEventReason.HW_THERMAL | ClockEventReason.HW_SLOWDOWN
#: degrees above the median of comparably loaded peers on the same node
PEER_DELTA_C = 15.0
#: peers count as comparable when their utilisation is within this many points and their power
#: draw within this fraction of the power limit (temperature follows power, not utilisation alone)
PEER_UTIL_BAND_PCT = 30.0
PEER_POWER_BAND = 0.15
MIN_PEERS = 2
#: below (max operating - this) a peer gap is thermal lag after a load change, not a cooling fault
OUTLIER_FLOOR_BELOW_MAX_C = 15.0
#: an SM clock below this fraction of the model's maximum under load is a real slowdown
CLOCK_DROP_RATIO = 0.7
LOADED_UTIL_PCT = 50.0
#: memory temperature this close to its limit is a warning
MEMORY_MARGIN_C = 5.0


def analyze_thermal(facts: ClusterFacts) -> list[Finding]:
    findings: list[Finding] = []
    for node in facts.nodes:
        gpus = live_gpus(node)
        for gpu in gpus:
            findings.extend(_gpu_thermal(node, gpu, gpus))
    return findings


def _peer_median(gpu: GpuMetrics, gpus: list[GpuMetrics]) -> tuple[float, int] | None:
    limit = gpu.power_limit_w or (spec.power_limit_w if (spec := spec_of(gpu)) else None)
    if gpu.temperature_c is None or gpu.utilization_pct is None:
        return None
    peers = [p.temperature_c for p in gpus
             if p.index != gpu.index and p.temperature_c is not None and p.utilization_pct is not None
             and abs(p.utilization_pct - gpu.utilization_pct) <= PEER_UTIL_BAND_PCT
             and (limit is None or (p.power_w is not None and gpu.power_w is not None
                                    and abs(p.power_w - gpu.power_w) <= PEER_POWER_BAND * limit))]
    if len(peers) < MIN_PEERS:
        return None
    return median_or_none(peers), len(peers)  # type: ignore[return-value]


def _gpu_thermal(node: NodeMetrics, gpu: GpuMetrics, gpus: list[GpuMetrics]) -> list[Finding]:
    subject = gpu_subject(gpu.node_id, gpu.index)
    spec = spec_of(gpu)
    bits = gpu.clock_event_reasons or 0
    mask = THERMAL_BITS
    if bits & ClockEventReason.HW_POWER_BRAKE:
        mask &= ~ClockEventReason.HW_SLOWDOWN  # hw_slowdown then comes from the power brake
    thermal_names = clock_event_names(bits & mask)
    temp = gpu.temperature_c
    peers = _peer_median(gpu, gpus)
    peer_delta = temp - peers[0] if peers and temp is not None else None
    clock_dropped = bool(
        spec and gpu.sm_clock_mhz is not None and (gpu.utilization_pct or 0.0) >= LOADED_UTIL_PCT
        and gpu.sm_clock_mhz < CLOCK_DROP_RATIO * spec.max_sm_clock_mhz
    )

    evidence_parts = [f"temperature {reading(temp, ' °C')}"]
    if spec:
        evidence_parts[0] += f" (slowdown {num(spec.slowdown_temp_c)} °C, max operating {num(spec.max_operating_temp_c)} °C)"
    if peer_delta is not None and peer_delta >= 5:
        evidence_parts.append(f"{num(peer_delta)} °C above node median {num(peers[0])} °C of {peers[1]} similarly loaded GPUs")
    if thermal_names:
        evidence_parts.append("+".join(thermal_names))
    if spec and gpu.sm_clock_mhz is not None:
        evidence_parts.append(f"SM clock {num(gpu.sm_clock_mhz, 0)} MHz of {num(spec.max_sm_clock_mhz, 0)}")
    evidence_parts.append(f"utilization {reading(gpu.utilization_pct, '%', 0)}, power {reading(gpu.power_w, ' W', 0)}")
    evidence = ["; ".join(evidence_parts)]
    cooling_cause = ("this GPU's cooling (fan, heatsink seating, thermal paste)" if peer_delta and peer_delta >= PEER_DELTA_C
                     else "insufficient cooling (airflow, inlet temperature, fan failure)")
    action = "check fans and inlet temperature, reseat the heatsink/replace thermal paste; drain the GPU if it keeps throttling"

    findings: list[Finding] = []
    # temp None: the source sent it unreadable; only the clock-event reasons can be judged then
    if spec and temp is not None and temp >= spec.shutdown_temp_c:
        findings.append(finding(
            "gpu.thermal_slowdown", "critical", subject, "GPU at its shutdown temperature", evidence,
            cooling_cause, "drain the GPU now, before the driver shuts it down; " + action,
        ))
    elif spec and temp is not None and (temp >= spec.slowdown_temp_c
                                        or (temp > spec.max_operating_temp_c and (thermal_names or clock_dropped))):
        findings.append(finding(
            "gpu.thermal_slowdown", "critical", subject, "thermal slowdown: GPU throttled by temperature",
            evidence, cooling_cause, action,
        ))
    elif thermal_names and (clock_dropped or (spec and temp is not None and temp > spec.max_operating_temp_c - 10)):
        findings.append(finding(
            "gpu.thermal_slowdown", "warning", subject, "thermal clock-event reasons active", evidence,
            cooling_cause, action,
        ))
    elif spec and temp is not None and temp > spec.max_operating_temp_c:
        findings.append(finding(
            "gpu.thermal_slowdown", "warning", subject, "GPU above its maximum operating temperature",
            evidence, cooling_cause, action,
        ))
    if (temp is not None and peer_delta is not None and peer_delta >= PEER_DELTA_C
            and (spec is None or temp >= spec.max_operating_temp_c - OUTLIER_FLOOR_BELOW_MAX_C)):
        findings.append(finding(
            "gpu.hot_vs_peers", "warning", subject,
            f"GPU {num(peer_delta)} °C hotter than comparable peers on {node.node_id}", evidence,
            cooling_cause, action,
        ))
    if spec and gpu.memory_temperature_c is not None and gpu.memory_temperature_c >= spec.memory_max_temp_c - MEMORY_MARGIN_C:
        findings.append(finding(
            "gpu.memory_hot", "warning", subject, "HBM temperature near its limit",
            [f"memory temperature {num(gpu.memory_temperature_c)} °C (limit {num(spec.memory_max_temp_c)} °C)"],
            cooling_cause, action,
        ))
    return findings
