"""Scripted policies for the stub vLLM server that exercise the evaluation scorer: TEST DOUBLES.

None of these is a model, and none reads the evaluation cases. They exist to prove that the
scorer tells good answers from bad ones:

- ``reference_policy``: what a competent operator would do with these tools. It plans from the
  question's words (the deterministic diagnosis plus the specific tool: node details and history
  for heat, Slurm for queues...), resolves "that node" in follow-ups from its previous answer, and
  answers only with what the tool results say: the findings (subject, rule id, evidence copied
  verbatim, action), the readings it was asked about, or that a node does not exist. The scorer
  must pass it on nearly every case. The committed replay cassettes are recorded from it.
- ``fixed_tool_policy``: always calls ``get_cluster_status`` and quotes one number from it. Grounded
  but useless; the scorer must fail it almost everywhere.
- ``inventing_policy``: the reference policy whose answers have every quantity changed and one
  made-up reading added. The tools and subjects are right; the grounding check must catch it.

``POLICIES`` also offers the stub server's own ``keyword_policy`` (tools by keyword, a table of
numbers copied from the results): a plausible-looking double that answers nothing in particular.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from tests.doubles.stub_vllm import Policy, StubReply, StubToolCall, keyword_policy
from tests.doubles.vllm_wire import message_text as _text

_NODE = re.compile(r"\bnode[-_ ]?(\d+)\b", re.IGNORECASE)
_GPU = re.compile(r"\bgpu[-_ ]?(\d+)\b", re.IGNORECASE)
_FULL_GPU = re.compile(r"\bnode-(\d+)/gpu-(\d+)\b")
_USER = re.compile(r"\buser\s+([a-z][a-z0-9_-]*)|\b([a-z]+)'s\s+job", re.IGNORECASE)
_JOB = re.compile(r"\bjob\s+(\d{3,})\b", re.IGNORECASE)
_BACK_REFERENCE = re.compile(r"\b(?:that|this|the same|its?)\s+(?:node|gpu|one)\b|\bit\b|\bexactly\b|\bspecifically\b"
                             r"|\bwhich (?:gpu|job)\b|\bthat\b", re.IGNORECASE)

WORDS = {
    "thermal": ("hot", "temperature", "thermal", "overheat", "throttl", "cooling"),
    "slurm": ("pending", "queue", "waiting", "scheduler", "drained", "drain", "partition", "not starting"),
    "jobs": ("job", "running on", "runs on", "what is running", "what was running", "wasting", "stuck", "rank"),
    "alerts": ("alert", "firing"),
    "overview": ("how is the cluster", "overview", "health report", "how busy", "status"),
    "health": ("rma", "health", "wrong", "fault", "error", "xid", "attention", "broken", "problem", "down", "up?",
               "nvlink", "pcie", "power", "memory", "ecc", "network", "infiniband", "fall off", "slow", "safe",
               "underperform", "reset", "should i", "do about", "idle", "busy", "responding", "capping"),
}


@dataclass
class ToolOutcome:
    name: str
    arguments: dict[str, Any]
    text: str
    data: Any = None

    @property
    def ok(self) -> bool:
        return self.data is not None


@dataclass
class TurnView:
    """The request as a policy sees it: the question, earlier answers, this turn's tool results."""

    question: str
    earlier_answers: list[str]
    results: list[ToolOutcome] = field(default_factory=list)
    tools_offered: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, body: dict[str, Any]) -> "TurnView":
        messages = body.get("messages") or []
        last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
        question = _text(messages[last_user].get("content")) if last_user >= 0 else ""
        earlier = [_text(m.get("content")) for m in messages[:max(last_user, 0)]
                   if m.get("role") == "assistant" and _text(m.get("content"))]
        calls: dict[str, tuple[str, dict[str, Any]]] = {}
        results: list[ToolOutcome] = []
        for message in messages[last_user + 1:]:
            for call in message.get("tool_calls") or []:
                function = call.get("function") or {}
                try:
                    arguments = json.loads(function.get("arguments") or "{}")
                except ValueError:
                    arguments = {}
                calls[call.get("id")] = (function.get("name", ""), arguments)
            if message.get("role") == "tool":
                name, arguments = calls.get(message.get("tool_call_id"), ("", {}))
                text = _text(message.get("content"))
                try:
                    data = json.loads(text)
                except ValueError:
                    data = None
                results.append(ToolOutcome(name, arguments, text, data))
        offered = {(t.get("function") or {}).get("name", "") for t in body.get("tools") or []}
        return cls(question, earlier, results, offered)

    def asks(self, topic: str) -> bool:
        lowered = self.question.lower()
        return any(word in lowered for word in WORDS[topic])

    @property
    def node(self) -> str | None:
        """The node the question is about, or the one the previous answer was about ("that node")."""
        match = _NODE.search(self.question)
        if match:
            return f"node-{int(match.group(1))}"
        subject = self.previous_subject
        return subject.split("/", 1)[0] if subject and _BACK_REFERENCE.search(self.question) else None

    @property
    def gpu(self) -> int | None:
        match = _GPU.search(self.question)
        return int(match.group(1)) if match else None

    @property
    def previous_subject(self) -> str | None:
        for answer in reversed(self.earlier_answers):
            full = _FULL_GPU.search(answer)
            if full:
                return f"node-{full.group(1)}/gpu-{full.group(2)}"
            node = _NODE.search(answer)
            if node:
                return f"node-{int(node.group(1))}"
        return None

    def data_of(self, name: str) -> list[Any]:
        return [r.data for r in self.results if r.name == name and r.ok]


