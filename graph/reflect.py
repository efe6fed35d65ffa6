"""Reflect: does the evidence answer the question? Cheap deterministic checks, no LLM call.

Why deterministic: a simple question must cost two model round trips (plan, answer), not three.
The checks read only the operator's question and the turn's tool records, never the text inside
tool results (that is data and may say anything):

- a call failed in a transient way (timeout, backend unavailable) -> retry it once;
- a part of the question has no evidence yet (asks about pending jobs, no Slurm tool ran) ->
  call the tool that covers it;
- a critical finding's node has not been examined -> fetch that node's details;
- the model made a mistake it can fix (bad arguments, unknown tool, malformed JSON) -> plan again;
- otherwise, or at the round limit -> answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from gpudoc.graph.contracts import ToolCallRecord
from gpudoc.tools.diagnosis.findings import Finding

_NODE_IN_TEXT = re.compile(r"\bnode[-_ ]?(\d+)\b", re.IGNORECASE)
NODE_ARGUMENTS = ("node_id", "node")

ToolParams = Mapping[str, set[str]]  # tool name -> its argument names


def node_in_question(question: str) -> str | None:
    """The node id an operator named (``node-3``, ``node 3``, ``node3``), normalised to ``node-3``."""
    match = _NODE_IN_TEXT.search(question)
    return f"node-{int(match.group(1))}" if match else None


def node_argument(arguments: Mapping[str, Any]) -> str | None:
    for name in NODE_ARGUMENTS:
        value = arguments.get(name)
        if isinstance(value, str) and value:
            return value
    return None


def _with_node(tool: str, params: ToolParams, node: str | None, **extra: Any) -> tuple[str, dict[str, Any]]:
    arguments = {k: v for k, v in extra.items() if k in params.get(tool, set())}
    if node:
        for name in NODE_ARGUMENTS:
            if name in params.get(tool, set()):
                arguments[name] = node
                break
    return tool, arguments


@dataclass(frozen=True)
class Topic:
    """A part of a question, the tools whose success covers it, and the call that covers it."""

    name: str
    words: tuple[str, ...]
    covered_by: frozenset[str]
    cover: Callable[[str, str | None, ToolParams], tuple[str, dict[str, Any]]]
    node_scoped: bool = field(default=True)

    def asked(self, question: str) -> bool:
        lowered = question.lower()
        return any(word in lowered for word in self.words)


TOPICS: tuple[Topic, ...] = (
    Topic("thermal", ("hot", "temperature", "thermal", "throttl", "cooling", "overheat"),
          frozenset({"get_gpu_history", "get_node_details", "get_current_metrics", "diagnose_cluster"}),
          lambda q, node, p: _with_node("get_node_details", p, node) if node else ("get_current_metrics", {})),
    Topic("jobs", ("job", "pending", "queue", "slurm", "scheduler", "partition"),
          frozenset({"get_slurm_jobs", "get_slurm_status"}),
          lambda q, node, p: _with_node("get_slurm_jobs", p, None, state="PENDING" if "pending" in q.lower() else None),
          node_scoped=False),
    Topic("alerts", ("alert", "firing", "fired"), frozenset({"get_alerts", "get_alert_history"}),
          lambda q, node, p: ("get_alert_history", {}), node_scoped=False),
    Topic("health", ("rma", "health", "fault", "xid", "ecc", "broken", "wrong", "replace", "nvlink", "pcie",
                     "fell off", "error"),
          frozenset({"diagnose_cluster", "get_node_details"}),
          lambda q, node, p: _with_node("diagnose_cluster", p, node)),
)


def asks_about_cluster(question: str) -> bool:
    """Whether a question needs cluster evidence (any topic, or a named node)."""
    return node_in_question(question) is not None or any(topic.asked(question) for topic in TOPICS)


def _covers(record: ToolCallRecord, topic: Topic, node: str | None) -> bool:
    if record.error or record.name not in topic.covered_by:
        return False
    called_for = node_argument(record.arguments)
    return not (topic.node_scoped and node and called_for and called_for != node)


def coverage_calls(question: str, records: Sequence[ToolCallRecord], params: ToolParams) -> list[tuple[str, dict[str, Any]]]:
    """Calls covering the parts of the question that no successful call has covered yet.

    A part whose covering tool already failed is left to the model (it was told why).
    """
    node = node_in_question(question)
    calls: list[tuple[str, dict[str, Any]]] = []
    for topic in TOPICS:
        if not topic.asked(question) or any(_covers(r, topic, node) for r in records):
            continue
        if any(r.error and r.name in topic.covered_by for r in records):
            continue
        name, arguments = topic.cover(question, node, params)
        if name in params and (name, arguments) not in calls:
            calls.append((name, {k: v for k, v in arguments.items() if v is not None}))
    return calls


def finding_node(finding: Finding) -> str | None:
    subject = finding.subject.strip()
    return subject.split("/", 1)[0] if subject.lower().startswith("node") else None


def unexamined_critical_nodes(findings: Sequence[Finding], records: Sequence[ToolCallRecord], *, limit: int = 2) -> list[str]:
    """Nodes with a critical finding whose details this turn has not fetched (at most ``limit``)."""
    examined = {node_argument(r.arguments) for r in records if r.name == "get_node_details" and not r.error}
    attempted = {node_argument(r.arguments) for r in records if r.name == "get_node_details"}
    nodes: list[str] = []
    for finding in findings:
        node = finding_node(finding)
        if finding.severity == "critical" and node and node not in examined | attempted and node not in nodes:
            nodes.append(node)
    return nodes[:limit]


MODEL_FIXABLE_KINDS = frozenset({"malformed_arguments", "unknown_tool", "bad_arguments", "unknown_node", "failed"})


def model_fixable(records: Sequence[ToolCallRecord], question: str) -> bool:
    """Whether the last round failed in a way the model can correct by calling again.

    Repeats are not (the model is looping), nor transient failures (reflect retries those), nor
    an unknown node that the operator named (only the operator can fix that; the answer lists
    the valid ids).
    """
    asked_node = node_in_question(question)
    for record in records:
        if record.error_kind not in MODEL_FIXABLE_KINDS:
            continue
        if record.error_kind == "unknown_node" and node_argument(record.arguments) == asked_node:
            continue
        return True
    return False
