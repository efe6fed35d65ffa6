"""XID errors: hardware vs application vs secondary (``xid_catalog``), and the "lemon GPU" rule.

Why classes matter: XID 13/31/43 are the user's bug and draining for them wastes a healthy GPU,
while XID 79 or 95 means the GPU must come out of service. Only the same GPU repeating
application XIDs across *different* jobs points back at the hardware.

Two kinds of evidence: a source with the XID events (the simulator, the kernel log, Prometheus
history of the exporter's XID series) gives each XID with its time; a source with only the
exporter's *last* XID value cannot say when it happened, so those findings ask for confirmation
in the kernel log and are one level less severe unless the GPU also stopped reporting.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from gpudoc.tools.diagnosis.facts import ClusterFacts
from gpudoc.tools.diagnosis.findings import Finding, Severity
from gpudoc.tools.diagnosis.rules import finding, gpu_subject
from gpudoc.tools.diagnosis.xid_catalog import APPLICATION_XIDS, XID_CATALOG, XidKind, xid_kind
from gpudoc.tools.models import GpuMetrics, XidEvent

#: XID events older than this are history, not a current problem
XID_LOOKBACK = timedelta(hours=24)
#: an XID 45 with no other XID on its GPU this close in time has no primary error to follow
SOLO_45_WINDOW = timedelta(minutes=10)
#: distinct jobs hitting application XIDs on one GPU before the GPU itself is suspected
LEMON_MIN_JOBS = 2
#: the XIDs that point at the GPU or at another error (not the user's program), by code
XID_TABLE: dict[int, XidKind] = {xid: kind for xid, kind in XID_CATALOG.items() if kind.kind != "application"}

_LOWER: dict[Severity, Severity] = {"critical": "warning", "warning": "info", "info": "info"}
_UNKNOWN_CAUSE = "an XID gpudoc's catalog does not list (a newer driver, or an unused code)"
_UNKNOWN_ACTION = "look it up in NVIDIA's XID catalog (docs.nvidia.com/deploy/xid-errors) and the kernel log"


def analyze_xids(facts: ClusterFacts) -> list[Finding]:
    findings: list[Finding] = []
    for node in facts.nodes:
        for gpu in node.gpus:
            findings.extend(_gpu_xid_findings(facts, gpu))
    return findings


def recent_events(gpu: GpuMetrics, now: datetime) -> list[XidEvent]:
    """The XIDs ``gpu`` logged within ``XID_LOOKBACK`` of ``now``."""
    return [e for e in gpu.xid_events or [] if e.xid and now - e.timestamp <= XID_LOOKBACK]


def xid_meaning(xid: int) -> str:
    """What an XID means, in a few words (``xid_catalog``)."""
    kind = xid_kind(xid)
    return kind.meaning if kind else "not in gpudoc's XID catalog"


def _describe(events: list[XidEvent]) -> str:
    xid = events[0].xid
    last = max(events, key=lambda e: e.timestamp)
    occurrences = sum(e.count for e in events)
    count = f" x{occurrences}" if occurrences > 1 else ""
    jobs = sorted({e.job_id for e in events if e.job_id})
    job_text = f" in job {', '.join(jobs)}" if jobs else ""
    return f"XID {xid}{count} ({xid_meaning(xid)}), last at {last.timestamp:%Y-%m-%d %H:%M:%S}Z{job_text}"


def _gpu_xid_findings(facts: ClusterFacts, gpu: GpuMetrics) -> list[Finding]:
    subject = gpu_subject(gpu.node_id, gpu.index)
    if gpu.xid_events is None:
        return _last_xid_only(gpu, subject)
    recent = recent_events(gpu, facts.collected_at)
    by_xid: dict[int, list[XidEvent]] = defaultdict(list)
    for event in recent:
        by_xid[event.xid].append(event)
    findings: list[Finding] = []
    app_events = [e for xid, events in by_xid.items() if xid in APPLICATION_XIDS for e in events]
    if app_events:
        findings.append(_application_finding(subject, app_events))
    for xid, events in sorted(by_xid.items()):
        if xid in APPLICATION_XIDS:
            continue
        kind = xid_kind(xid)
        if xid == 45 and _solo(events, recent):
            findings.append(_solo_45(subject, events))
            continue
        if kind is None:
            findings.append(finding(
                "gpu.unknown_xid", "warning", subject, f"XID {xid} (not in gpudoc's catalog)", [_describe(events)],
                _UNKNOWN_CAUSE, _UNKNOWN_ACTION,
            ))
            continue
        findings.append(finding(
            kind.rule, kind.severity, subject, f"XID {xid}: {kind.meaning}", [_describe(events)],
            kind.cause, kind.action, job_id=events[-1].job_id,
        ))
    return findings


def _solo(events_45: list[XidEvent], recent: list[XidEvent]) -> bool:
    others = [e for e in recent if e.xid != 45]
    return not any(abs(o.timestamp - e.timestamp) <= SOLO_45_WINDOW for e in events_45 for o in others)


def _solo_45(subject: str, events: list[XidEvent]) -> Finding:
    return finding(
        "gpu.fabric_manager", "warning", subject, "XID 45 with no error before it: restart Fabric Manager",
        [_describe(events), f"no other XID on this GPU within {int(SOLO_45_WINDOW.total_seconds() // 60)} min"],
        "on NVSwitch systems a lone XID 45 comes from the fabric (NVIDIA's catalog: restart Fabric Manager)",
        "restart Fabric Manager (systemctl restart nvidia-fabricmanager) once the node's jobs are drained; "
        "if it repeats, check the NVSwitch trays",
    )


def _last_xid_only(gpu: GpuMetrics, subject: str) -> list[Finding]:
    """Sources like the DCGM exporter's last-XID value: it says nothing about when it happened."""
    xid = gpu.last_xid
    if not xid:
        return []
    evidence = [f"last XID reported {xid} ({xid_meaning(xid)}; time unknown: the exporter keeps the last value "
                "until the GPU is reset)"]
    if xid in APPLICATION_XIDS:
        return [finding(
            "gpu.application_xid", "info", subject, f"last XID {xid}: application error", evidence,
            "user application error, not hardware", "do not drain; hand it to the job's owner",
        )]
    kind: XidKind | None = xid_kind(xid)
    if kind is None:
        rule, severity, title = "gpu.unknown_xid", "warning", f"last XID {xid} (not in gpudoc's catalog, time unknown)"
        cause, action = _UNKNOWN_CAUSE, _UNKNOWN_ACTION
    else:
        rule, severity, title = kind.rule, kind.severity, f"last XID {xid}: {kind.meaning} (time unknown)"
        cause, action = kind.cause, kind.action
    if xid == 45:
        evidence.append("whether another XID preceded it cannot be told from the last value alone")
    # a stale GPU corroborates that the XID is current; otherwise it may be long past
    return [finding(
        rule, severity if gpu.stale else _LOWER[severity], subject, title, evidence,  # type: ignore[arg-type]
        cause, f"confirm in the kernel log (dmesg | grep Xid), then: {action}",
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
