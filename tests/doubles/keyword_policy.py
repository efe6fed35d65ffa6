"""The stub vLLM server's default policy: tools chosen by the question's words, then an answer
quoting the tool results. Deterministic, so a run is reproducible and every number it quotes is
copied from what it was sent. Part of a TEST DOUBLE, not a model.
"""

from __future__ import annotations

import json
import re
from typing import Any, Iterator

from tests.doubles.stub_reply import Policy, StubReply, StubToolCall
from tests.doubles.vllm_wire import message_text

_NODE_RE = re.compile(r"\bnode[-_ ]?(\d+)\b", re.IGNORECASE)
_TOPIC_KEYS = {
    "thermal": ("temp", "thermal", "clock", "throttl"),
    "jobs": ("pending", "running", "job", "drain", "gpus"),
    "health": ("xid", "remap", "ecc", "severity", "critical", "nvlink"),
}


def _last_question(messages: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """The last user message and the messages after it (this turn's tool results)."""
    for index in range(len(messages) - 1, -1, -1):
        if messages[index].get("role") == "user":
            return message_text(messages[index].get("content")), messages[index + 1 :]
    return "", []


def _tool_params(body: dict[str, Any]) -> dict[str, set[str]]:
    """Offered tool name -> its parameter names, from the request's ``tools`` schemas."""
    offered: dict[str, set[str]] = {}
    for tool in body.get("tools") or []:
        function = tool.get("function", {})
        props = (function.get("parameters") or {}).get("properties") or {}
        offered[function.get("name", "")] = set(props)
    return offered


def _node_arg(params: set[str], node: str | None) -> dict[str, Any]:
    if not node:
        return {}
    for name in ("node_id", "node"):
        if name in params:
            return {name: node}
    return {}


def keyword_plan(question: str, offered: dict[str, set[str]]) -> list[tuple[str, dict[str, Any]]]:
    """Which tools a question's words call for (only tools the request offers)."""
    lowered = question.lower()
    match = _NODE_RE.search(question)
    node = f"node-{int(match.group(1))}" if match else None
    wanted: list[tuple[str, dict[str, Any]]] = []

    def want(name: str, **extra: Any) -> None:
        if name in offered and name not in [w[0] for w in wanted]:
            args = {**_node_arg(offered[name], node), **{k: v for k, v in extra.items() if k in offered[name]}}
            wanted.append((name, args))

    if any(word in lowered for word in ("hot", "temperature", "thermal", "temp ", "cooling")):
        want("get_gpu_history", duration_minutes=60)
        want("get_node_details" if node else "get_current_metrics")
    if any(word in lowered for word in ("pending", "job", "queue", "slurm")):
        want("get_slurm_jobs", state="PENDING" if "pending" in lowered else None)
        want("get_slurm_status")
    if any(word in lowered for word in ("rma", "health", "broken", "fault", "wrong", "diagnos", "fail")):
        want("diagnose_cluster")
    if "alert" in lowered:
        want("get_alert_history")
    if not wanted and node:
        want("get_node_details")
    if not wanted:
        want("get_cluster_status")
    return [(name, {k: v for k, v in args.items() if v is not None}) for name, args in wanted]


def _numeric_leaves(value: Any, key: str = "") -> Iterator[tuple[str, float | int]]:
    if isinstance(value, bool):
        return
    if isinstance(value, (int, float)):
        yield key, value
    elif isinstance(value, dict):
        for child_key, child in value.items():
            yield from _numeric_leaves(child, str(child_key))
    elif isinstance(value, list):
        for child in value:
            yield from _numeric_leaves(child, key)


def _subjects(value: Any) -> Iterator[tuple[str, str, str]]:
    """(severity, subject, title) of every finding-shaped object in a tool result."""
    if isinstance(value, dict):
        if "subject" in value and "severity" in value:
            yield str(value["severity"]), str(value["subject"]), str(value.get("title", ""))
        for child in value.values():
            yield from _subjects(child)
    elif isinstance(value, list):
        for child in value:
            yield from _subjects(child)


def _topic(question: str) -> str:
    lowered = question.lower()
    if any(w in lowered for w in ("hot", "temperature", "thermal")):
        return "thermal"
    if any(w in lowered for w in ("pending", "job", "queue")):
        return "jobs"
    return "health"


def keyword_answer(question: str, turn_messages: list[dict[str, Any]], *, limit: int = 4) -> StubReply:
    """A markdown answer quoting a few numbers and findings copied verbatim from the tool results."""
    names = {}
    for message in turn_messages:
        for call in message.get("tool_calls") or []:
            names[call.get("id")] = call.get("function", {}).get("name", "tool")
    facts: list[tuple[str, str, Any]] = []
    findings: list[tuple[str, str, str]] = []
    errors: list[str] = []
    keys = _TOPIC_KEYS[_topic(question)]
    for message in turn_messages:
        if message.get("role") != "tool":
            continue
        tool = names.get(message.get("tool_call_id"), "tool")
        text = message_text(message.get("content"))
        try:
            data = json.loads(text)
        except ValueError:
            errors.append(f"{tool}: {text[:160]}")
            continue
        leaves = list(_numeric_leaves(data))
        preferred = sorted((leaf for leaf in leaves if any(k in leaf[0].lower() for k in keys)),
                           key=lambda leaf: -leaf[1])  # the most extreme readings first
        for key, number in (preferred or leaves)[:limit]:
            facts.append((tool, key, number))
        findings.extend(_subjects(data))
    facts = facts[: limit * 2]
    used = ", ".join(dict.fromkeys(names.values())) or "no tools"
    reasoning = (
        f"The operator asks: {question.strip()!r}. I called {used}. "
        f"I will report {len(facts)} readings and {len(findings)} findings taken from those results."
    )
    match = _NODE_RE.search(question)
    about = f" for node-{int(match.group(1))}" if match else ""
    lines = [f"**Answer{about}** (evidence from {used})", ""]
    if facts:
        lines += ["| tool | reading | value |", "|---|---|---|"]
        lines += [f"| {tool} | {key or 'value'} | {number} |" for tool, key, number in facts]
        lines.append("")
    for severity, subject, title in findings[:6]:
        lines.append(f"- **{severity}** {subject}: {title}".rstrip(": "))
    for error in errors:
        lines.append(f"- a tool failed: {error}")
    if not facts and not findings and not errors:
        lines.append("The tools returned no readings for this question.")
    return StubReply(content="\n".join(lines).strip() + "\n", reasoning=reasoning)


def keyword_policy(body: dict[str, Any]) -> StubReply:
    """Deterministic default: first call tools chosen by keywords, then answer from their results."""
    question, after = _last_question(body.get("messages") or [])
    offered = _tool_params(body)
    has_results = any(m.get("role") == "tool" for m in after)
    if offered and not has_results:
        plan = keyword_plan(question, offered)
        return StubReply(
            reasoning=f"To answer {question.strip()!r} I need: {', '.join(name for name, _ in plan)}.",
            tool_calls=[StubToolCall(name, json.dumps(args)) for name, args in plan],
        )
    return keyword_answer(question, after)


#: what ``planning_text_policy`` writes beside its tool calls
PLANNING_TEXT = "Let me look at node-2 first; it is probably fine at 40 C."


def planning_text_policy(body: dict[str, Any]) -> StubReply:
    """The keyword policy, with text written beside the planning call's tool calls (as small models'
    often is): that text is commentary, and must never reach a client as the answer."""
    reply = keyword_policy(body)
    if reply.tool_calls:
        reply.content = PLANNING_TEXT
    return reply


def keyword_then_answer(answer: str) -> Policy:
    """The keyword policy's tool calls, then ``answer`` once tool results are in: for the tests
    about what happens to a given answer (long enough to leave in the middle of, full of markup)."""

    def policy(body: dict[str, Any]) -> StubReply:
        if any(message.get("role") == "tool" for message in body.get("messages") or []):
            return StubReply(content=answer)
        return keyword_policy(body)

    return policy
