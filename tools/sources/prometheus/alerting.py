"""Prometheus alerting rules, the alerts they fired, and Alertmanager's silences, as facts.

Where each comes from: rules and their state from ``/api/v1/rules``; alerts active now (pending or
firing, with their rendered summary) from ``/api/v1/alerts``; the history from Prometheus itself,
the ``ALERTS{alertstate="firing"}`` series over the look-back, where each unbroken run of samples is
one firing and a run that ended before now is resolved; silences from Alertmanager's
``/api/v2/silences``, and which alerts they mute from its ``/api/v2/alerts``.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from gpudoc.tools.models import AlertEvent, AlertRule, Silence
from gpudoc.tools.sources.base import SourceProtocolError
from gpudoc.tools.sources.prometheus.inventory import Inventory

#: labels that describe the alert rather than identify its subject
_META = frozenset({"alertname", "alertstate", "severity", "__name__"})


def rules_from(data: Any) -> list[AlertRule]:
    """``AlertRule`` per alerting rule of ``/api/v1/rules`` (recording rules are left out)."""
    try:
        groups = data["groups"]
        rules = []
        for group in groups:
            for rule in group.get("rules", []):
                if rule.get("type") != "alerting":
                    continue
                rules.append(AlertRule(
                    id=f"{group['name']}/{rule['name']}", name=rule["name"], expr=rule.get("query"),
                    duration_seconds=int(float(rule.get("duration", 0))), group=group["name"],
                    severity=(rule.get("labels") or {}).get("severity"), state=rule.get("state"),
                ))
        return rules
    except (KeyError, TypeError, ValueError) as exc:
        raise SourceProtocolError(f"Prometheus /api/v1/rules answered in an unexpected shape ({exc!r})") from None


def _subject(labels: dict[str, str], inventory: Inventory) -> tuple[str, int | None]:
    if not any(k in labels for k in ("Hostname", "hostname", "instance", "nodename")):
        return "cluster", None
    gpu = labels.get("gpu", "")
    return inventory.node_of(labels), int(gpu) if gpu.isdigit() else None


def _identity(labels: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, v) for k, v in labels.items() if k not in ("alertstate", "__name__")))


def _event_id(identity: tuple[tuple[str, str], ...], started: float) -> str:
    digest = hashlib.sha1(repr((identity, round(started))).encode()).hexdigest()[:12]
    return f"prom-{digest}"


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def alert_events(history: list[dict[str, Any]], active: Any, inventory: Inventory, now: float,
                 step_s: float) -> tuple[list[AlertEvent], dict[str, dict[str, str]]]:
    """Events from the ``ALERTS`` history and the active alerts, newest first, and each event's labels."""
    events: dict[str, AlertEvent] = {}
    labels_of: dict[str, dict[str, str]] = {}
    open_runs: dict[tuple[tuple[str, str], ...], str] = {}
    for row in history:
        labels = row["metric"]
        identity = _identity(labels)
        stamps = sorted(float(t) for t, _ in row["values"])
        runs: list[list[float]] = []
        for stamp in stamps:
            if runs and stamp - runs[-1][-1] <= step_s * 1.5:
                runs[-1].append(stamp)
            else:
                runs.append([stamp])
        for run in runs:
            ongoing = run[-1] >= now - 2 * step_s
            event = _event(labels, inventory, fired=run[0], resolved=None if ongoing else run[-1] + step_s)
            events[event.id], labels_of[event.id] = event, labels
            if ongoing:
                open_runs[identity] = event.id
    for alert in (active or {}).get("alerts", []):
        labels = alert.get("labels", {})
        identity = _identity(labels)
        state = alert.get("state")
        if state not in ("pending", "firing"):
            continue
        known = open_runs.get(identity)
        started = events[known].fired_at.timestamp() if known else _time(alert["activeAt"]).timestamp()
        event = _event(labels, inventory, fired=started, resolved=None, state=state,
                       summary=(alert.get("annotations") or {}).get("summary"), value=alert.get("value"))
        if known:
            event = event.model_copy(update={"id": known})
        events[event.id], labels_of[event.id] = event, labels
    ordered = sorted(events.values(), key=lambda e: e.fired_at, reverse=True)
    return ordered, labels_of


def _event(labels: dict[str, str], inventory: Inventory, *, fired: float, resolved: float | None,
           state: str | None = None, summary: str | None = None, value: Any = None) -> AlertEvent:
    node, gpu = _subject(labels, inventory)
    try:
        number = float(value) if value is not None else None
    except ValueError:
        number = None
    name = labels.get("alertname", "alert")
    return AlertEvent(
        id=_event_id(_identity(labels), fired), rule_id=name, rule_name=name, node_id=node, gpu_index=gpu,
        value=number, fired_at=datetime.fromtimestamp(fired, UTC),
        resolved_at=None if resolved is None else datetime.fromtimestamp(resolved, UTC),
        state="firing" if resolved is None and state is None else state,  # type: ignore[arg-type]
        severity=labels.get("severity"), summary=summary,
    )


def _operator(matcher: dict[str, Any]) -> str:
    equal, regex = matcher.get("isEqual", True), matcher.get("isRegex", False)
    return ("=" if equal else "!") + ("~" if regex else ("" if equal else "="))


def silences_from(data: Any) -> list[Silence]:
    """Alertmanager's silences (``/api/v2/silences``), active first then newest."""
    if not isinstance(data, list):
        raise SourceProtocolError("Alertmanager /api/v2/silences did not answer with a list")
    out = []
    for item in data:
        try:
            matchers = [f"{m['name']}{_operator(m)}{m['value']}" for m in item["matchers"]]
            out.append(Silence(
                id=item["id"], matchers=matchers,
                created_by=item.get("createdBy", ""), comment=item.get("comment", ""),
                starts_at=_time(item["startsAt"]), ends_at=_time(item["endsAt"]), state=item["status"]["state"],
            ))
        except (KeyError, TypeError, ValueError) as exc:
            raise SourceProtocolError(f"Alertmanager silence in an unexpected shape ({exc!r})") from None
    return sorted(out, key=lambda s: (s.state != "active", -s.starts_at.timestamp()))


def mark_silenced(events: list[AlertEvent], labels_of: dict[str, dict[str, str]], am_alerts: Any) -> list[AlertEvent]:
    """Attach to each active event the silences Alertmanager says mute it (``/api/v2/alerts``)."""
    muted: list[tuple[dict[str, str], list[str]]] = [
        (a.get("labels", {}), list((a.get("status") or {}).get("silencedBy") or []))
        for a in am_alerts or [] if (a.get("status") or {}).get("silencedBy")
    ]
    if not muted:
        return events
    out = []
    for event in events:
        labels = {k: v for k, v in labels_of.get(event.id, {}).items() if k not in ("alertstate", "__name__")}
        ids = sorted({sid for am_labels, sids in muted if event.active
                      and all(am_labels.get(k) == v for k, v in labels.items()) for sid in sids})
        out.append(event.model_copy(update={"silenced_by": ids}) if ids else event)
    return out
