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
        evidence = [
            f"alert '{e.rule_name}' firing since {e.fired_at:%H:%M}Z: {e.metric} {num(e.value)} "
            f"{CONDITION_TEXT[e.condition]} {num(e.threshold)}"
            for e in sorted(events, key=lambda e: e.fired_at)
        ]
        findings.append(finding(
            "alert.active", "warning", subject, f"alert firing: {', '.join(names)}", evidence,
            "a configured threshold rule is breached", "look at the metric's history on this subject",
        ))
    return findings
