"""InfiniBand ports (domain.md §7.11): a port not ACTIVE, or one that keeps going down.

Why a separate area: NCCL timeouts from a flapping IB link look like a GPU problem from inside
the job; when the GPUs are healthy and the port is not, the fix is a cable or switch port, and
draining or RMA-ing GPUs would be wrong.
"""

from __future__ import annotations

from gpudoc.tools.diagnosis.facts import ClusterFacts, live_gpus, median_or_none
from gpudoc.tools.diagnosis.findings import Finding
from gpudoc.tools.diagnosis.rules import finding, num
from gpudoc.tools.models import NetworkPort, NodeMetrics

ACTIVE = 4
PORT_STATES = {1: "DOWN", 2: "INIT", 3: "ARMED", 4: "ACTIVE", 5: "ACTIVE_DEFER"}
#: link_downed_total this many above the cluster's median for the same port marks a link that flapped
FLAP_EXCESS = 3
#: a link that went down this often within the last hour is flapping now: NCCL jobs across it fail
FLAPS_PER_HOUR = 3

CAUSE = "the InfiniBand link (cable, transceiver, HCA or switch port), not the GPUs"
ACTION = ("blame the network, not the GPU: check the cable/transceiver and switch port (ibstat, "
          "ibdiagnet, switch logs); drain the node from multi-node jobs until the link is stable; do not RMA GPUs")


def analyze_network(facts: ClusterFacts) -> list[Finding]:
    reachable = [n for n in facts.nodes if n.reachable and n.network]
    if not reachable:
        return []
    baseline = facts.link_downed_medians if facts.link_downed_medians is not None else link_downed_medians(reachable)
    findings: list[Finding] = []
    for node in reachable:
        ports = node.network or []
        down = [p for p in ports if p.state_id != ACTIVE]
        flapping_now = [p for p in ports if p.state_id == ACTIVE and (p.link_downed_last_hour or 0) >= FLAPS_PER_HOUR]
        flapped = [p for p in ports if p.state_id == ACTIVE and p not in flapping_now
                   and p.link_downed_total >= baseline.get(port_key(p), 0) + FLAP_EXCESS]
        if down:
            findings.append(finding("net.ib_port_down", "critical", node.node_id, "InfiniBand port not active",
                                    _evidence(node, down + flapping_now + flapped, baseline), CAUSE, ACTION))
        elif flapping_now:
            findings.append(finding("net.ib_link_flapping", "critical", node.node_id,
                                    "InfiniBand link flapping: it keeps going down",
                                    _evidence(node, flapping_now + flapped, baseline), CAUSE, ACTION))
        elif flapped:
            findings.append(finding("net.ib_link_flapping", "warning", node.node_id, "InfiniBand link flapping",
                                    _evidence(node, flapped, baseline), CAUSE, ACTION))
    return findings


def port_key(port: NetworkPort) -> str:
    return f"{port.device}/{port.port}"


def link_downed_medians(nodes: list[NodeMetrics]) -> dict[str, float]:
    """The median ``link_downed_total`` of each port (device/port) over ``nodes``."""
    by_port: dict[str, list[float]] = {}
    for node in nodes:
        if not node.reachable:
            continue
        for port in node.network or []:
            by_port.setdefault(port_key(port), []).append(port.link_downed_total)
    return {key: median_or_none(values) or 0.0 for key, values in by_port.items()}


def _evidence(node: NodeMetrics, ports: list[NetworkPort], baseline: dict[str, float]) -> list[str]:
    evidence = []
    for p in ports:
        recent = f", down {p.link_downed_last_hour}x in the last hour" if p.link_downed_last_hour else ""
        evidence.append(
            f"{p.device} port {p.port}: state {p.state_id} ({PORT_STATES.get(p.state_id, 'unknown')}), "
            f"link_downed_total {p.link_downed_total} (cluster median {num(baseline.get(port_key(p), 0))}){recent}"
        )
    gpus = live_gpus(node)
    temps = [g.temperature_c for g in gpus if g.temperature_c is not None]
    if gpus and temps and not any(g.stale for g in node.gpus):
        evidence.append(f"all {len(gpus)} GPUs reporting; hottest {num(max(temps))} °C")
    return evidence
