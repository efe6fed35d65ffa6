"""XID errors: fatal vs non-fatal vs application (domain.md §2), and the "lemon GPU" rule.

Why classes matter: XID 13/31/43 are the user's bug and draining for them wastes a healthy GPU,
while XID 79 or 95 means the GPU must come out of service. Only the same GPU repeating
application XIDs across *different* jobs points back at the hardware.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import NamedTuple

from gpudoc.tools.diagnosis.facts import ClusterFacts
from gpudoc.tools.diagnosis.findings import Finding, Severity
from gpudoc.tools.diagnosis.rules import finding, gpu_subject
from gpudoc.tools.models import GpuMetrics, XidEvent

#: XID events older than this are history, not a current problem
XID_LOOKBACK = timedelta(hours=24)
APPLICATION_XIDS = frozenset({13, 31, 43})
SECONDARY_XIDS = frozenset({45})
#: distinct jobs hitting application XIDs on one GPU before the GPU itself is suspected
LEMON_MIN_JOBS = 2


class XidKind(NamedTuple):
    meaning: str
    rule: str
    severity: Severity
    cause: str
    action: str


XID_TABLE: dict[int, XidKind] = {
    48: XidKind("double-bit ECC error", "gpu.ecc_uncorrectable", "critical",
                "uncorrectable HBM memory error", "drain the node and reset the GPU"),
    61: XidKind("micro-controller breakpoint", "gpu.microcontroller_halt", "critical",
                "GPU internal micro-controller fault", "reset the GPU and report it to NVIDIA support"),
    62: XidKind("micro-controller halt", "gpu.microcontroller_halt", "critical",
                "GPU internal micro-controller fault", "reset the GPU and report it to NVIDIA support"),
    63: XidKind("row remap / page retirement event", "gpu.ecc_correctable_storm", "warning",
                "HBM rows being remapped after memory errors", "reset the GPU at a convenient time so the remap applies; watch the trend"),
    64: XidKind("row remap / retirement failure", "gpu.row_remap_failure", "critical",
                "HBM row remapping failed: no spare rows left in a bank", "keep the node drained, run field diagnostics; RMA if it repeats"),
    74: XidKind("NVLink error", "gpu.nvlink_error", "critical",
                "NVLink link or fabric fault", "check NVLink error counters, reset the GPU/fabric; a persistent error is hardware"),
    79: XidKind("GPU has fallen off the bus", "gpu.xid79_fell_off_bus", "critical",
                "the GPU stopped responding on PCIe (power, PCIe, thermal or GPU failure)",
                "drain and reboot the node; check PCIe seating, power and cooling; RMA if it recurs"),
    92: XidKind("high single-bit ECC error rate", "gpu.ecc_correctable_storm", "warning",
                "HBM producing many correctable errors", "watch the correctable-error trend; plan a reset"),
    94: XidKind("contained ECC error", "gpu.ecc_uncorrectable", "warning",
                "uncorrectable HBM error contained to one application", "only that application died; reset the GPU when convenient"),
    95: XidKind("uncontained ECC error", "gpu.ecc_uncorrectable", "critical",
                "uncorrectable HBM error that could not be contained", "drain the node and reset the GPU"),
    109: XidKind("context-switch timeout", "gpu.context_switch_timeout", "critical",
                 "GPU failed to switch contexts (driver or hardware)", "reset the GPU"),
    119: XidKind("GSP RPC timeout", "gpu.gsp_error", "critical",
                 "the GPU System Processor stopped answering the driver", "reset the GPU; reboot the node if the reset hangs"),
    120: XidKind("GSP error", "gpu.gsp_error", "critical",
                 "the GPU System Processor reported an error", "reset the GPU; reboot the node if the reset hangs"),
}

_LOWER: dict[Severity, Severity] = {"critical": "warning", "warning": "info", "info": "info"}


def analyze_xids(facts: ClusterFacts) -> list[Finding]:
    findings: list[Finding] = []
    for node in facts.nodes:
        for gpu in node.gpus:
            findings.extend(_gpu_xid_findings(facts, gpu))
    return findings


def _recent_events(gpu: GpuMetrics, now: datetime) -> list[XidEvent]:
    return [e for e in gpu.xid_events or [] if e.xid and now - e.timestamp <= XID_LOOKBACK]


def _describe(events: list[XidEvent]) -> str:
    xid = events[0].xid
    last = max(events, key=lambda e: e.timestamp)
    count = f" x{len(events)}" if len(events) > 1 else ""
    jobs = sorted({e.job_id for e in events if e.job_id})
    job_text = f" in job {', '.join(jobs)}" if jobs else ""
    return f"XID {xid}{count} ({xid_meaning(xid)}), last at {last.timestamp:%Y-%m-%d %H:%M:%S}Z{job_text}"


def xid_meaning(xid: int) -> str:
    """What an XID means, in a few words (NVIDIA's catalogue, domain.md §2)."""
    return XID_TABLE[xid].meaning if xid in XID_TABLE else _other_meaning(xid)


def _other_meaning(xid: int) -> str:
    if xid in APPLICATION_XIDS:
        return {13: "graphics engine exception", 31: "GPU memory page fault", 43: "GPU stopped processing"}[xid]
    if xid in SECONDARY_XIDS:
        return "preemptive cleanup"
    return "not in the known XID table"


def _gpu_xid_findings(facts: ClusterFacts, gpu: GpuMetrics) -> list[Finding]:
    subject = gpu_subject(gpu.node_id, gpu.index)
    if gpu.xid_events is None:
        return _last_xid_only(gpu, subject)
    by_xid: dict[int, list[XidEvent]] = defaultdict(list)
    for event in _recent_events(gpu, facts.collected_at):
        by_xid[event.xid].append(event)
    findings: list[Finding] = []
    app_events = [e for xid, events in by_xid.items() if xid in APPLICATION_XIDS for e in events]
    if app_events:
        findings.append(_application_finding(subject, app_events))
    for xid, events in sorted(by_xid.items()):
        if xid in APPLICATION_XIDS:
            continue
        if xid in SECONDARY_XIDS:
            findings.append(finding(
                "gpu.secondary_xid", "info", subject, f"XID {xid}: secondary error", [_describe(events)],
                "XID 45 follows another error (a fatal XID, a killed process)",
                "look for the primary XID (48/79/74/...) near it",
            ))
            continue
        kind = XID_TABLE.get(xid)
        if kind is None:
            findings.append(finding(
                "gpu.unknown_xid", "warning", subject, f"XID {xid} (not in the known table)", [_describe(events)],
                "an XID gpudoc has no rule for", "look it up in NVIDIA's XID catalogue and the kernel log",
            ))
            continue
        findings.append(finding(
            kind.rule, kind.severity, subject, f"XID {xid}: {kind.meaning}", [_describe(events)],
            kind.cause, kind.action, job_id=events[-1].job_id,
        ))
    return findings


def _last_xid_only(gpu: GpuMetrics, subject: str) -> list[Finding]:
    """Sources like the DCGM exporter only keep the *last* XID: it says nothing about when it happened."""
    xid = gpu.last_xid
    if not xid:
        return []
    evidence = [f"last XID reported {xid} (time unknown; the exporter keeps the last value until reset)"]
    if xid in APPLICATION_XIDS:
        return [finding(
            "gpu.application_xid", "info", subject, f"last XID {xid}: application error", evidence,
            "user application error, not hardware", "do not drain; hand it to the job's owner",
        )]
    kind = XID_TABLE.get(xid)
    if kind is None or xid in SECONDARY_XIDS:
        return []
    # a stale GPU corroborates that the fatal XID is current; otherwise it may be long past
    severity = kind.severity if gpu.stale else _LOWER[kind.severity]
    return [finding(
        kind.rule, severity, subject, f"last XID {xid}: {kind.meaning} (time unknown)", evidence,
        kind.cause, f"confirm in the kernel log (dmesg | grep Xid), then: {kind.action}",
    )]


def _application_finding(subject: str, events: list[XidEvent]) -> Finding:
    jobs = sorted({e.job_id for e in events if e.job_id})
    by_xid: dict[int, list[XidEvent]] = defaultdict(list)
    for event in events:
        by_xid[event.xid].append(event)
    evidence = [_describe(group) for _, group in sorted(by_xid.items())]
    if len(jobs) >= LEMON_MIN_JOBS:
        return finding(
            "gpu.lemon_suspect", "warning", subject,
            f"application XIDs on the same GPU across {len(jobs)} different jobs",
            evidence + [f"jobs affected: {', '.join(jobs)}"],
            "one GPU failing different users' programs suggests the GPU, not the code (a 'lemon' GPU)",
            "drain the GPU and run field diagnostics (dcgmi diag -r 3); RMA if it fails",
        )
    return finding(
        "gpu.application_xid", "info", subject,
        "application XID: user application error, not hardware - do not drain",
        evidence,
        "a bug in the user's program (illegal memory access, exception)",
        "do not drain; hand the error to the job's owner",
        job_id=jobs[0] if jobs else None,
    )
