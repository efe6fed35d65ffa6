"""Alert rules, firing events and alert history rendered for the model from hand-built facts."""

from __future__ import annotations

from datetime import timedelta

from gpudoc.tools.compact import OUTPUT_BUDGET_CHARS, dumps
from gpudoc.tools.models import AlertEvent, AlertRule
from gpudoc.tools.render_alerts import render_alert_history, render_alerts
from tests.rendering_facts import NOW


def _rule() -> AlertRule:
    return AlertRule(
        id="r1",
        name="GPU too hot",
        metric="temperature",
        condition="gt",
        threshold=85,
        duration_seconds=300,
        created_at=NOW,
        updated_at=NOW,
    )


def _event(number: int, active: bool) -> AlertEvent:
    return AlertEvent(
        id=f"e{number}",
        rule_id="r1",
        rule_name="GPU too hot",
        node_id="node-2",
        gpu_index=3,
        metric="temperature",
        value=88.26,
        threshold=85,
        condition="gt",
        fired_at=NOW - timedelta(minutes=number),
        resolved_at=None if active else NOW,
    )


def test_alerts_show_rules_and_only_the_firing_events() -> None:
    payload = render_alerts([_rule()], [_event(1, False), _event(2, True)])
    assert payload["rules"] == [
        {"id": "r1", "name": "GPU too hot", "when": "temperature > 85", "for_s": 300, "enabled": True}
    ]
    assert payload["firing_count"] == 1
    assert payload["firing"][0] == {
        "id": "e2",
        "rule_id": "r1",
        "name": "GPU too hot",
        "node": "node-2",
        "gpu": 3,
        "metric": "temperature",
        "value": 88.3,
        "when": "> 85",
        "fired": "2026-03-02T11:58:00Z",
    }  # every entry of "firing" is active: saying so on each would only cost room


def test_alert_history_is_newest_first_within_limit_and_budget() -> None:
    events = [_event(i, i % 2 == 0) for i in range(200)]
    payload = render_alert_history(events, 200)
    assert len(dumps(payload)) <= OUTPUT_BUDGET_CHARS
    assert payload["events"][0]["id"] == "e0" and "pass a smaller limit" in payload["truncated"]
    assert render_alert_history(events, 3)["events_count"] == 3


def test_counts_over_events_known_to_be_incomplete_are_unknown_never_0() -> None:
    why = "the backend returned only its oldest 1000 events"
    assert render_alerts([_rule()], [_event(1, False)], incomplete=why)["firing_count"] == f"unknown: {why}"
    assert render_alerts([_rule()], [_event(2, True)], incomplete=why)["firing_count"] == f"unknown: {why}; at least 1"
    assert render_alert_history([_event(1, False)], 10, incomplete=why)["active_count"] == f"unknown: {why}"