# ----------------------------------------------------------------------------------------------
# The reference policy: plan
# ----------------------------------------------------------------------------------------------


def reference_plan(view: TurnView) -> list[tuple[str, dict[str, Any]]]:
    node = view.node
    plan: list[tuple[str, dict[str, Any]]] = []

    def want(name: str, **arguments: Any) -> None:
        arguments = {k: v for k, v in arguments.items() if v is not None}
        if name in view.tools_offered and (name, arguments) not in plan:
            plan.append((name, arguments))

    if view.asks("thermal"):
        if node:
            want("get_node_details", node_id=node)
            want("get_gpu_history", node_id=node, duration_minutes=60)
        else:
            want("get_current_metrics")
    if view.asks("slurm"):
        want("get_slurm_status")
        want("get_slurm_jobs", state="PENDING" if "pending" in view.question.lower() or "waiting" in
             view.question.lower() or "not starting" in view.question.lower() else None)
    user = _USER.search(view.question)
    if view.asks("jobs") or user or _JOB.search(view.question):
        name = (user.group(1) or user.group(2)).lower() if user else None
        want("get_slurm_jobs", node=node, user=name)
    if view.asks("alerts"):
        want("get_alerts")
    if view.asks("overview"):
        want("get_cluster_status")
    if node and not any(n == "get_node_details" for n, _ in plan):
        want("get_node_details", node_id=node)
    want("diagnose_cluster", node=node)
    return plan


# ----------------------------------------------------------------------------------------------
# The reference policy: answer
# ----------------------------------------------------------------------------------------------

_SEVERE = ("critical", "warning")


def _findings(view: TurnView) -> list[dict[str, Any]]:
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for data in view.data_of("diagnose_cluster"):
        for finding in data.get("findings") or []:
            found.setdefault((finding.get("subject", ""), finding.get("rule", "")), finding)
    return list(found.values())


def _about_node(finding: dict[str, Any], node: str) -> bool:
    subject = str(finding.get("subject", ""))
    return subject == node or subject.startswith(node + "/") or node in (finding.get("nodes") or [])


def _finding_line(finding: dict[str, Any]) -> str:
    evidence = "; ".join(str(e) for e in (finding.get("evidence") or [])[:3] if not str(e).startswith("+"))
    parts = [f"- **{finding.get('severity')}** {finding.get('subject')}: {finding.get('title')} "
             f"(rule {finding.get('rule')})."]
    if evidence:
        parts.append(f"Evidence: {evidence}.")
    if finding.get("cause"):
        parts.append(f"Likely cause: {finding['cause']}.")
    if finding.get("action"):
        parts.append(f"Action: {finding['action']}.")
    return " ".join(parts)


