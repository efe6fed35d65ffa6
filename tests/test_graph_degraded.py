"""The no-LLM answer carries the readings behind the question, every number from the source."""

from __future__ import annotations

from gpudoc.graph.degraded import degraded_answer
from gpudoc.tools.sim.source import SimSource

REASON = "LLM endpoint http://127.0.0.1:9/v1 is unreachable."


async def test_node_question_lists_each_gpu_with_its_limits() -> None:
    sim = SimSource.create(realtime=False, scenarios=["thermal-throttle@node-2/gpu-3"])
    text, findings = await degraded_answer(sim, "Is node-2 running hot?", REASON, [])
    node = await sim.node_metrics("node-2")
    hot = node.gpus[3]
    assert text.startswith("> **Answered without the language model.**")
    assert f"| 3 | {hot.temperature_c:.1f} | {hot.utilization_pct:.0f} | {hot.power_w:.0f} |" in text
    assert "sw_thermal" in text and "max operating 85 °C" in text
    assert all(f"| {gpu.index} |" in text for gpu in node.gpus)
    assert [f.subject for f in findings if f.severity == "critical"] == ["node-2/gpu-3"]


async def test_cluster_question_gets_the_one_glance_status() -> None:
    sim = SimSource.create(realtime=False)
    status = await sim.cluster_status()
    text, _ = await degraded_answer(sim, "How is the cluster doing?", REASON, [])
    assert f"{status.node_count} nodes, {status.gpu_count} GPUs" in text
    assert f"average GPU utilisation {status.avg_utilization_pct:.1f} %" in text


async def test_stale_gpu_shows_no_numbers() -> None:
    sim = SimSource.create(realtime=False, scenarios=["xid79-fell-off-bus@node-3/gpu-5"])
    text, _ = await degraded_answer(sim, "what's wrong with node-3?", REASON, [])
    assert "| 5 | stale | stale | stale | stale | not reporting |" in text


async def test_job_question_lists_the_pending_queue_with_reasons() -> None:
    sim = SimSource.create(realtime=False, scenarios=["pending-on-drained@node-7"])
    snapshot = await sim.slurm()
    pending = [j for j in snapshot.jobs if j.state == "PENDING"]
    text, findings = await degraded_answer(sim, "Why are jobs pending?", REASON, [])
    assert f"Pending jobs ({len(pending)}), longest waiting first:" in text
    for job in pending:
        assert f"| {job.job_id} | {job.user} |" in text and (job.pending_reason or "") in text
    assert any(f.rule == "sched.pending_on_unavailable_nodes" for f in findings)


async def test_thermal_question_gets_no_queue_table() -> None:
    sim = SimSource.create(realtime=False)
    text, _ = await degraded_answer(sim, "Is node-1 running hot?", REASON, [])
    assert "Pending jobs" not in text


async def test_readings_and_counts_the_source_could_not_read_are_not_reported_not_0() -> None:
    from tests.test_watchdog_source import RecordedBackend, unreadable_values, with_changes

    current = with_changes(unreadable_values)
    source = RecordedBackend(**{"/api/metrics/current": current, "/api/metrics/gpu/node-2": current["nodes"][2]}).source()
    text, _ = await degraded_answer(source, "what's wrong with node-2?", REASON, [])
    assert "| 3 | 88.0 | not reported |" in text and "| 4 | not reported |" in text
    text, _ = await degraded_answer(source, "Why are jobs pending?", REASON, [])
    assert "Slurm queue: not reported pending, 17 running" in text


async def test_a_finding_about_a_job_says_it_is_a_job() -> None:
    sim = SimSource.create(realtime=False)
    text, findings = await degraded_answer(sim, "Why are jobs pending?", REASON, [])
    about_jobs = [f for f in findings if f.job_id is not None and f.subject == f.job_id]
    assert about_jobs  # the default cluster has jobs waiting on Priority and Resources
    assert all(f"job {f.job_id}: {f.title}" in text for f in about_jobs if f.severity == "info")
    assert not any(f"; {f.job_id}: " in text or f"Info: {f.job_id}: " in text for f in about_jobs)
