"""Active alert events: what the operator's own threshold rules say is firing right now.

Why supporting: an alert restates a reading ("temperature > 85 °C"); when a rule already explains
the same GPU or node, the alert joins its evidence, and only an alert nothing explains stands alone.
"""

from __future__ import annotations

from collections import defaultdict

from gpudoc.tools.diagnosis.facts import ClusterFacts
from gpudoc.tools.diagnosis.findings import Finding
from gpudoc.tools.diagnosis.rules import finding, gpu_subject, num
from gpudoc.tools.models import AlertEvent

CONDITION_TEXT = {"gt": ">", "lt": "<", "eq": "=", "gte": ">=", "lte": "<="}


def _describe(event: AlertEvent) -> str:
    """``alert 'X' firing since 11:42Z: temperature_c 88 > 85`` (threshold rules) or the alert's
    own summary (Prometheus rules), with the silence that mutes it."""
    text = f"alert '{event.rule_name}' {event.state or 'firing'} since {event.fired_at:%H:%M}Z"
    if event.condition is not None and event.threshold is not None and event.value is not None:
        text += f": {event.metric} {num(event.value)} {CONDITION_TEXT[event.condition]} {num(event.threshold)}"
    elif event.summary:
        text += f": {event.summary}"
    if event.silenced_by:
        text += f" (silenced by {', '.join(event.silenced_by)})"
    return text


def analyze_alerts(facts: ClusterFacts) -> list[Finding]:
    grouped: dict[str, list[AlertEvent]] = defaultdict(list)
    for event in facts.alert_events or []:
        if not event.active:
            continue
        node_id = facts.node_id_for_slurm_name(event.node_id)
        subject = gpu_subject(node_id, event.gpu_index) if event.gpu_index is not None else node_id
        grouped[subject].append(event)
    findings = []
    for subject, events in sorted(grouped.items()):
        names = sorted({e.rule_name for e in events})
        evidence = [_describe(e) for e in sorted(events, key=lambda e: e.fired_at)]
        findings.append(finding(
            "alert.active", "warning", subject, f"alert firing: {', '.join(names)}", evidence,
            "a configured threshold rule is breached", "look at the metric's history on this subject",
        ))
    return findings