def _unknown_node_answer(view: TurnView) -> str | None:
    for outcome in view.results:
        if not outcome.ok and "Unknown node" in outcome.text:
            asked = view.node or "that node"
            return (f"**{asked} does not exist in this cluster**, so there is nothing to report about it.\n\n"
                    f"The cluster source says: {outcome.text.split(' Call ')[0]}")
    return None


def _missing_gpu_answer(view: TurnView) -> str | None:
    if view.gpu is None or view.node is None:
        return None
    for data in view.data_of("get_node_details"):
        indexes = [g.get("gpu") for g in data.get("gpus") or []]
        if indexes and view.gpu not in indexes:
            return (f"**{view.node} has no GPU {view.gpu}**: its GPUs are gpu-{min(indexes)} to gpu-{max(indexes)}. "
                    "Ask about one of those.")
    return None


def _thermal_lines(view: TurnView) -> list[str]:
    lines = []
    for data in view.data_of("get_node_details"):
        gpus = [g for g in data.get("gpus") or [] if isinstance(g.get("temp_c"), (int, float))]
        if not gpus:
            continue
        hottest = max(gpus, key=lambda g: g["temp_c"])
        limits = data.get("limits") or {}
        over = hottest["temp_c"] >= limits.get("max_operating_c", 1e9)
        verdict = "Yes" if over else "No"
        lines.append(f"**{verdict}: the hottest GPU of {data.get('node')} is GPU {hottest['gpu']} at "
                     f"{hottest['temp_c']} °C** (max operating {limits.get('max_operating_c')} °C, "
                     f"slowdown {limits.get('slowdown_c')} °C).")
        if not over:
            lines.append(f"{data.get('node')} is within its temperature limits.")
    for data in view.data_of("get_current_metrics"):
        cluster = data.get("cluster") or {}
        if "temp_c_max" in cluster:
            lines.append(f"Hottest GPU temperature in the cluster: {cluster['temp_c_max']} °C.")
    return lines


def _slurm_lines(view: TurnView) -> list[str]:
    lines = []
    for data in view.data_of("get_slurm_status"):
        queue = data.get("queue") or {}
        lines.append(f"Slurm queue: {queue.get('pending', 0)} jobs pending, {queue.get('running', 0)} jobs running.")
        reasons = data.get("pending_reasons") or {}
        if reasons:
            lines.append("Pending reasons: " + ", ".join(f"{k} ({v})" for k, v in reasons.items()) + ".")
        for problem in data.get("problem_nodes") or []:
            state = "+".join(problem.get("state") or [])
            lines.append(f"{problem.get('node')} is {state}, reason \"{problem.get('reason')}\".")
    return lines


def _job_lines(view: TurnView) -> list[str]:
    lines = []
    asked_job = _JOB.search(view.question)
    for data in view.data_of("get_slurm_jobs"):
        jobs = data.get("jobs") or []
        if asked_job and not any(str(j.get("id")) == asked_job.group(1) for j in jobs):
            lines.append(f"There is no job {asked_job.group(1)} in the Slurm job list.")
        if not jobs:
            lines.append(f"No jobs match ({data.get('note') or 'the filter matched nothing'}).")
        for job in jobs[:8]:
            where = ", ".join(job.get("nodes") or []) or "not started"
            reason = f", reason {job['reason']}" if job.get("reason") else ""
            lines.append(f"- job {job.get('id')} ({job.get('name')}, user {job.get('user')}): "
                         f"{job.get('state')} on {where}{reason}.")
    return lines


def _overview_lines(view: TurnView) -> list[str]:
    lines = []
    for data in view.data_of("get_cluster_status"):
        lines.append(f"The cluster has {data.get('nodes')} nodes and {data.get('gpus')} GPUs; average GPU "
                     f"utilisation {data.get('util_pct_avg')} %, average temperature {data.get('temp_c_avg')} °C.")
    return lines


def _alert_lines(view: TurnView) -> list[str]:
    lines = []
    for data in view.data_of("get_alerts"):
        firing = data.get("firing") or []
        if not firing:
            lines.append("No alerts are firing.")
        for event in firing:
            lines.append(f"- alert '{event.get('name')}' firing on {event.get('node')}/gpu-{event.get('gpu')} "
                         f"since {event.get('fired')}.")
    return lines


