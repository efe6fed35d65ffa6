"""Diagnosis reports rendered for the model from hand-built findings: most severe first, one rule
on many subjects as one entry, informational findings condensed, the output budget."""

from __future__ import annotations

from gpudoc.tools.compact import OUTPUT_BUDGET_CHARS, dumps
from gpudoc.tools.diagnosis.findings import DiagnosisReport, Finding
from gpudoc.tools.render_diagnosis import MAX_INFO_LISTED, render_diagnosis
from tests.rendering_facts import NOW


def _finding(severity: str, subject: str, rule: str = "gpu.rule") -> Finding:
    return Finding(
        severity=severity,
        subject=subject,
        rule=rule,
        title=f"{rule} on {subject}",
        evidence=["temp 89.2 °C", "sw_thermal set", "SM clock 705 MHz", "peer median 62 °C", "fifth"],
        cause="cooling",
        action="check the fans",
    )


def test_diagnosis_is_most_severe_first_with_info_condensed() -> None:
    findings = [_finding("info", f"node-{i}", f"info.rule_{i}") for i in range(8)]
    findings += [
        _finding("warning", "node-1/gpu-2", "gpu.thermal_slowdown"),
        _finding("critical", "node-3/gpu-5", "gpu.xid79_fell_off_bus"),
    ]
    report = DiagnosisReport(
        generated_at=NOW, source="sim", nodes_examined=8, gpus_examined=64, findings=findings
    )
    payload = render_diagnosis(report)
    assert payload["counts"] == {"critical": 1, "warning": 1, "info": 8}
    severities = [f["severity"] for f in payload["findings"]]
    assert severities == ["critical", "warning"] + ["info"] * MAX_INFO_LISTED
    first = payload["findings"][0]
    assert first["subject"] == "node-3/gpu-5" and first["rule"] == "gpu.xid79_fell_off_bus"
    assert first["evidence"][-1] == "+1 more" and first["action"] == "check the fans"
    assert payload["not_listed"] == {
        "count": 3,
        "by_rule": {"info:info.rule_5": 1, "info:info.rule_6": 1, "info:info.rule_7": 1},
    }


def test_one_rule_on_many_subjects_is_one_entry() -> None:
    findings = [_finding("critical", f"node-{i}/gpu-0", "gpu.stale_metrics") for i in range(64)]
    findings.append(_finding("critical", "node-9/gpu-4", "gpu.xid48_double_bit_ecc"))
    report = DiagnosisReport(
        generated_at=NOW, source="sim", nodes_examined=64, gpus_examined=512, findings=findings
    )
    payload = render_diagnosis(report)
    group, single = payload["findings"]
    assert group["count"] == 64 and group["rule"] == "gpu.stale_metrics"
    assert group["subjects"][:2] == ["node-0/gpu-0", "node-1/gpu-0"] and group["subjects"][-1] == "+40 more"
    assert group["example"]["subject"] == "node-0/gpu-0" and group["example"]["evidence"][0] == "temp 89.2 °C"
    assert single["subject"] == "node-9/gpu-4" and "truncated" not in payload


def test_diagnosis_without_findings_says_so_and_many_findings_fit() -> None:
    empty = DiagnosisReport(generated_at=NOW, source="sim", nodes_examined=8, gpus_examined=64)
    assert "no findings" in render_diagnosis(empty)["summary"]
    many = [
        _finding("critical", f"node-{i}/gpu-{g}", f"gpu.rule_{i}_{g}") for i in range(64) for g in range(2)
    ]
    payload = render_diagnosis(
        DiagnosisReport(generated_at=NOW, source="sim", nodes_examined=64, gpus_examined=512, findings=many)
    )
    assert len(dumps(payload)) <= OUTPUT_BUDGET_CHARS
    assert "diagnose_cluster(node=" in payload["truncated"]
    assert payload["not_listed"]["count"] == 128 - len(payload["findings"])
