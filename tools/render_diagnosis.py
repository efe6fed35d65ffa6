"""A ``DiagnosisReport`` rendered for the model: most severe first, info findings condensed.

Why condensed info findings: on a large cluster the analyzers may note dozens of harmless
facts; the model needs every critical and warning finding with its evidence and action, and
only a count of the rest by rule.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from gpudoc.tools.compact import fit_to_budget, iso, without_none
from gpudoc.tools.diagnosis.findings import SEVERITY_ORDER, DiagnosisReport, Finding

#: Info findings listed one by one; the rest are counted by rule.
MAX_INFO_LISTED = 5
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


def render_diagnosis(report: DiagnosisReport) -> dict[str, Any]:
    ordered = sorted(report.findings, key=lambda f: (SEVERITY_ORDER[f.severity], f.subject, f.rule))
    serious = [f for f in ordered if f.severity != "info"]
    info = [f for f in ordered if f.severity == "info"]
    listed = serious + info[:MAX_INFO_LISTED]
    condensed = info[MAX_INFO_LISTED:]
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
    rendered = [render_finding(f) for f in listed]

    def build(shown: int) -> dict[str, Any]:
        payload = {**header, "findings": rendered[:shown]}
        left_out = listed[shown:] + condensed
        if left_out:
            payload["not_listed"] = {
                "count": len(left_out),
                "by_rule": dict(Counter(f"{f.severity}:{f.rule}" for f in left_out).most_common()),
            }
        if shown < len(rendered):
            payload["truncated"] = (
                f"showing {shown} of {len(rendered)} findings, most severe first; "
                "diagnose_cluster(node='node-N') examines one node"
            )
        return payload

    return fit_to_budget(build, len(rendered))
