"""Alert rules and alert events rendered for the model.

Why ``get_alerts`` shows the firing events next to the rules: "what is alerting right now?" is
the question operators ask, and the rules alone cannot answer it. Rule names are written by
people (and metric names come from whatever backend is configured), so they sit in labelled
fields, cleaned and cut short.
"""

from __future__ import annotations

from typing import Any, Sequence

from gpudoc.tools.compact import fit_list, free_text, iso, r1, without_none
from gpudoc.tools.models import AlertEvent, AlertRule, Silence

_CONDITION_SYMBOL = {"gt": ">", "lt": "<", "eq": "==", "gte": ">=", "lte": "<="}


def _threshold(condition: str | None, threshold: float | None) -> str | None:
    if condition is None or threshold is None:
        return None
    return f"{_CONDITION_SYMBOL[condition]} {threshold:g}"


def render_rule(rule: AlertRule) -> dict[str, Any]:
    when = _threshold(rule.condition, rule.threshold)
    if when is not None and rule.metric:
        when = f"{free_text(rule.metric, 40)} {when}"
    return without_none(
        {
            "id": rule.id if rule.expr is None else None,  # a Prometheus rule is known by its name
            "name": free_text(rule.name),
            # a PromQL expression is long and says little to a reader: name, severity and state do
            "when": when,
            "for_s": rule.duration_seconds or None,
            "severity": free_text(rule.severity, 20),
            "state": rule.state,
            "nodes": free_text(rule.node_filter, 40),
            "enabled": rule.enabled,
        }
    )


def render_event(event: AlertEvent) -> dict[str, Any]:
    return without_none(
        {
            "id": event.id,
            "rule_id": event.rule_id if event.rule_id != event.rule_name else None,
            "name": free_text(event.rule_name),
            "severity": free_text(event.severity, 20),
            "node": event.node_id,
            "gpu": event.gpu_index,
            "metric": free_text(event.metric, 40),
            "value": r1(event.value),
            "when": _threshold(event.condition, event.threshold),
            "summary": free_text(event.summary),
            "state": event.state,
            "fired": iso(event.fired_at),
            "resolved": iso(event.resolved_at),
            "active": event.active,
            "silenced_by": event.silenced_by or None,
        }
    )


def render_silence(silence: Silence) -> dict[str, Any]:
    return without_none(
        {
            "id": silence.id,
            "matchers": [free_text(m, 60) for m in silence.matchers],
            "by": free_text(silence.created_by, 40),
            "comment": free_text(silence.comment),
            "until": iso(silence.ends_at),
        }
    )


def _count(found: int, incomplete: str | None) -> int | str:
    """A count over the events, or why it is unknown when the events are known to be incomplete
    (the firing one may be among those left out: 0 would be a guess)."""
    if incomplete is None:
        return found
    return f"unknown: {incomplete}" + (f"; at least {found}" if found else "")


def render_alerts(
    rules: Sequence[AlertRule], events: Sequence[AlertEvent], silences: Sequence[Silence] | None = None,
    incomplete: str | None = None,
) -> dict[str, Any]:
    """The configured rules, the events firing now (newest first) and the active silences.

    ``incomplete``: why the events are known to be incomplete; the firing count is then unknown.
    """
    firing = [{k: v for k, v in render_event(e).items() if k != "active"}
              for e in sorted(events, key=lambda e: e.fired_at, reverse=True) if e.active]
    header = {
        "rules_count": len(rules),
        "rules": [render_rule(rule) for rule in rules],
        "firing_count": _count(len(firing), incomplete),
    }
    if silences:
        header["silences"] = [render_silence(s) for s in silences if s.state == "active"]

    return fit_list(
        header,
        "firing",
        firing,
        lambda shown: f"showing {shown} of {len(firing)} firing alerts, newest first; "
        "diagnose_cluster(node) or get_node_details(node_id) narrows to one node",
    )


def render_alert_history(
    events: Sequence[AlertEvent], limit: int, limit_note: str | None = None, incomplete: str | None = None
) -> dict[str, Any]:
    """Recent alert events, active and resolved, newest first (``incomplete``: as for ``render_alerts``)."""
    ordered = sorted(events, key=lambda e: e.fired_at, reverse=True)[:limit]
    rendered = [render_event(e) for e in ordered]
    header = without_none(
        {
            "limit": limit,
            "limit_note": limit_note,
            "events_count": len(rendered),
            "active_count": _count(sum(1 for e in ordered if e.active), incomplete),
        }
    )

    return fit_list(
        header,
        "events",
        rendered,
        lambda shown: f"showing the newest {shown} of {len(rendered)} events; pass a smaller limit",
    )
