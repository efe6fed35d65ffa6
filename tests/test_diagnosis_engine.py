"""``diagnose`` end to end over a source: facts gathered once, degraded sources, node scoping."""

from __future__ import annotations

import pytest

from gpudoc.tools.diagnosis.engine import diagnose
from gpudoc.tools.diagnosis.facts import gather_facts
from gpudoc.tools.models import AlertEvent
from gpudoc.tools.sources.base import NotSupportedError, SourceUnavailableError, UnknownNodeError
from tests.doubles.fake_cluster import FakeClusterSource


class NoAlertHistorySource(FakeClusterSource):
    """A source whose alert history is not supported and whose GPU history backend is down."""

    async def alert_history(self, limit: int = 50) -> list[AlertEvent]:
        raise NotSupportedError("no alert history")

    async def gpu_history(self, node_id=None, duration_minutes=60):
        raise SourceUnavailableError("history backend timed out")


async def test_diagnose_reports_the_lost_gpu_the_down_host_and_the_firing_alert():
    report = await diagnose(FakeClusterSource())

    assert [(f.severity, f.subject, f.rule) for f in report.findings] == [
        ("critical", "node-1/gpu-1", "gpu.xid79_fell_off_bus"),
        ("critical", "node-2", "node.host_down"),
        ("warning", "node-0/gpu-3", "alert.active"),
    ]
    lost = report.findings[0]
    assert any("gres/gpu count too low (2 < 3)" in line for line in lost.evidence)
    assert (report.scope, report.nodes_examined, report.gpus_examined) == ("cluster", 3, 11)
    assert "Slurm job list: not reported by this source" in report.limitations


async def test_node_scope_is_normalised_and_filters():
    report = await diagnose(FakeClusterSource(), "Node 2")
    assert report.scope == "node-2"
    assert [f.rule for f in report.findings] == ["node.host_down"]


async def test_unknown_node_propagates_with_valid_ids():
    with pytest.raises(UnknownNodeError, match="node-0, node-1, node-2"):
        await diagnose(FakeClusterSource(), "node-9")


async def test_missing_parts_degrade_to_limitations_not_errors():
    facts = await gather_facts(NoAlertHistorySource())
    assert facts.alert_events is None and facts.history is None
    assert "alert history: not provided by this source" in facts.limitations
    assert "GPU history: unavailable (history backend timed out)" in facts.limitations

    report = await diagnose(NoAlertHistorySource())
    assert {f.rule for f in report.findings} == {"gpu.xid79_fell_off_bus", "node.host_down"}


async def test_cluster_without_slurm_still_diagnoses_gpus():
    report = await diagnose(FakeClusterSource(has_slurm=False))
    assert report.findings[0].rule == "gpu.xid79_fell_off_bus"