def reference_answer(view: TurnView) -> str:
    for special in (_unknown_node_answer(view), _missing_gpu_answer(view)):
        if special:
            return special
    node = view.node
    findings = _findings(view)
    if node:
        findings = [f for f in findings if _about_node(f, node)]
    serious = [f for f in findings if f.get("severity") in _SEVERE]
    application = [f for f in findings if f.get("category") == "application" and f.get("severity") == "info"]
    lines: list[str] = []
    if view.asks("thermal"):
        lines += _thermal_lines(view)
    lines += _overview_lines(view) + _slurm_lines(view) + _job_lines(view) + _alert_lines(view)
    scope = node or "the cluster"
    if serious:
        lines += ["", f"Findings for {scope}, most severe first:"] + [_finding_line(f) for f in serious]
    elif view.data_of("diagnose_cluster"):
        lines += ["", f"No critical or warning findings for {scope}: {scope} is healthy."]
        if "rma" in view.question.lower():
            lines.append("No GPU needs an RMA.")
    for finding in application:
        lines.append(f"- {finding.get('subject')} reported errors from a user application "
                     f"({'; '.join(str(e) for e in (finding.get('evidence') or [])[:2])}; rule {finding.get('rule')}): "
                     "not a hardware fault, so no drain and no RMA is needed.")
    if not lines:
        lines.append("The tools returned nothing about this question.")
    return "\n".join(lines).strip() + "\n"


def reference_policy(body: dict[str, Any]) -> StubReply:
    """Plan with the tools the question calls for, then answer from their results only."""
    view = TurnView.of(body)
    if view.tools_offered and not view.results:
        plan = reference_plan(view)
        return StubReply(reasoning=f"Tools for {view.question.strip()!r}: {', '.join(n for n, _ in plan)}.",
                         tool_calls=[StubToolCall(name, json.dumps(args)) for name, args in plan])
    return StubReply(content=reference_answer(view), reasoning="Answering from the tool results.")


# ----------------------------------------------------------------------------------------------
# The bad policies
# ----------------------------------------------------------------------------------------------


def _first_number(data: Any) -> tuple[str, Any] | None:
    if isinstance(data, dict):
        for key, value in data.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return key, value
            found = _first_number(value)
            if found:
                return found
    elif isinstance(data, list):
        for value in data:
            found = _first_number(value)
            if found:
                return found
    return None


def fixed_tool_policy(body: dict[str, Any]) -> StubReply:
    """Always ``get_cluster_status``, then one number from it: grounded, and no answer to anything."""
    view = TurnView.of(body)
    if view.tools_offered and not view.results:
        return StubReply(tool_calls=[StubToolCall("get_cluster_status", "{}")])
    for outcome in view.results:
        found = _first_number(outcome.data)
        if found:
            return StubReply(content=f"The cluster reports {found[0]} {found[1]}.\n")
    return StubReply(content="The cluster reports nothing.\n")


_QUANTITY = re.compile(r"(?<![\w./:-])(\d+(?:\.\d+)?)(?![\d:])")


def _shifted(match: re.Match[str]) -> str:
    value = float(match.group(1))
    return f"{value * 1.37 + 3.1:.1f}"


def inventing_policy(body: dict[str, Any]) -> StubReply:
    """The reference policy with every quantity in its answers made up, and one made-up reading added."""
    reply = reference_policy(body)
    if reply.tool_calls:
        return reply
    invented = _QUANTITY.sub(_shifted, reply.content) + "Estimated cooling headroom: 17.5 %.\n"
    return StubReply(content=invented, reasoning=reply.reasoning)


POLICIES: dict[str, Callable[[dict[str, Any]], StubReply]] = {
    "reference": reference_policy,
    "fixed-tool": fixed_tool_policy,
    "inventing": inventing_policy,
    "keyword": keyword_policy,
}
"""The stub server policies ``gpudoc eval --stub NAME`` can run (all test doubles)."""


def policy_named(name: str) -> Policy:
    try:
        return POLICIES[name]
    except KeyError:
        raise ValueError(f"unknown stub policy {name!r}; policies: {', '.join(POLICIES)}") from None
