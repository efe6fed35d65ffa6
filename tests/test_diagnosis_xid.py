"""The XID catalog against NVIDIA's, and the XID and row-remap findings it drives."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from gpudoc.tools.diagnosis.engine import analyze
from gpudoc.tools.diagnosis.memory import analyze_memory
from gpudoc.tools.diagnosis.xid import analyze_xids
from gpudoc.tools.diagnosis.xid_catalog import APPLICATION_XIDS, CRITICAL_XIDS, XID_CATALOG
from gpudoc.tools.models import XidEvent
from tests.diagnosis_builders import NOW, cluster, replace_gpu

RULES_FILE = Path(__file__).resolve().parents[1] / "infra" / "prometheus" / "gpudoc-rules.yml"

#: in NVIDIA's catalog (and leptonai/gpud's copy) with an action an operator takes
HARDWARE_XIDS = [46, 48, 54, 62, 64, 74, 79, 95, 110, 119, 120, 136, 140, 143, 149, 158, 171, 172]
NVLINK5_XIDS = list(range(144, 151))
APPLICATION_SIDE = [8, 13, 31, 32, 39, 40, 41, 43, 68, 69]


def test_catalog_covers_nvidias_codes_that_need_action() -> None:
    for xid in [*HARDWARE_XIDS, *NVLINK5_XIDS, 45, 61, 63, 92, 94, 109, *range(154, 159), *APPLICATION_SIDE]:
        assert xid in XID_CATALOG, xid
    assert set(APPLICATION_SIDE) == APPLICATION_XIDS
    assert set(HARDWARE_XIDS) == CRITICAL_XIDS


def test_catalog_says_where_references_disagree_or_changed() -> None:
    assert "disputed" in XID_CATALOG[109].meaning
    assert "unused" in XID_CATALOG[61].meaning and "62" in XID_CATALOG[61].meaning
    # 64 means the bank is out of spare rows: the same advice as the row-remap analyzer gives
    assert "open an RMA" in XID_CATALOG[64].action and "dcgmi diag -r 3" in XID_CATALOG[64].action


def test_shipped_critical_xid_alert_matches_the_catalog() -> None:
    rules = yaml.safe_load(RULES_FILE.read_text())
    expr = next(r["expr"] for g in rules["groups"] for r in g["rules"] if r.get("alert") == "GpuXidCritical")
    alternatives = {re.findall(r'err_code=~"([^"]+)"', expr)[0], re.findall(r'xid=~"([^"]+)"', expr)[0]}
    assert len(alternatives) == 1
    assert {int(code) for code in alternatives.pop().split("|")} == CRITICAL_XIDS


def _events(*xids: int, minutes_ago: float = 5) -> list[XidEvent]:
    return [XidEvent(xid=xid, timestamp=NOW - timedelta(minutes=minutes_ago), job_id="1001") for xid in xids]


@pytest.mark.parametrize("xid", [140, 46, 143, 158, 54, 110, 136, 149])
def test_hardware_xid_is_critical_from_events_and_from_the_last_value(xid: int) -> None:
    facts = cluster(2)
    replace_gpu(facts, 1, 2, xid_events=_events(xid), last_xid=xid)
    from_events = [f for f in analyze_xids(facts) if f.subject == "node-1/gpu-2"]
    assert [f.severity for f in from_events] == ["critical"], from_events
    # the exporter case: only the last value, no time; reported one level lower, never dropped
    replace_gpu(facts, 1, 2, xid_events=None, last_xid=xid)
    last_only = [f for f in analyze_xids(facts) if f.subject == "node-1/gpu-2"]
    assert [f.severity for f in last_only] == ["warning"] and "time unknown" in last_only[0].title
    replace_gpu(facts, 1, 2, xid_events=None, last_xid=xid, stale=True)
    assert [f.severity for f in analyze_xids(facts) if f.subject == "node-1/gpu-2"] == ["critical"]


def test_xid_outside_the_catalog_is_reported_on_both_paths() -> None:
    facts = cluster(1)
    replace_gpu(facts, 0, 0, xid_events=None, last_xid=251)
    [last_only] = analyze_xids(facts)
    assert last_only.rule == "gpu.unknown_xid" and "251" in last_only.title
    replace_gpu(facts, 0, 0, xid_events=_events(251), last_xid=251)
    [from_events] = analyze_xids(facts)
    assert from_events.rule == "gpu.unknown_xid" and from_events.severity == "warning"


@pytest.mark.parametrize("xid", APPLICATION_SIDE)
def test_application_side_xids_say_do_not_drain(xid: int) -> None:
    facts = cluster(1)
    replace_gpu(facts, 0, 3, xid_events=_events(xid), last_xid=xid)
    [only] = analyze(facts)
    assert (only.rule, only.severity, only.category) == ("gpu.application_xid", "info", "application")


def test_xid_45_alone_means_restart_fabric_manager_and_after_an_error_points_at_it() -> None:
    facts = cluster(1)
    replace_gpu(facts, 0, 4, xid_events=_events(45), last_xid=45)
    [alone] = analyze(facts)
    assert alone.rule == "gpu.fabric_manager" and "nvidia-fabricmanager" in alone.action

    replace_gpu(facts, 0, 4, xid_events=[*_events(79, minutes_ago=6), *_events(45)], last_xid=45)
    [merged] = analyze(facts)
    assert merged.rule == "gpu.xid79_fell_off_bus"
    assert any("XID 45" in line for line in merged.evidence)


def test_counted_xids_keep_their_count() -> None:
    facts = cluster(1)
    event = XidEvent(xid=74, timestamp=NOW - timedelta(minutes=3), count=3)
    replace_gpu(facts, 0, 1, xid_events=[event], last_xid=74)
    [nvlink] = analyze_xids(facts)
    assert "XID 74 x3" in nvlink.evidence[0]


def test_uncorrectable_rows_with_unknown_pending_state_are_not_called_applied() -> None:
    facts = cluster(1)
    replace_gpu(facts, 0, 5, uncorrectable_remapped_rows=2, remap_pending=None)
    [unknown] = analyze_memory(facts)
    assert unknown.severity == "warning" and "applied" not in unknown.title
    assert "unknown" in unknown.title and any("ROW_REMAP_PENDING" in line for line in unknown.evidence)
    replace_gpu(facts, 0, 5, uncorrectable_remapped_rows=2, remap_pending=False)
    [applied] = analyze_memory(facts)
    assert applied.severity == "info" and "applied" in applied.title
