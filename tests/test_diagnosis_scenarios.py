"""Every simulated fault is found with the right subject and severity; negative controls stay quiet."""

from __future__ import annotations

import pytest

from gpudoc.tools.diagnosis.engine import analyze
from gpudoc.tools.diagnosis.facts import gather_facts
from gpudoc.tools.diagnosis.findings import SEVERITY_ORDER, Finding
from gpudoc.tools.sim.scenarios import SCENARIOS, GroundTruth
from gpudoc.tools.sim.source import SimSource
from tests.scenario_mixes import ALL_AT_ONCE

FAULTS = [name for name, spec in SCENARIOS.items() if spec.severity is not None]


async def findings_for(*scenarios: str, seed: int = 42, nodes: int = 8) -> tuple[list[Finding], list[GroundTruth]]:
    source = SimSource.create(seed=seed, nodes=nodes, scenarios=list(scenarios), realtime=False)
    try:
        return analyze(await gather_facts(source)), list(source.ground_truth)
    finally:
        await source.aclose()


def serious(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity != "info"]


def found(truth: GroundTruth, findings: list[Finding]) -> bool:
    assert truth.severity is not None
    return any(
        SEVERITY_ORDER[f.severity] <= SEVERITY_ORDER[truth.severity]
        and (f.subject == truth.subject or (truth.job_id is not None and truth.job_id in (f.job_id, f.subject)))
        for f in findings
    )


def explained(finding: Finding, truths: list[GroundTruth]) -> bool:
    return any(t.severity is not None and (finding.subject == t.subject or (t.job_id and t.job_id in (finding.job_id, finding.subject)))
               for t in truths)


def describe(findings: list[Finding]) -> list[tuple[str, str, str]]:
    return [(f.severity, f.subject, f.rule) for f in findings]


@pytest.mark.parametrize("name", FAULTS)
async def test_fault_at_its_default_place_is_found_alone(name):
    findings, truths = await findings_for(name)
    assert truths and all(found(t, findings) for t in truths), (truths, describe(findings))
    assert [f for f in serious(findings) if not explained(f, truths)] == [], describe(findings)


@pytest.mark.parametrize("name", FAULTS)
async def test_fault_at_another_place_is_found(name):
    spec = SCENARIOS[name]
    node = (spec.default_node + 3) % 8
    where = f"node-{node}" if spec.default_gpu is None else f"node-{node}/gpu-{(spec.default_gpu + 2) % 8}"
    findings, truths = await findings_for(f"{name}@{where}", seed=7)
    assert truths and all(found(t, findings) for t in truths), (truths, describe(findings))
    assert [f for f in serious(findings) if not explained(f, truths)] == [], describe(findings)


@pytest.mark.parametrize("seed", [42, 1, 2])
async def test_healthy_cluster_has_no_critical_or_warning_finding(seed):
    findings, _ = await findings_for("healthy", seed=seed)
    assert serious(findings) == [], describe(findings)
    findings, _ = await findings_for(seed=seed)
    assert serious(findings) == [], describe(findings)


async def test_application_xid_gives_no_hardware_finding():
    findings, truths = await findings_for("app-xid")
    subject = truths[0].subject
    about = [f for f in findings if f.subject == subject]
    assert about and all(f.severity == "info" and f.category == "application" for f in about), describe(findings)
    assert serious(findings) == []


async def test_coexisting_faults_are_all_found():
    mix = ["xid79-fell-off-bus", "thermal-throttle", "host-down", "ib-flap", "straggler", "pcie-degraded"]
    findings, truths = await findings_for(*mix)
    assert len(truths) == len(mix)
    assert [t.scenario for t in truths if not found(t, findings)] == [], describe(findings)
    assert [f for f in serious(findings) if not explained(f, truths)] == [], describe(findings)


async def test_h100_cluster_thermal_fault_is_found():
    source = SimSource.create(seed=3, nodes=4, gpu_model="h100", scenarios=["thermal-throttle@node-1/gpu-1"], realtime=False)
    try:
        findings = analyze(await gather_facts(source))
        assert found(source.ground_truth[0], findings), describe(findings)
    finally:
        await source.aclose()


async def test_every_fault_at_once_on_sixteen_nodes():
    findings, truths = await findings_for(*ALL_AT_ONCE, nodes=16)
    assert [t.scenario for t in truths if t.severity and not found(t, findings)] == [], describe(findings)
    assert [f for f in serious(findings) if not explained(f, truths)] == [], describe(findings)
    # Each fault keeps its own diagnosis when crowded by others (not just some alert on the GPU).
    rules = {f.subject: f.rule for f in findings}
    assert rules["node-11/gpu-2"] == "job.straggler"
    assert rules["node-12/gpu-3"] == "gpu.application_xid"
