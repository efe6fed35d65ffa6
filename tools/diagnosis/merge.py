"""Combine raw findings so that one root cause reads as one finding.

Why: XID 79, a stale series, "gres/gpu count too low" and a NODE_FAIL job are four signals of one
lost GPU. Reported separately they bury the conclusion and inflate counts. Two steps:
1. primary findings of the same group about the same subject merge into the most severe one;
2. supporting findings (see ``rules.RULES``) fold into the most severe finding that explains them:
   one about the same subject (which then takes the more severe of the two severities), one
   about their node that is at least as severe, or, for a node-level signal such as a drain, a
   critical fault of one of the node's GPUs. Unexplained supporting findings stand alone,
   merging with each other per subject.
"""

from __future__ import annotations

import re

from gpudoc.tools.diagnosis.findings import SEVERITY_ORDER, Finding
from gpudoc.tools.diagnosis.rules import RULE_ORDER, RULES, node_of


def merge_findings(findings: list[Finding]) -> list[Finding]:
    primaries = _merge_groups([f for f in findings if not RULES[f.rule].supporting])
    hosts = list(primaries)
    for item in sorted((f for f in findings if RULES[f.rule].supporting), key=_priority):
        host = _best_host(item, hosts)
        if host is None:
            hosts.append(item.model_copy(deep=True))
        else:
            _absorb(host, item)
    return sorted(hosts, key=sort_key)


def _priority(finding: Finding) -> tuple[int, int]:
    return SEVERITY_ORDER[finding.severity], RULE_ORDER[finding.rule]


def _merge_groups(findings: list[Finding]) -> list[Finding]:
    merged: dict[tuple[str, str], Finding] = {}
    for item in sorted(findings, key=_priority):
        key = (item.subject, RULES[item.rule].group)
        if key in merged:
            _absorb(merged[key], item)
        else:
            merged[key] = item.model_copy(deep=True)
    return list(merged.values())


def _explains(host: Finding, item: Finding) -> bool:
    """Whether ``host`` is about the same thing as ``item``: its subject, or the node it sits on."""
    if host.subject == item.subject or item.subject in host.gpus:
        return True
    host_node = node_of(host.subject)
    item_node = node_of(item.subject)
    if item_node is not None and item.subject != item_node:  # a GPU: only its node-level finding explains it
        return host.subject == item_node
    if item_node is not None:  # a node: a finding about it, or a critical GPU fault that takes it out
        return host_node == item_node and (host.subject == item_node or host.severity == "critical")
    return host_node is not None and host_node in item.nodes  # a job: a finding on one of its nodes


def _best_host(item: Finding, hosts: list[Finding]) -> Finding | None:
    candidates = [h for h in hosts if _explains(h, item) and (
        h.subject == item.subject or SEVERITY_ORDER[h.severity] <= SEVERITY_ORDER[item.severity])]
    if not candidates:
        return None
    return min(candidates, key=lambda h: (h.subject != item.subject, RULES[h.rule].supporting, *_priority(h)))


def _absorb(host: Finding, item: Finding) -> None:
    if SEVERITY_ORDER[item.severity] < SEVERITY_ORDER[host.severity]:
        host.severity = item.severity
    for line in item.evidence:
        text = line if item.subject == host.subject else _about(item, line)
        if text not in host.evidence:
            host.evidence.append(text)
    host.nodes = sorted(set(host.nodes) | set(item.nodes), key=natural_key)
    host.gpus = sorted(set(host.gpus) | set(item.gpus), key=natural_key)
    if host.job_id is None:
        host.job_id = item.job_id


def _about(item: Finding, line: str) -> str:
    """An evidence line moved to another finding's list, saying what it is about: as it is when it
    names its subject already (``job 1001 'train' ended NODE_FAIL``), else after the subject
    (``job 1001: XID 79 on node-1 GPU 5``), so merged evidence never reads ``1001: job 1001 ...``."""
    if re.search(rf"(?<![\w/-]){re.escape(item.subject)}(?![\w/-])", line):
        return line
    return f"{item.subject_label}: {line}"


def natural_key(text: str) -> list[object]:
    """``node-2`` sorts before ``node-10``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def sort_key(finding: Finding) -> tuple[object, ...]:
    return SEVERITY_ORDER[finding.severity], natural_key(finding.subject), RULE_ORDER[finding.rule]
