"""The diagnosis on facts real Slurm produced (the 22.05 recording), next to telemetry built for
each case: drains whose reason names an XID, the node whose slurmd died, jobs pending on
drained or down nodes, queue waits, allocated GPUs idle by telemetry, and a NODE_FAIL right
after an XID on the job's node."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from gpudoc.tools.diagnosis.engine import analyze
from gpudoc.tools.diagnosis.facts import ClusterFacts
from gpudoc.tools.diagnosis.findings import Finding
from gpudoc.tools.models import NodeMetrics, SlurmSnapshot, XidEvent
from tests.diagnosis_builders import NOW, cluster, replace_gpu, replace_series
from tests.slurm_fixtures import NOW as RECORDED_NOW
from tests.slurm_fixtures import job_id, scenario, snapshot

DRAINED, DEAD = scenario()["drained"], scenario()["dead"]


def shifted(value: Any, delta: timedelta) -> Any:
    if isinstance(value, datetime):
        return value + delta
    if isinstance(value, dict):
        return {k: shifted(v, delta) for k, v in value.items()}
    if isinstance(value, list):
        return [shifted(v, delta) for v in value]
    return value


def real_slurm() -> SlurmSnapshot:
    """The recorded Slurm facts, moved in time (all together) to the builders' clock."""
    return SlurmSnapshot.model_validate(shifted(snapshot().model_dump(), NOW - RECORDED_NOW))


def facts_with_real_slurm() -> ClusterFacts:
    """Four healthy nodes of telemetry (no XIDs reported, as GPU Watchdog) under the real Slurm."""
    facts = cluster(4)
    facts.slurm = real_slurm()
    for node in range(4):
        for gpu in range(8):
            replace_gpu(facts, node, gpu, xid_events=None, job_id=None)
    return facts


def about(findings: list[Finding], subject: str) -> Finding:
    return next(f for f in findings if f.subject == subject)


def job(role: str):
    return next(j for j in real_slurm().jobs if j.job_id == job_id(role))


def test_a_drain_reason_naming_an_xid_without_telemetry_to_confirm_it_is_a_warning_to_check():
    findings = analyze(facts_with_real_slurm())  # telemetry without XIDs, as GPU Watchdog
    drained = about(findings, DRAINED)
    assert (drained.rule, drained.severity, drained.category, drained.gpus) == (
        "node.drained_for_xid", "warning", "hardware", [f"{DRAINED}/gpu-5"])
    assert "XID 79 GPU 5 per its reason, not confirmed by telemetry" in drained.title
    assert any('reason "XID 79 on gpu-5"' in line and "set by root" in line for line in drained.evidence)
    assert "telemetry cannot confirm it: the source reports no XIDs for GPU 5" in drained.evidence
    assert "dmesg" in drained.action and "nvidia-smi -q -i 5" in drained.action and "RMA" in drained.action
    assert f"scontrol update nodename={DRAINED} state=resume" in drained.action
    # the jobs waiting on the node still fold into it
    assert any(f"jobs {job_id('pinned')} ask for {DRAINED} by name" in line for line in drained.evidence)


def test_a_drain_reason_telemetry_contradicts_says_so():
    facts = facts_with_real_slurm()
    for gpu in range(8):  # the source reports XIDs, and saw none on the node
        replace_gpu(facts, 3, gpu, xid_events=[], last_xid=None)
    replace_gpu(facts, 3, 5, xid_events=[XidEvent(xid=79, timestamp=NOW - timedelta(days=3))])  # long ago
    drained = about(analyze(facts), DRAINED)
    assert (drained.rule, drained.severity) == ("node.drained_for_xid", "warning")
    assert "telemetry shows no XID 79 on GPU 5 in the last 24 h" in drained.evidence


def test_a_drain_reason_the_exporters_last_xid_confirms_is_critical():
    facts = facts_with_real_slurm()
    replace_gpu(facts, 3, 5, xid_events=None, last_xid=79)  # dcgm-exporter's last-XID gauge
    drained = about(analyze(facts), DRAINED)
    assert (drained.rule, drained.severity, drained.gpus) == ("node.drained_for_xid", "critical", [f"{DRAINED}/gpu-5"])
    assert drained.title == "node drained for XID 79 GPU 5: GPU has fallen off the bus"
    assert "telemetry confirms: GPU 5's last XID is 79" in drained.evidence and "RMA" in drained.action


def test_with_the_xid_in_telemetry_the_drain_folds_into_the_gpu_finding():
    facts = facts_with_real_slurm()
    replace_gpu(facts, 3, 5, xid_events=[XidEvent(xid=79, timestamp=NOW - timedelta(minutes=3))], stale=True,
                last_seen=NOW - timedelta(minutes=3))
    findings = analyze(facts)
    gpu = about(findings, f"{DRAINED}/gpu-5")
    assert gpu.rule == "gpu.xid79_fell_off_bus" and not [f for f in findings if f.subject == DRAINED]
    assert any("the drain reason names XID 79" in line for line in gpu.evidence)


def test_the_node_whose_slurmd_died():
    findings = analyze(facts_with_real_slurm())
    dead = about(findings, DEAD)
    assert (dead.rule, dead.severity) == ("node.slurm_not_responding", "warning")
    assert "slurmd" in dead.cause and "state=resume" in dead.action
    assert any("DOWN+NOT_RESPONDING (down*)" in line and 'reason "Not responding"' in line for line in dead.evidence)


