"""Reflect: does the evidence answer the question? Deterministic checks on structured facts, no LLM call.

Why deterministic: a simple question must cost two model round trips (plan, answer), not three.
The checks read the question's structured reading (``QuestionFacts``: topics, the nodes it names
that exist), the turn's tool records (success, error kind, arguments), the findings' severities
and the tools' declared capabilities (``ToolCapabilities``), never tool names written here and
never the text inside tool results (that is data and may say anything):

- a call failed in a transient way (timeout, backend unavailable) -> retry it once;
- a part of the question has no evidence yet (asks about pending jobs, no tool covering jobs ran)
  -> call the tool declared for that part, scoped to the node the question names;
- a critical finding's node has not been examined -> call the tool whose role is node_details;
- the model made a mistake it can fix (bad arguments, unknown tool, malformed JSON) -> plan again;
- otherwise, or at the round limit -> answer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.tools import BaseTool

from gpudoc.graph.contracts import ToolCallRecord
from gpudoc.graph.question import QuestionFacts
from gpudoc.tools.capabilities import Role, ToolCapabilities, Topic
from gpudoc.tools.diagnosis.findings import Finding

Call = tuple[str, dict[str, Any]]

#: topics whose evidence must be about the node the question names (jobs and alerts are cluster-wide)
NODE_SCOPED: frozenset[Topic] = frozenset({"overview", "usage", "thermal", "health"})
#: the order in which uncovered topics are scheduled: the specific before the general
PRIORITY: tuple[Topic, ...] = ("thermal", "health", "usage", "jobs", "alerts", "overview")
#: failures the model can correct by calling again
MODEL_FIXABLE_KINDS = frozenset({"malformed_arguments", "unknown_tool", "bad_arguments", "unknown_node", "failed"})

_NODE_NAME = re.compile(r"^\s*node[-_ ]?(\d+)\s*$", re.IGNORECASE)


def _normal_node(value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    match = _NODE_NAME.match(value)
    return f"node-{int(match.group(1))}" if match else value.strip()


@dataclass(frozen=True)
class Toolbox:
    """The agent's tools, in order, with their declared capabilities and argument names."""

    order: tuple[str, ...]
    capabilities: Mapping[str, ToolCapabilities]
    parameters: Mapping[str, frozenset[str]]

    @classmethod
    def of(cls, tools: Sequence[BaseTool]) -> "Toolbox":
        return cls(
            order=tuple(tool.name for tool in tools),
            capabilities={tool.name: ToolCapabilities.of(tool) for tool in tools},
            parameters={tool.name: frozenset(tool.tool_call_schema.model_json_schema().get("properties", {}))
                        for tool in tools},
        )

    def caps(self, name: str) -> ToolCapabilities:
        return self.capabilities.get(name) or ToolCapabilities()

    def with_role(self, role: Role) -> str | None:
        return next((name for name in self.order if role in self.caps(name).roles), None)

    def node_of(self, name: str, arguments: Mapping[str, Any]) -> str | None:
        """The node a call was made for, through the tool's declared node argument."""
        parameter = self.caps(name).arguments.get("node")
        return _normal_node(arguments.get(parameter)) if parameter else None

    def call(self, name: str, facts: QuestionFacts, node: str | None) -> Call | None:
        """``name`` with the arguments the question supplies, or None when it lacks a required one."""
        caps = self.caps(name)
        arguments: dict[str, Any] = {}
        values = {"node": node, "job_state": facts.job_states[0] if facts.job_states else None}
        for kind, parameter in caps.arguments.items():
            if values.get(kind) is not None and parameter in self.parameters.get(name, frozenset()):
                arguments[parameter] = values[kind]
        if any(caps.arguments.get(kind) not in arguments for kind in caps.requires):
            return None
        return name, arguments

    def scheduled_for(self, topic: Topic, facts: QuestionFacts) -> Call | None:
        """The call covering ``topic``: a tool taking the named node first, else one needing no node."""
        node = facts.node if topic in NODE_SCOPED else None
        candidates = [name for name in self.order if topic in self.caps(name).schedules]
        if node:
            for name in candidates:
                if "node" in self.caps(name).arguments and (call := self.call(name, facts, node)):
                    return call
        for name in candidates:
            if "node" not in self.caps(name).requires and (call := self.call(name, facts, None)):
                return call
        return None


def _covers(toolbox: Toolbox, name: str, arguments: Mapping[str, Any], topic: Topic, facts: QuestionFacts) -> bool:
    if topic not in toolbox.caps(name).covers:
        return False
    called_for = toolbox.node_of(name, arguments)
    return not (topic in NODE_SCOPED and facts.node and called_for and called_for != facts.node)


def coverage_calls(facts: QuestionFacts, records: Sequence[ToolCallRecord], toolbox: Toolbox) -> list[Call]:
    """Calls covering the parts of the question that no successful call has covered yet.

    A part whose covering tool already failed is left to the model (it was told why).
    """
    calls: list[Call] = []
    for topic in sorted(facts.topics, key=PRIORITY.index):
        if any(not r.error and _covers(toolbox, r.name, r.arguments, topic, facts) for r in records):
            continue
        if any(_covers(toolbox, name, arguments, topic, facts) for name, arguments in calls):
            continue
        if any(r.error and topic in toolbox.caps(r.name).covers for r in records):
            continue
        call = toolbox.scheduled_for(topic, facts)
        if call and call not in calls:
            calls.append(call)
    return calls


def evidence_calls(facts: QuestionFacts, records: Sequence[ToolCallRecord], toolbox: Toolbox) -> list[Call]:
    """What to gather before a question about the cluster may be answered: its uncovered topics,
    else (a question naming a node, or with no recognised topic) that node or the overview."""
    calls = coverage_calls(facts, records, toolbox)
    if calls or any(not r.error for r in records):
        return calls
    fallback = toolbox.scheduled_for("overview", facts)
    if facts.node and (details := toolbox.with_role("node_details")):
        fallback = toolbox.call(details, facts, facts.node) or fallback
    return [fallback] if fallback else []


def finding_nodes(finding: Finding) -> list[str]:
    if finding.nodes:
        return list(finding.nodes)
    subject = finding.subject.strip()
    return [subject.split("/", 1)[0]] if subject.lower().startswith("node") else []


def unexamined_critical_nodes(findings: Sequence[Finding], records: Sequence[ToolCallRecord], toolbox: Toolbox,
                              facts: QuestionFacts, *, limit: int = 2) -> list[Call]:
    """Calls examining the nodes of critical findings that this turn has not examined (at most ``limit``)."""
    details = toolbox.with_role("node_details")
    if details is None:
        return []
    attempted = {toolbox.node_of(r.name, r.arguments) for r in records if r.name == details}
    calls: list[Call] = []
    for finding in findings:
        if finding.severity != "critical":
            continue
        for node in finding_nodes(finding):
            call = toolbox.call(details, facts, node)
            if node not in attempted and call and call not in calls:
                calls.append(call)
    return calls[:limit]


def model_fixable(records: Sequence[ToolCallRecord], facts: QuestionFacts, toolbox: Toolbox) -> bool:
    """Whether the last round failed in a way the model can correct by calling again.

    Repeats are not (the model is looping), nor transient failures (reflect retries those), nor
    an unknown node that the operator named (only the operator can fix that; the answer lists
    the valid ids).
    """
    for record in records:
        if record.error_kind not in MODEL_FIXABLE_KINDS:
            continue
        if record.error_kind == "unknown_node" and toolbox.node_of(record.name, record.arguments) in facts.unknown_nodes:
            continue
        return True
    return False
