"""Host and node health: unreachable hosts, GPUs that stopped reporting, drained/down Slurm nodes.

Why telemetry and Slurm are read together: a node that sends no telemetry is a host down when
Slurm agrees (DOWN, not responding), but a monitoring fault when Slurm still runs jobs on it
(the exporter died or its scrape fails): same silence, another place to look.

Why the drain reason matters: Slurm writes specific reasons itself (domain.md §4) and each points
somewhere different: "Not responding" at the host, "Kill task failed" at processes stuck on a
hung GPU (often GSP), "gres/gpu count too low" at a GPU that vanished from the bus. Admins and
health checks write free text, and often name the XID that made them drain ("XID 79 on gpu-5").
Such a reason is a person's statement, not evidence: it may be stale, mistyped or copied from
another node. It is critical only when telemetry shows that XID on that GPU (or, naming no GPU,
on the node); otherwise it is a warning that says what the reason claims, that telemetry does
not confirm it (or cannot: the source reports no XIDs) and where to confirm it.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from gpudoc.tools.diagnosis.facts import ClusterFacts
from gpudoc.tools.diagnosis.findings import Finding, Severity
from gpudoc.tools.diagnosis.rules import finding, gpu_subject
from gpudoc.tools.diagnosis.xid import XID_LOOKBACK, XID_TABLE, recent_events, xid_meaning
from gpudoc.tools.models import GpuMetrics, NodeMetrics, SlurmNode

#: a GPU whose last reading is older than this (while its node still reports) is stale
STALE_AFTER = timedelta(minutes=5)
GRES_LOW = re.compile(r"gres/gpu count too low", re.IGNORECASE)
PLANNED = re.compile(r"maint|upgrade|planned|reserv|firmware update", re.IGNORECASE)
#: "XID 79", "Xid: 48", "xid=64", "(XID 64)" in a node reason
REASON_XID = re.compile(r"\bxid\s*[:=#]?\s*(\d{1,3})\b", re.IGNORECASE)
#: "gpu-5", "gpu 3", "GPU#2" in a node reason
REASON_GPU = re.compile(r"\bgpu\s*[-#:]?\s*(\d{1,2})\b", re.IGNORECASE)


def analyze_node_health(facts: ClusterFacts) -> list[Finding]:
    findings: list[Finding] = []
    for node in facts.nodes:
        slurm_node = facts.slurm_node(node.node_id, node.hostname)
        if not node.reachable:
            if slurm_node is not None and not slurm_node.is_down:
                findings.append(_no_telemetry(facts.collected_at, node.node_id, node.hostname, slurm_node))
            else:
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
        if slurm_node.reason_set_by:
            text += f", set by {slurm_node.reason_set_by}"
    return text


def _host_down(facts: ClusterFacts, node: NodeMetrics, slurm_node: SlurmNode | None) -> Finding:
    now = facts.collected_at
    evidence = [f"not reporting telemetry: no GPU series from {node.hostname} as of {node.timestamp:%H:%M:%S}Z"]
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


def _no_telemetry(now: datetime, node_id: str, hostname: str, slurm_node: SlurmNode) -> Finding:
    return finding(
        "node.no_telemetry", "warning", node_id, f"not reporting telemetry; Slurm reports it {slurm_node.sinfo_state}",
        [f"no GPU series from {hostname} as of {now:%H:%M:%S}Z", _slurm_text(slurm_node, now)],
        "the node's GPU exporter stopped or cannot be scraped, while slurmd still answers: its GPUs go unwatched",
        "check the exporter on the node (systemctl status dcgm-exporter; curl http://NODE:9400/metrics) and the "
        "collector's scrape target for it; until it reports, check the node's GPUs by hand (nvidia-smi)",
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
        return [_slurm_down(node, slurm_node, evidence)]
    expected = slurm_node.gpus_total  # None: the source does not say, so no comparison
    if GRES_LOW.search(reason) or (expected and len(node.gpus) < expected):
        if expected is not None and len(node.gpus) < expected:
            evidence.append(f"metrics show {len(node.gpus)} GPU(s); Slurm expects {expected}")
        return [finding(
            "node.gres_count_low", "critical", node.node_id, "Slurm sees fewer GPUs than configured", evidence,
            "a GPU disappeared from the node (fell off the bus or failed to initialise)",
            "find the missing GPU (nvidia-smi, dmesg for XID 79); reboot the node; RMA if it does not return",
        )]
    if not (slurm_node.is_drained or slurm_node.is_failing):
        return []
    named = _drained_for_xid(now, node, slurm_node.name, reason, evidence)
    if named is not None:
        return [named]
    severity: Severity = "info" if PLANNED.search(reason) or slurm_node.in_maintenance else "warning"
    cause, action = _drain_meaning(reason, slurm_node)
    verb = "drained" if slurm_node.is_drained else "set to FAIL"
    return [finding("node.drained", severity, node.node_id, f"node {verb}: {reason or 'no reason given'}",
                    evidence, cause, action)]


def _slurm_down(node: NodeMetrics, slurm_node: SlurmNode, evidence: list[str]) -> Finding:
    """DOWN or NOT_RESPONDING while telemetry still arrives: the host lives, its slurmd does not
    (or an administrator took the node down, which the reason then says)."""
    not_responding = "NOT_RESPONDING" in slurm_node.flags or "not responding" in (slurm_node.reason or "").lower()
    if not_responding:
        return finding(
            "node.slurm_not_responding", "warning", node.node_id,
            "Slurm marks the node down: slurmd not responding, although its metrics still arrive", evidence,
            "slurmd died or cannot reach the controller (munge, network, clock skew); the host itself is up",
            f"check slurmd on the node (systemctl status slurmd, its log) and munge; then "
            f"scontrol update nodename={slurm_node.name} state=resume",
        )
    return finding(
        "node.slurm_not_responding", "warning", node.node_id,
        f"Slurm node down: {slurm_node.reason or 'no reason given'}", evidence,
        "taken down by an administrator or by Slurm (reason above); no new jobs start there",
        f"confirm the reason still holds; fix it and scontrol update nodename={slurm_node.name} state=resume",
    )


def _drained_for_xid(now: datetime, node: NodeMetrics, slurm_name: str, reason: str,
                     evidence: list[str]) -> Finding | None:
    """``node.drained_for_xid`` when the drain reason names an XID, else None.

    Confirmed by telemetry (that XID among the GPU's recent events, or its last XID), the XID's
    class sets the severity (a drain for XID 79 is as serious as XID 79). Unconfirmed, it is at
    most a warning: the node is out of service either way, but nothing measured says the GPU
    failed. The GPU index, when the reason names one, ties the finding to that GPU.
    """
    match = REASON_XID.search(reason)
    if match is None:
        return None
    xid = int(match.group(1))
    gpu = REASON_GPU.search(reason)
    index = int(gpu.group(1)) if gpu else None
    kind = XID_TABLE.get(xid)
    where = f" GPU {index}" if index is not None else ""
    said = f"the drain reason names XID {xid} ({xid_meaning(xid)})"
    action = ((kind.action if kind else "look the XID up in NVIDIA's XID catalogue")
              + "; resume the node only once the GPU is fixed or replaced")
    gpus = [gpu_subject(node.node_id, index)] if index is not None else []
    watched = [g for g in node.gpus if index is None or g.index == index]
    seen = _telemetry_xid(now, watched, xid)
    if seen is not None:
        return finding(
            "node.drained_for_xid", kind.severity if kind else "warning", node.node_id,
            f"node drained for XID {xid}{where}: {xid_meaning(xid)}", [*evidence, said, seen],
            kind.cause if kind else "a GPU error the drain reason names", action, gpus=gpus,
        )
    target = f"GPU {index}" if index is not None else "any of its GPUs"
    if any(g.xid_events is not None or g.last_xid is not None for g in watched):
        telemetry = f"telemetry shows no XID {xid} on {target} in the last {_hours(XID_LOOKBACK)}"
        why = "the XID may predate the telemetry's record, or the reason may be stale, mistyped or about another GPU"
    else:
        telemetry = f"telemetry cannot confirm it: the source reports no XIDs for {target}"
        why = "only the reason says so"
    severity: Severity = "warning" if kind is None or kind.severity == "critical" else kind.severity
    return finding(
        "node.drained_for_xid", severity, node.node_id,
        f"node drained for XID {xid}{where} per its reason, not confirmed by telemetry", [*evidence, said, telemetry],
        f"an administrator or health check drained the node for {xid_meaning(xid)}; {why}",
        f"confirm on the node: dmesg -T | grep -i xid (or journalctl -k) and nvidia-smi -q{' -i ' + str(index) if index is not None else ''}; "
        f"if XID {xid} is there: {action}; if not, correct the reason and resume the node "
        f"(scontrol update nodename={slurm_name} state=resume)",
        gpus=gpus,
    )


def _telemetry_xid(now: datetime, gpus: list[GpuMetrics], xid: int) -> str | None:
    """Evidence that telemetry saw ``xid`` on one of ``gpus``, or None."""
    for gpu in gpus:
        events = [e for e in recent_events(gpu, now) if e.xid == xid]
        if events:
            last = max(e.timestamp for e in events)
            return f"telemetry confirms: GPU {gpu.index} logged XID {xid}, last at {last:%H:%M}Z"
        if gpu.last_xid == xid:
            return f"telemetry confirms: GPU {gpu.index}'s last XID is {xid}"
    return None


def _hours(span: timedelta) -> str:
    return f"{span.total_seconds() / 3600:g} h"


def _drain_meaning(reason: str, slurm_node: SlurmNode | None = None) -> tuple[str, str]:
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
    if PLANNED.search(reason) or (slurm_node is not None and slurm_node.in_maintenance):
        return "planned maintenance by an administrator", "resume the node when the maintenance is done"
    if slurm_node is not None and slurm_node.is_failing and not slurm_node.is_drained:
        return ("marked FAIL by an administrator: no new jobs, running ones finish",
                "confirm the reason; fix and resume the node (scontrol update nodename=... state=resume)")
    return ("drained by an administrator or a health check",
            "confirm the reason is still valid; fix it and resume the node (scontrol update nodename=... state=resume)")


def _unknown_to_metrics(facts: ClusterFacts) -> list[Finding]:
    """Slurm nodes for which no metrics exist at all (host down, or no exporter on them)."""
    if facts.slurm is None:
        return []
    known = {n.node_id for n in facts.nodes} | {n.hostname for n in facts.nodes} | set(facts.node_ids or [])
    return [
        finding("node.host_down", "critical", slurm_node.name, "Slurm node down and no metrics from it",
                [_slurm_text(slurm_node, facts.collected_at)],
                "the host is down or its exporters are not deployed",
                "check the host's BMC/console; deploy dcgm-exporter if it is missing")
        if slurm_node.is_down
        else _no_telemetry(facts.collected_at, slurm_node.name, slurm_node.name, slurm_node)
        for slurm_node in facts.slurm.nodes
        if slurm_node.name not in known
    ]
