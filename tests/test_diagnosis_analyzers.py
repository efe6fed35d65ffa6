"""Analyzer rules on hand-built facts: exact evidence numbers, negative controls, merging."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.diagnosis_builders import NOW, cluster, job, replace_gpu, replace_series, slurm_node
from gpudoc.tools.diagnosis.engine import analyze
from gpudoc.tools.diagnosis.findings import Finding
from gpudoc.tools.models import AlertEvent, ClockEventReason, NetworkPort, XidEvent


def serious(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity in ("critical", "warning")]


def only(findings: list[Finding]) -> Finding:
    assert len(findings) == 1, [(f.severity, f.subject, f.rule) for f in findings]
    return findings[0]


def xid(number: int, minutes_ago: int = 5, job_id: str | None = "1001") -> XidEvent:
    return XidEvent(xid=number, timestamp=NOW - timedelta(minutes=minutes_ago), job_id=job_id)


def test_healthy_busy_cluster_has_no_findings():
    assert analyze(cluster()) == []


# -- XIDs --------------------------------------------------------------------------------------


def test_fell_off_bus_signals_merge_into_one_critical_gpu_finding():
    facts = cluster()
    replace_gpu(facts, 1, 5, xid_events=[xid(79, 20)], stale=True, last_seen=NOW - timedelta(minutes=20))
    facts.slurm.nodes[1] = facts.slurm.nodes[1].model_copy(update=dict(
        state=["IDLE", "DRAIN"], reason="gres/gpu count too low (7 < 8)", reason_set_at=NOW - timedelta(minutes=18)))
    facts.slurm.jobs[1] = facts.slurm.jobs[1].model_copy(update=dict(state="NODE_FAIL", end_time=NOW - timedelta(minutes=19)))

    result = only(analyze(facts))

    assert (result.severity, result.subject, result.rule) == ("critical", "node-1/gpu-5", "gpu.xid79_fell_off_bus")
    text = "\n".join(result.evidence)
    assert "XID 79 (GPU has fallen off the bus), last at 2025-03-14 11:40:00Z in job 1001" in text
    assert "GPU series stale; last reading 11:40:00Z" in text
    assert 'node-1: Slurm state IDLE+DRAIN (drained), reason "gres/gpu count too low (7 < 8)" since 11:42Z (18 min ago)' in text
    # merged evidence names its subject once: a line that names it stays as it is, others say it first
    assert "\njob 1001 'train' of alice ended NODE_FAIL at 11:41:00Z on node-1" in text
    assert "1001: job 1001" not in text
    # the NODE_FAIL is tied to the XID that caused it, a minute earlier on the job's node
    assert "job 1001: XID 79 (GPU has fallen off the bus) on node-1 GPU 5 at 11:40:00Z, 1 min before the job ended" in text
    assert result.job_id == "1001"
    assert "RMA" in result.action and result.category == "hardware"


@pytest.mark.parametrize("number", [13, 31, 43])
def test_single_application_xid_is_info_and_says_do_not_drain(number):
    facts = cluster()
    replace_gpu(facts, 2, 1, xid_events=[xid(number)])

    result = only(analyze(facts))

    assert (result.severity, result.rule, result.category) == ("info", "gpu.application_xid", "application")
    assert "not hardware" in result.title and "do not drain" in result.title
    assert result.job_id == "1001"


def test_same_gpu_repeating_application_xids_across_jobs_is_a_lemon_suspect():
    facts = cluster()
    replace_gpu(facts, 2, 1, xid_events=[xid(31, 300, "900"), xid(13, 120, "950"), xid(31, 5, "1002")])

    result = only(analyze(facts))

    assert (result.severity, result.rule, result.subject) == ("warning", "gpu.lemon_suspect", "node-2/gpu-1")
    assert "jobs affected: 1002, 900, 950" in result.evidence


def test_old_xid_outside_lookback_is_ignored():
    facts = cluster()
    replace_gpu(facts, 0, 0, xid_events=[xid(79, 60 * 48)])
    assert analyze(facts) == []


def test_last_xid_without_event_times_is_reported_one_level_lower():
    facts = cluster()
    replace_gpu(facts, 0, 2, xid_events=None, last_xid=48)

    result = only(analyze(facts))

    assert (result.severity, result.rule) == ("warning", "gpu.ecc_uncorrectable")
    assert "time unknown" in result.evidence[0]


def test_gsp_hang_with_kill_task_failed_is_one_finding():
    facts = cluster()
    replace_gpu(facts, 3, 2, xid_events=[xid(119, 12)], stale=True, last_seen=NOW - timedelta(minutes=12))
    facts.slurm.nodes[3] = facts.slurm.nodes[3].model_copy(update=dict(
        state=["MIXED", "DRAIN"], reason="Kill task failed", reason_set_at=NOW - timedelta(minutes=8)))

    result = only(serious(analyze(facts)))

    assert (result.severity, result.subject, result.rule) == ("critical", "node-3/gpu-2", "gpu.gsp_error")
    assert any('reason "Kill task failed"' in line for line in result.evidence)


# -- memory -------------------------------------------------------------------------------------


def test_uncorrectable_remap_pending_is_critical_and_merges_with_xid():
    facts = cluster()
    replace_gpu(facts, 2, 1, xid_events=[xid(95, 3)], uncorrectable_remapped_rows=1, remap_pending=True)

    result = only(analyze(facts))

    assert (result.severity, result.rule) == ("critical", "gpu.ecc_uncorrectable")
    assert "correctable remapped rows 0, uncorrectable remapped rows 1, remap pending yes" in result.evidence


def test_row_remap_failure_is_critical():
    facts = cluster()
    replace_gpu(facts, 1, 2, remap_failure=True, uncorrectable_remapped_rows=8)
    result = only(analyze(facts))
    assert (result.severity, result.rule, result.subject) == ("critical", "gpu.row_remap_failure", "node-1/gpu-2")


def test_correctable_rows_trend_is_a_warning_with_numbers():
    facts = cluster()
    replace_gpu(facts, 1, 6, correctable_remapped_rows=11)
    replace_series(facts, 1, 6, correctable_remapped_rows=lambda m: 3 + m * 8 // 60)

    result = only(analyze(facts))

    assert (result.severity, result.rule) == ("warning", "gpu.ecc_correctable_storm")
    assert result.evidence[0] == "correctable remapped rows 3 -> 11 (+8) in 60 min"


def test_applied_uncorrectable_remaps_alone_are_info():
    facts = cluster()
    replace_gpu(facts, 0, 0, uncorrectable_remapped_rows=1)
    assert only(analyze(facts)).severity == "info"


# -- thermal ------------------------------------------------------------------------------------


def test_thermal_slowdown_evidence_carries_the_numbers():
    facts = cluster()
    for index in range(8):
        replace_gpu(facts, 0, index, temperature_c=71.4)
    bits = int(ClockEventReason.SW_THERMAL | ClockEventReason.HW_SLOWDOWN)
    replace_gpu(facts, 0, 7, temperature_c=88.6, clock_event_reasons=bits, sm_clock_mhz=705.0)

    result = only(analyze(facts))

    assert (result.severity, result.subject, result.rule) == ("critical", "node-0/gpu-7", "gpu.thermal_slowdown")
    assert result.evidence[0] == (
        "temperature 88.6 °C (slowdown 89 °C, max operating 85 °C); 17.2 °C above node median 71.4 °C "
        "of 7 similarly loaded GPUs; hw_slowdown+sw_thermal; SM clock 705 MHz of 1410; utilization 95%, power 350 W"
    )


def test_thermal_throttling_is_reported_when_the_temperature_is_unreadable():
    facts = cluster()
    bits = int(ClockEventReason.SW_THERMAL | ClockEventReason.HW_SLOWDOWN)
    replace_gpu(facts, 0, 7, temperature_c=None, clock_event_reasons=bits, sm_clock_mhz=705.0)
    thermal = [f for f in analyze(facts) if f.rule == "gpu.thermal_slowdown"]
    assert [(f.severity, f.subject, f.title) for f in thermal] == [
        ("warning", "node-0/gpu-7", "thermal clock-event reasons active")]
    assert thermal[0].evidence[0].startswith("temperature not reported (slowdown 89 °C")


def test_gpu_much_hotter_than_loaded_peers_is_a_warning():
    facts = cluster()
    replace_gpu(facts, 1, 3, temperature_c=82.0)
    result = only(analyze(facts))
    assert (result.severity, result.rule) == ("warning", "gpu.hot_vs_peers")


def test_loaded_gpu_is_not_compared_with_idle_peers():
    facts = cluster(history=False)
    for index in range(8):
        replace_gpu(facts, 1, index, utilization_pct=0.0, temperature_c=30.0, job_id=None)
    replace_gpu(facts, 1, 0, utilization_pct=98.0, temperature_c=70.0)
    assert serious(analyze(facts)) == []


# -- power, PCIe, NVLink --------------------------------------------------------------------------


def test_power_brake_and_cap_on_one_gpu_merge_into_one_warning():
    facts = cluster()
    replace_gpu(facts, 2, 0, clock_event_reasons=int(ClockEventReason.HW_POWER_BRAKE | ClockEventReason.HW_SLOWDOWN),
                power_limit_w=150.0, power_w=148.0, sm_clock_mhz=420.0)

    result = only(analyze(facts))

    assert (result.severity, result.subject, result.rule) == ("warning", "node-2/gpu-0", "gpu.power_brake")
    assert "gpu-0: enforced power limit 150 W, default 400 W; drawing 148 W, SM clock 420 MHz of 1410" in result.evidence


def test_power_cap_on_all_gpus_is_one_node_finding():
    facts = cluster()
    for index in range(8):
        replace_gpu(facts, 1, index, power_limit_w=250.0)
    result = only(analyze(facts))
    assert (result.subject, result.rule) == ("node-1", "node.power_cap_below_default")


def test_lower_pcie_generation_on_idle_gpu_is_normal():
    facts = cluster()
    replace_gpu(facts, 3, 4, utilization_pct=0.0, pcie_link_gen=1, job_id=None)
    facts.slurm.jobs[3] = facts.slurm.jobs[3].model_copy(update=dict(gpu_indices={"node-3": [0, 1, 2, 3, 5, 6, 7]}, gpus=7))
    assert analyze(facts) == []


def test_narrow_pcie_link_under_load_and_replays_are_one_warning():
    facts = cluster()
    replace_gpu(facts, 3, 4, pcie_link_width=8)
    replace_series(facts, 3, 4, pcie_replay_count=lambda m: m * 12)

    result = only(analyze(facts))

    assert (result.severity, result.rule) == ("warning", "gpu.pcie_link_degraded")
    assert result.evidence == ["link x8 of x16, Gen4 of Gen4, at 95% utilization",
                               "PCIe replays 0 -> 720 (+720) in 60 min, 12/min"]


def test_nvlink_links_down_with_xid74_is_critical():
    facts = cluster()
    replace_gpu(facts, 2, 3, xid_events=[xid(74, 7)], nvlink_links_down=2, nvlink_bandwidth_gbps=60.0)
    replace_series(facts, 2, 3, nvlink_error_count=lambda m: m * 40)

    result = only(analyze(facts))

    assert (result.severity, result.rule) == ("critical", "gpu.nvlink_error")
    assert "NVLink errors 0 -> 2400 (+2400) in 60 min" in result.evidence
    assert "NVLink bandwidth 60 GB/s vs peers' median 200 GB/s" in result.evidence


# -- hosts and network ----------------------------------------------------------------------------


def test_host_down_is_one_node_finding_with_failed_jobs():
    facts = cluster()
    facts.nodes[2] = facts.nodes[2].model_copy(update=dict(reachable=False, timestamp=NOW - timedelta(minutes=9)))
    facts.slurm.nodes[2] = facts.slurm.nodes[2].model_copy(update=dict(state=["DOWN", "NOT_RESPONDING"], reason="Not responding"))
    facts.slurm.jobs[2] = facts.slurm.jobs[2].model_copy(update=dict(state="NODE_FAIL", end_time=NOW - timedelta(minutes=8)))

    result = only(analyze(facts))

    assert (result.severity, result.subject, result.rule, result.category) == ("critical", "node-2", "node.host_down", "host")
    assert "jobs ended NODE_FAIL: 1002" in result.evidence


def test_a_silent_node_slurm_still_runs_jobs_on_is_not_reporting_telemetry_not_down():
    facts = cluster()
    facts.nodes[2] = facts.nodes[2].model_copy(update=dict(reachable=False, gpus=[]))
    facts.slurm.nodes[2] = facts.slurm.nodes[2].model_copy(update=dict(state=["ALLOCATED"]))

    result = only(analyze(facts))

    assert (result.severity, result.subject, result.rule) == ("warning", "node-2", "node.no_telemetry")
    assert result.title == "not reporting telemetry; Slurm reports it alloc"
    assert "Slurm state ALLOCATED (alloc)" in result.evidence[1] and "exporter" in result.action


def test_a_slurm_node_without_any_metrics_is_reported_with_its_state():
    facts = cluster()
    facts.slurm.nodes.append(slurm_node(7, state=["IDLE"]))
    facts.slurm.nodes.append(slurm_node(8, state=["DOWN"]))

    found = {f.subject: f for f in analyze(facts)}

    assert (found["node-7"].rule, found["node-7"].severity) == ("node.no_telemetry", "warning")
    assert (found["node-8"].rule, found["node-8"].severity) == ("node.host_down", "critical")


def test_ib_port_down_blames_the_network_not_the_gpus():
    facts = cluster()
    facts.nodes[1].network = [NetworkPort(device="mlx5_0", state_id=1, link_downed_total=9)]

    result = only(analyze(facts))

    assert (result.severity, result.subject, result.rule, result.category) == ("critical", "node-1", "net.ib_port_down", "network")
    assert result.evidence[0] == "mlx5_0 port 1: state 1 (DOWN), link_downed_total 9 (cluster median 0)"
    assert "not the GPU" in result.action


def test_active_but_flapping_ib_link_is_a_warning():
    facts = cluster()
    facts.nodes[1].network = [NetworkPort(device="mlx5_0", state_id=4, link_downed_total=6)]
    assert only(analyze(facts)).rule == "net.ib_link_flapping"


def test_drained_node_without_explanation_stands_alone():
    facts = cluster()
    facts.slurm.nodes[0] = facts.slurm.nodes[0].model_copy(update=dict(state=["MIXED", "DRAIN"], reason="bad fan tray"))
    result = only(analyze(facts))
    assert (result.severity, result.rule, result.subject) == ("warning", "node.drained", "node-0")


# -- jobs and scheduling --------------------------------------------------------------------------


def test_straggler_is_the_slow_gpu_with_its_job():
    facts = cluster()
    replace_gpu(facts, 1, 6, utilization_pct=0.0)
    replace_series(facts, 1, 6, utilization_pct=lambda m: 95.0 if m < 40 else 0.0)

    result = only(analyze(facts))

    assert (result.severity, result.subject, result.rule, result.job_id) == ("warning", "node-1/gpu-6", "job.straggler", "1001")
    assert result.evidence[:3] == ["utilization 0% vs median 95% of the job's other 7 GPUs",
                                   "last 10 min mean 0% vs peers 95%",
                                   "at 0% for 20 min: the rank looks hung"]


def test_momentary_dip_is_not_a_straggler():
    facts = cluster()
    replace_gpu(facts, 1, 6, utilization_pct=10.0)
    assert analyze(facts) == []


def test_idle_allocation_names_the_job():
    facts = cluster()
    for index in range(4):
        replace_gpu(facts, 3, index, utilization_pct=0.0, job_id="2001")
        replace_series(facts, 3, index, utilization_pct=lambda m: 90.0 if m < 15 else 0.0)
    facts.slurm.jobs[3] = facts.slurm.jobs[3].model_copy(update=dict(gpu_indices={"node-3": [4, 5, 6, 7]}, gpus=4))
    facts.slurm.jobs.append(job("2001", 3, gpus=4, gpu_indices={"node-3": [0, 1, 2, 3]}, user="bob"))

    result = only(analyze(facts))

    assert (result.severity, result.subject, result.rule, result.nodes) == ("warning", "2001", "job.gpus_idle", ["node-3"])
    assert result.evidence[0] == "4 GPU(s) at <=1% utilization for 45 min (node-3 GPU 0,1,2,3)"


def test_jobs_pending_while_a_node_sits_drained():
    facts = cluster()
    facts.slurm.nodes[3] = facts.slurm.nodes[3].model_copy(update=dict(state=["IDLE", "DRAIN"], reason="admin: cable check", gpus_alloc=0))
    facts.slurm.jobs[3] = facts.slurm.jobs[3].model_copy(update=dict(state="COMPLETED"))
    for job_id in ("3001", "3002"):
        facts.slurm.jobs.append(job(job_id, 0, state="PENDING", pending_reason="Resources", nodes=[], gpu_indices={}, start_time=None))
    for index in range(8):
        replace_gpu(facts, 3, index, utilization_pct=0.0, job_id=None)

    result, waiting = analyze(facts)

    assert (result.severity, result.subject, result.rule) == ("warning", "node-3", "sched.pending_on_unavailable_nodes")
    assert result.evidence == ['node-3 drained: 8 GPUs closed to new jobs; reason "admin: cable check"',
                               "pending: 3001, 3002; 16 GPUs requested",
                               'Slurm state IDLE+DRAIN (drained), reason "admin: cable check"']
    assert (waiting.severity, waiting.rule, waiting.job_id) == ("info", "sched.jobs_waiting", "3001")


def test_jobs_pending_on_nodes_whose_gpu_counts_the_source_does_not_report():
    """No GPU count from Slurm is "count not reported", never 0 GPUs or a count made up."""
    facts = cluster()
    facts.slurm.nodes[:] = [n.model_copy(update=dict(gpus_total=None, gpus_alloc=None)) for n in facts.slurm.nodes]
    facts.slurm.nodes[3] = facts.slurm.nodes[3].model_copy(update=dict(state=["IDLE", "DRAIN"], reason="fan"))
    facts.slurm.jobs[3] = facts.slurm.jobs[3].model_copy(update=dict(state="COMPLETED"))
    facts.slurm.jobs.append(job("3001", 0, state="PENDING", pending_reason="Resources", nodes=[], gpu_indices={}, start_time=None))
    for index in range(8):
        replace_gpu(facts, 3, index, utilization_pct=0.0, job_id=None)

    result, waiting = analyze(facts)

    assert result.evidence[0] == 'node-3 drained: its GPUs (count not reported) closed to new jobs; reason "fan"'
    assert waiting.evidence[1] == "gpu: GPU counts not reported by this source"


def test_qos_limits_are_info():
    facts = cluster()
    facts.slurm.jobs.append(job("4001", 0, state="PENDING", pending_reason="QOSMaxGRESPerUser", nodes=[], gpu_indices={}, start_time=None))
    result = only(analyze(facts))
    assert (result.severity, result.rule) == ("info", "sched.qos_limit")


# -- alerts, scoping, ordering --------------------------------------------------------------------


def alert(node_id: str, gpu_index: int | None, metric: str, value: float, threshold: float) -> AlertEvent:
    return AlertEvent(id="a1", rule_id="r1", rule_name=f"high {metric}", node_id=node_id, gpu_index=gpu_index,
                      metric=metric, value=value, threshold=threshold, condition="gt", fired_at=NOW - timedelta(minutes=4))


def test_alert_on_a_gpu_with_a_finding_joins_its_evidence():
    facts = cluster()
    replace_gpu(facts, 1, 3, temperature_c=82.0)
    facts.alert_events = [alert("node-1", 3, "temperature_c", 82.0, 80.0)]
    result = only(analyze(facts))
    assert "alert 'high temperature_c' firing since 11:56Z: temperature_c 82 > 80" in result.evidence


def test_alert_nothing_explains_stands_alone():
    facts = cluster()
    facts.alert_events = [alert("node-0", None, "utilization", 99.0, 98.0)]
    assert only(analyze(facts)).rule == "alert.active"


def test_node_scope_keeps_only_that_nodes_findings_and_order_is_most_severe_first():
    facts = cluster()
    replace_gpu(facts, 1, 3, temperature_c=82.0)
    replace_gpu(facts, 2, 0, remap_failure=True)
    replace_gpu(facts, 2, 4, xid_events=[xid(13)])

    everything = analyze(facts)
    assert [(f.severity, f.subject) for f in everything] == [
        ("critical", "node-2/gpu-0"), ("warning", "node-1/gpu-3"), ("info", "node-2/gpu-4")]
    assert [f.subject for f in analyze(facts, "node-2")] == ["node-2/gpu-0", "node-2/gpu-4"]
