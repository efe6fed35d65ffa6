"""The messages gpudoc writes itself in a turn: scheduled calls, notes on answers, findings read from results.

Why apart from the graph: these are the words and shapes an operator reads when the model did
not (or not completely) answer; keeping them in one place keeps them consistent and testable.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import AIMessage

from gpudoc.graph.contracts import ToolCallRecord
from gpudoc.tools.diagnosis.findings import Finding

#: response_metadata key marking messages gpudoc wrote itself (never shown as the model's words)
ORIGIN = "gpudoc_origin"


def scheduled_calls(calls: Sequence[tuple[str, dict[str, Any]]], *, retry: bool = False) -> AIMessage:
    """An assistant turn carrying the calls reflect schedules itself (marked as gpudoc's, not the model's)."""
    return AIMessage(
        content="",
        tool_calls=[{"name": name, "args": args, "id": f"call_{uuid.uuid4().hex[:16]}", "type": "tool_call"}
                    for name, args in calls],
        response_metadata={ORIGIN: "reflect", "retry": retry},
    )


def empty_answer(records: Sequence[ToolCallRecord], *, out_of_tokens: bool, max_tokens: int | None) -> str:
    """Said plainly when the model returned no answer text."""
    done = ", ".join(dict.fromkeys(r.name for r in records if not r.error)) or "none"
    if out_of_tokens:
        budget = f"LLM_MAX_TOKENS={max_tokens}" if max_tokens else "the server's output limit"
        why = (f"The language model used its whole output budget ({budget}) thinking and wrote no answer, "
               "also when asked again without thinking. Raise LLM_MAX_TOKENS or ask a narrower question.")
    else:
        why = "The language model returned no answer text for this question. Ask again."
    return f"{why} Tools that returned data: {done}; their results are in the tool calls."


def cut_short(partial: str, reason: str) -> str:
    """A partial answer with the note that says it is one (never another answer glued to it)."""
    return (f"{partial.rstrip()}\n\n---\n*This answer was cut short: {reason} "
            "It is incomplete; ask again for the rest.*")


def findings_in(result_text: str) -> list[Finding]:
    """Finding-shaped objects (severity, subject, rule) anywhere in a tool's JSON result."""
    try:
        data = json.loads(result_text)
    except ValueError:
        return []
    found: list[Finding] = []
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if {"severity", "subject", "rule"} <= item.keys():
                try:
                    found.append(Finding.model_validate(item))
                except ValueError:
                    pass
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(reversed(item))
    return found
