"""Host and node health: unreachable hosts, GPUs that stopped reporting, drained/down Slurm nodes.

Why the drain reason matters: Slurm writes specific reasons itself (domain.md §4) and each points
somewhere different: "Not responding" at the host, "Kill task failed" at processes stuck on a
hung GPU (often GSP), "gres/gpu count too low" at a GPU that vanished from the bus.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from gpudoc.tools.diagnosis.facts import ClusterFacts
from gpudoc.tools.diagnosis.findings import Finding, Severity
from gpudoc.tools.diagnosis.rules import finding, gpu_subject
from gpudoc.tools.models import GpuMetrics, NodeMetrics, SlurmNode

#: a GPU whose last reading is older than this (while its node still reports) is stale
STALE_AFTER = timedelta(minutes=5)
GRES_LOW = re.compile(r"gres/gpu count too low", re.IGNORECASE)
PLANNED = re.compile(r"maint|upgrade|planned|reserv|firmware update", re.IGNORECASE)


def analyze_node_health(facts: ClusterFacts) -> list[Finding]:
    findings: list[Finding] = []
    for node in facts.nodes:
        slurm_node = facts.slurm_node(node.node_id, node.hostname)
        if not node.reachable:
            findings.append(_host_down(facts, node, slurm_node))
            continue
        findings.extend(_stale_gpus(facts.collected_at, node))
        if slurm_node is not None:
            findings.extend(_slurm_state(facts.collected_at, node, slurm_node))
    findings.extend(_unknown_to_metrics(facts))
    return findings


def _ago(now: datetime, then: datetime | None) -> str:
    if then is None:
        return ""
    minutes = max(0, round((now - then).total_seconds() / 60))
    return f" since {then:%H:%M}Z ({minutes} min ago)"


def _slurm_text(slurm_node: SlurmNode, now: datetime) -> str:
    text = f"Slurm state {'+'.join(slurm_node.state)} ({slurm_node.sinfo_state})"
    if slurm_node.reason:
        text += f", reason \"{slurm_node.reason}\"{_ago(now, slurm_node.reason_set_at)}"
    return text


def _host_down(facts: ClusterFacts, node: NodeMetrics, slurm_node: SlurmNode | None) -> Finding:
    now = facts.collected_at
    evidence = [f"no metrics from {node.hostname}: all {len(node.gpus) or 'its'} GPU series absent; "
                f"last report {node.timestamp:%H:%M:%S}Z"]
    if slurm_node is not None:
        evidence.append(_slurm_text(slurm_node, now))
    failed = [j.job_id for j in facts.jobs if j.state == "NODE_FAIL" and node.node_id in
              [facts.node_id_for_slurm_name(n) for n in j.nodes]]
    if failed:
        evidence.append(f"jobs ended NODE_FAIL: {', '.join(failed)}")
    return finding(
        "node.host_down", "critical", node.node_id, "host down: node stopped reporting", evidence,
        "the host crashed, lost power or network (kernel panic, PSU, BMC, switch port)",
        "check the BMC/IPMI console and power; reboot the node; resume it in Slurm once healthy and requeue jobs",
    )


def _stale_gpus(now: datetime, node: NodeMetrics) -> list[Finding]:
    findings = []
    for gpu in node.gpus:
        if not _is_stale(gpu, now):
            continue
        seen = f"; last reading {gpu.last_seen:%H:%M:%S}Z" if gpu.last_seen else ""
        findings.append(finding(
            "gpu.stale_metrics", "critical", gpu_subject(gpu.node_id, gpu.index),
            "GPU stopped reporting while its node still does",
            [f"GPU series stale{seen}; the node's other {len(node.gpus) - 1} GPUs report"],
            "the driver lost the GPU (fell off the bus, GSP hang) or its exporter stalled",
            "check dmesg for XID 79/119/120 and nvidia-smi; drain the node and reset or reboot",
        ))
    return findings


def _is_stale(gpu: GpuMetrics, now: datetime) -> bool:
    return gpu.stale or (gpu.last_seen is not None and now - gpu.last_seen > STALE_AFTER)


def _slurm_state(now: datetime, node: NodeMetrics, slurm_node: SlurmNode) -> list[Finding]:
    evidence = [_slurm_text(slurm_node, now)]
    reason = slurm_node.reason or ""
    if slurm_node.is_down:
        return [finding(
            "node.slurm_not_responding", "warning", node.node_id,
            "Slurm marks the node down although its metrics still arrive", evidence,
            "slurmd died or cannot reach the controller (munge, network, clock skew)",
            "check slurmd on the node (systemctl status slurmd) and its log; scontrol update nodename=... state=resume",
        )]
    if GRES_LOW.search(reason) or (slurm_node.gpus_total and len(node.gpus) < slurm_node.gpus_total):
        if len(node.gpus) < slurm_node.gpus_total:
            evidence.append(f"metrics show {len(node.gpus)} GPU(s); Slurm expects {slurm_node.gpus_total}")
        return [finding(
            "node.gres_count_low", "critical", node.node_id, "Slurm sees fewer GPUs than configured", evidence,
            "a GPU disappeared from the node (fell off the bus or failed to initialise)",
            "find the missing GPU (nvidia-smi, dmesg for XID 79); reboot the node; RMA if it does not return",
        )]
    if not slurm_node.is_drained:
        return []
    severity: Severity = "info" if PLANNED.search(reason) else "warning"
    cause, action = _drain_meaning(reason)
    return [finding("node.drained", severity, node.node_id, f"node drained: {reason or 'no reason given'}",
                    evidence, cause, action)]


def _drain_meaning(reason: str) -> tuple[str, str]:
    lowered = reason.lower()
    if "kill task failed" in lowered:
        return ("processes could not be killed: stuck in the kernel, often on a hung GPU (GSP)",
                "check dmesg for XID 119/120; reset the GPU or reboot the node, then resume it")
    if "not responding" in lowered:
        return "slurmd stopped answering the controller", "check the host and slurmd; resume when healthy"
    if "prolog" in lowered or "epilog" in lowered:
        return "a prolog/epilog script failed (often a health check)", "read the script's log on the node; fix and resume"
    if "reboot" in lowered:
        return "the node rebooted unexpectedly", "check the kernel log of the previous boot and the BMC log; resume when healthy"
    if PLANNED.search(reason):
        return "planned maintenance by an administrator", "resume the node when the maintenance is done"
    return ("drained by an administrator or a health check",
            "confirm the reason is still valid; fix it and resume the node (scontrol update nodename=... state=resume)")


def _unknown_to_metrics(facts: ClusterFacts) -> list[Finding]:
    """Slurm nodes that are down but for which no metrics exist at all (no exporter on them)."""
    if facts.slurm is None:
        return []
    known = {n.node_id for n in facts.nodes} | {n.hostname for n in facts.nodes} | set(facts.node_ids or [])
    return [
        finding("node.host_down", "critical", slurm_node.name, "Slurm node down and no metrics from it",
                [_slurm_text(slurm_node, facts.collected_at)],
                "the host is down or its exporters are not deployed",
                "check the host's BMC/console; deploy dcgm-exporter if it is missing")
        for slurm_node in facts.slurm.nodes
        if slurm_node.name not in known and slurm_node.is_down
    ]