def test_the_dead_node_without_telemetry_is_a_host_down():
    facts = facts_with_real_slurm()
    facts.nodes[2] = NodeMetrics(node_id=DEAD, hostname=DEAD, timestamp=NOW, reachable=False)
    facts.history = [s for s in facts.history if s.node_id != DEAD]
    dead = about(analyze(facts), DEAD)
    assert (dead.rule, dead.severity) == ("node.host_down", "critical")
    assert any("Not responding" in line for line in dead.evidence)
    assert any(f"jobs ended NODE_FAIL: {job_id('multi')}" in line for line in dead.evidence)


def test_jobs_pending_on_the_drained_and_the_down_node_carry_the_reason():
    findings = analyze(facts_with_real_slurm())
    drained = about(findings, DRAINED)
    assert any(f"{DRAINED} draining: 8 GPUs closed to new jobs; reason \"XID 79 on gpu-5\"" in line
               for line in drained.evidence)
    assert any(f"jobs {job_id('pinned')} ask for {DRAINED} by name (ReqNodeNotAvail)" in line for line in drained.evidence)
    dead = about(findings, DEAD)
    assert any(f"{DEAD} down*: 8 GPUs closed to new jobs" in line for line in dead.evidence)
    assert any(f"pending: {job_id('big')}" in line for line in dead.evidence)


def test_queue_waits_are_explained_with_capacity():
    findings = analyze(facts_with_real_slurm())
    waits = {f.job_id: f for f in findings if f.rule == "sched.jobs_waiting"}
    resources, priority = waits[job_id("big")], waits[job_id("next")]
    assert resources.severity == priority.severity == "info"
    assert "waiting on Resources" in resources.title and "waiting on Priority" in priority.title
    assert resources.evidence[1] == (f"gpu: 32 GPUs, 10 allocated, 8 free on nodes taking jobs; 16 on nodes out of "
                                     f"service ({DEAD} down*, {DRAINED} draining)")
    assert "held by running jobs" in resources.cause and "wait their turn" in priority.cause


def test_allocated_gpus_idle_by_telemetry():
    facts = facts_with_real_slurm()
    train = job("train")  # the real allocation: node-0, GPU indices 0-7 from gres_detail
    started = train.model_copy(update={"start_time": NOW - timedelta(hours=2)})  # as if running for 2 h
    facts.slurm.jobs = [started if j.job_id == train.job_id else j for j in facts.slurm.jobs]
    for gpu in train.gpu_indices["node-0"]:
        replace_gpu(facts, 0, gpu, utilization_pct=0.0)
        replace_series(facts, 0, gpu, utilization_pct=0.0)
    idle = next(f for f in analyze(facts) if f.rule == "job.gpus_idle")
    assert (idle.subject, idle.severity, idle.nodes) == (train.job_id, "warning", ["node-0"])
    assert idle.evidence[0] == "8 GPU(s) at <=1% utilization for at least 60 min (node-0 GPU 0,1,2,3,4,5,6,7)"
    assert "'llama3-8b-sft' of root in gpu" in idle.evidence[1]


def test_a_node_fail_right_after_an_xid_on_its_node_names_the_xid():
    facts = facts_with_real_slurm()
    multi = job("multi")  # NODE_FAIL when node-2's slurmd died; Slurm no longer says which GPUs it held
    replace_gpu(facts, 2, 3, xid_events=[XidEvent(xid=79, timestamp=multi.end_time - timedelta(seconds=40))])
    findings = analyze(facts)
    gpu = about(findings, f"{DEAD}/gpu-3")
    assert gpu.rule == "gpu.xid79_fell_off_bus" and gpu.job_id == multi.job_id
    assert any(f"{multi.job_id}: XID 79 (GPU has fallen off the bus) on {DEAD} GPU 3" in line and
               "0.7 min before the job ended" in line for line in gpu.evidence)


def test_an_xid_long_before_the_node_fail_is_not_blamed():
    facts = facts_with_real_slurm()
    multi = job("multi")
    replace_gpu(facts, 2, 3, xid_events=[XidEvent(xid=79, timestamp=multi.end_time - timedelta(hours=1))])
    findings = analyze(facts)
    assert not any("before the job ended" in line for f in findings for line in f.evidence)
    assert any(f"job {multi.job_id} 'gpt-neox-20b' of root ended NODE_FAIL" in line for f in findings for line in f.evidence)


def test_a_healthy_controller_says_nothing_and_a_backed_up_one_is_reported():
    facts = facts_with_real_slurm()
    assert not [f for f in analyze(facts) if f.rule == "sched.controller_unhealthy"]  # the real /diag
    facts.slurm.scheduler = facts.slurm.scheduler.model_copy(update={"agent_queue_size": 340, "schedule_cycle_last_us": 3_400_000})
    found = next(f for f in analyze(facts) if f.rule == "sched.controller_unhealthy")
    assert (found.severity, found.subject, found.nodes) == ("warning", "slurmctld", [])
    assert found.evidence[0] == "agent queue 340 RPCs waiting (>= 100)" and "3.4 s" in found.evidence[1]
    facts.slurm.scheduler = facts.slurm.scheduler.model_copy(update={"responding": False})
    down = next(f for f in analyze(facts) if f.rule == "sched.controller_unhealthy")
    assert down.severity == "critical" and "does not answer" in down.title
