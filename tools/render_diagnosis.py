"""A ``DiagnosisReport`` rendered for the model: most severe first, repeats grouped, info condensed.

Why grouped and condensed: on a large cluster one cause can yield the same finding on dozens of
GPUs (a rack's cooling, a stale exporter), and the analyzers may note many harmless facts. The
model needs every distinct critical and warning finding with its evidence and action; a rule
that fired on many subjects becomes one entry listing them, and info findings beyond a few are
only counted by rule.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from gpudoc.tools.compact import fit_to_budget, iso, without_none
from gpudoc.tools.diagnosis.findings import SEVERITY_ORDER, DiagnosisReport, Finding

#: Info entries listed; the rest are counted by rule.
MAX_INFO_LISTED = 5
#: Findings of one severity and rule from this many subjects on are shown as one entry.
GROUP_FROM = 4
MAX_SUBJECTS_LISTED = 24
MAX_EVIDENCE_ITEMS = 4
MAX_TEXT_CHARS = 200


def _clip(text: str, limit: int = MAX_TEXT_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def render_finding(finding: Finding) -> dict[str, Any]:
    evidence = [_clip(item) for item in finding.evidence[:MAX_EVIDENCE_ITEMS]]
    if len(finding.evidence) > MAX_EVIDENCE_ITEMS:
        evidence.append(f"+{len(finding.evidence) - MAX_EVIDENCE_ITEMS} more")
    return without_none(
        {
            "severity": finding.severity,
            "subject": finding.subject,
            "category": finding.category,
            "rule": finding.rule,
            "job": finding.job_id,
            "title": _clip(finding.title) or None,
            "evidence": evidence or None,
            "cause": _clip(finding.cause) or None,
            "action": _clip(finding.action) or None,
        }
    )


def render_group(findings: list[Finding]) -> dict[str, Any]:
    """One entry for a rule that fired on many subjects: the subjects, one example's evidence."""
    first = render_finding(findings[0])
    subjects = [f.subject for f in findings]
    if len(subjects) > MAX_SUBJECTS_LISTED:
        subjects = subjects[:MAX_SUBJECTS_LISTED] + [f"+{len(findings) - MAX_SUBJECTS_LISTED} more"]
    return without_none(
        {
            "severity": first["severity"],
            "category": first.get("category"),
            "rule": first["rule"],
            "count": len(findings),
            "subjects": subjects,
            "title": first.get("title"),
            "example": without_none({"subject": first["subject"], "evidence": first.get("evidence")}),
            "cause": first.get("cause"),
            "action": first.get("action"),
        }
    )


def _entries(findings: list[Finding]) -> list[tuple[dict[str, Any], list[Finding]]]:
    """Rendered entries with the findings each stands for, in order of each rule's first finding."""
    by_rule: dict[tuple[str, str], list[Finding]] = {}
    for finding in findings:
        by_rule.setdefault((finding.severity, finding.rule), []).append(finding)
    entries: list[tuple[dict[str, Any], list[Finding]]] = []
    for group in by_rule.values():
        if len(group) >= GROUP_FROM:
            entries.append((render_group(group), group))
        else:
            entries.extend((render_finding(f), [f]) for f in group)
    return entries


def render_diagnosis(report: DiagnosisReport) -> dict[str, Any]:
    # stable: within a severity the engine's own order (most important first) is kept
    ordered = sorted(report.findings, key=lambda f: SEVERITY_ORDER[f.severity])
    serious = _entries([f for f in ordered if f.severity != "info"])
    info = _entries([f for f in ordered if f.severity == "info"])
    listed = serious + info[:MAX_INFO_LISTED]
    condensed = [f for _, group in info[MAX_INFO_LISTED:] for f in group]
    header: dict[str, Any] = {
        "scope": report.scope,
        "time": iso(report.generated_at),
        "nodes_examined": report.nodes_examined,
        "gpus_examined": report.gpus_examined,
        "counts": report.counts(),
    }
    if report.limitations:
        header["not_examined"] = [_clip(item) for item in report.limitations]
    if not report.findings:
        header["summary"] = "no findings: nothing abnormal in the facts examined"

    def build(shown: int) -> dict[str, Any]:
        payload = {**header, "findings": [entry for entry, _ in listed[:shown]]}
        left_out = [f for _, group in listed[shown:] for f in group] + condensed
        if left_out:
            payload["not_listed"] = {
                "count": len(left_out),
                "by_rule": dict(Counter(f"{f.severity}:{f.rule}" for f in left_out).most_common()),
            }
        if shown < len(listed):
            payload["truncated"] = (
                f"showing {shown} of {len(listed)} entries, most severe first; "
                "diagnose_cluster(node='node-N') examines one node"
            )
        return payload

    return fit_to_budget(build, len(listed))
