"""Running one round of tool calls: in parallel, each with a timeout, every failure recoverable.

Why so defensive: a small local model writes malformed JSON, invents tool names, misspells node
ids and repeats itself. None of that may crash a turn or be silently dropped: each becomes a
tool message (``status="error"``) saying what went wrong and how to fix it, and the turn goes on.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import BaseTool, ToolException
from pydantic import ValidationError

from gpudoc.graph.contracts import ToolCallRecord
from gpudoc.tools.models.text import neutralise_markup
from gpudoc.tools.sources.base import SourceError, SourceUnavailableError, UnknownNodeError

EventWriter = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class PlannedCall:
    """One call the model (or reflect) asked for. ``malformed`` holds the parse error, if any."""

    id: str
    name: str
    arguments: dict[str, Any]
    raw_arguments: str | None = None
    malformed: str | None = None

    @property
    def key(self) -> str:
        return call_key(self.name, self.arguments)


TRANSIENT_KINDS = frozenset({"timeout", "unavailable"})
"""Failures worth one retry: the same call may well succeed a moment later."""


@dataclass(frozen=True)
class CallOutcome:
    message: ToolMessage
    record: ToolCallRecord


def call_key(name: str, arguments: Mapping[str, Any]) -> str:
    """Identity of a call for the repeat guard: the name and the arguments, order-insensitive."""
    return f"{name}:{json.dumps(arguments, sort_keys=True, default=str)}"


def planned_calls(message: AIMessage) -> list[PlannedCall]:
    """The valid and the malformed tool calls of an assistant message, in order."""
    calls = [PlannedCall(id=c["id"] or _new_id(), name=c["name"], arguments=dict(c.get("args") or {}))
             for c in message.tool_calls]
    for bad in message.invalid_tool_calls:
        calls.append(PlannedCall(id=bad.get("id") or _new_id(), name=bad.get("name") or "",
                                 arguments={}, raw_arguments=bad.get("args"),
                                 malformed=bad.get("error") or "arguments are not a valid JSON object"))
    return calls


def _new_id() -> str:
    return f"call_{uuid.uuid4().hex[:16]}"


def _as_text(output: Any) -> str:
    if isinstance(output, str):
        return output
    if isinstance(output, ToolMessage):
        return output.content if isinstance(output.content, str) else json.dumps(output.content, default=str)
    return json.dumps(output, separators=(",", ":"), default=str)


def _failure_kind(exc: BaseException) -> str:
    """Classify a tool's exception by the source error behind it (tools wrap them in ToolException)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, UnknownNodeError):
            return "unknown_node"
        if isinstance(seen, (SourceUnavailableError, asyncio.TimeoutError, TimeoutError)):
            return "unavailable"
        seen = seen.__cause__ or seen.__context__
    return "unknown_node" if "Unknown node" in str(exc) else "failed"


def raising_copy(tool: BaseTool) -> BaseTool:
    """The tool with its error handlers off, so the executor sees (and classifies) the exception.

    The tool's own messages are kept: a ``ToolException``'s text is what its handler would
    return, and its validation handler (if it has one) is applied by the executor.
    """
    return tool.model_copy(update={"handle_tool_error": False, "handle_validation_error": False})


class ToolRound:
    """Runs the calls of one round against ``tools``, remembering this turn's earlier calls."""

    def __init__(self, tools: Sequence[BaseTool], *, timeout_s: float) -> None:
        self.tools = {tool.name: tool for tool in tools}
        self.raising = {tool.name: raising_copy(tool) for tool in tools}
        self.timeout_s = timeout_s

    async def run(
        self, calls: Sequence[PlannedCall], earlier: Sequence[ToolCallRecord], *, writer: EventWriter,
        allow_repeat: bool = False,
    ) -> list[CallOutcome]:
        """Run ``calls`` concurrently; ``writer`` receives tool_start / tool_end events as they happen."""
        seen = {call_key(r.name, r.arguments): r for r in earlier}
        in_round: set[str] = set()
        jobs = []
        for call in calls:
            previous = None if allow_repeat else seen.get(call.key)
            duplicate_in_round = call.key in in_round and call.malformed is None
            in_round.add(call.key)
            jobs.append(self._one(call, previous, duplicate_in_round, writer))
        return list(await asyncio.gather(*jobs))

    async def _one(self, call: PlannedCall, previous: ToolCallRecord | None, duplicate_in_round: bool,
                   writer: EventWriter) -> CallOutcome:
        writer({"kind": "tool_start", "id": call.id, "name": call.name, "arguments": call.arguments})
        started = time.perf_counter()
        kind: str | None
        if call.malformed is not None:
            text, kind = self._malformed(call), "malformed_arguments"
        elif call.name not in self.tools:
            text, kind = self._unknown_tool(call.name), "unknown_tool"
        elif previous is not None:
            text, kind = self._repeated(call, previous), "repeated"
        elif duplicate_in_round:
            text, kind = (f"{call.name} with these arguments is already being called in this round; "
                          "use that result."), "repeated"
        else:
            text, kind = await self._execute(call)
        if kind is not None:  # error texts quote what the model sent and what a source said: one line, no markup
            text = neutralise_markup(text)
        record = ToolCallRecord(id=call.id, name=call.name, arguments=call.arguments, result=text,
                                error=kind is not None, error_kind=kind,
                                duration_ms=round((time.perf_counter() - started) * 1000, 3))
        writer({"kind": "tool_end", **record.model_dump()})
        message = ToolMessage(content=text, tool_call_id=call.id, name=call.name or "invalid",
                              status="error" if kind else "success")
        return CallOutcome(message=message, record=record)

    async def _execute(self, call: PlannedCall) -> tuple[str, str | None]:
        """The tool's output text and ``None``, or an actionable error text and its kind."""
        tool = self.tools[call.name]
        try:
            output = await asyncio.wait_for(self.raising[call.name].ainvoke(call.arguments), timeout=self.timeout_s)
        except asyncio.TimeoutError:
            return (f"{call.name} timed out after {self.timeout_s:g} s; the data source may be slow or down. "
                    "Try a narrower query or answer without it."), "timeout"
        except ValidationError as exc:
            if callable(tool.handle_validation_error):
                return str(tool.handle_validation_error(exc)), "bad_arguments"
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
            return (f"Bad arguments for {call.name}: {problems}. "
                    f"Expected arguments: {self._schema_hint(tool)}."), "bad_arguments"
        except (ToolException, SourceError) as exc:
            return f"{call.name} failed: {exc}", _failure_kind(exc)
        except Exception as exc:  # a tool's own bug must not end the turn; the model is told
            return f"{call.name} failed unexpectedly ({type(exc).__name__}: {exc}).", "failed"
        if isinstance(output, ToolMessage) and output.status == "error":
            return _as_text(output), "failed"
        return _as_text(output), None

    def _malformed(self, call: PlannedCall) -> str:
        expected = self._schema_hint(self.tools[call.name]) if call.name in self.tools else "see the tool list"
        return (f"Your call to {call.name or '(no name)'} could not be read: its arguments {call.raw_arguments!r} "
                f"are not valid JSON ({call.malformed}). Call it again with a JSON object; expected arguments: "
                f"{expected}.")

    def _unknown_tool(self, name: str) -> str:
        return f"There is no tool named {name!r}. Valid tools: {', '.join(sorted(self.tools))}."

    @staticmethod
    def _repeated(call: PlannedCall, previous: ToolCallRecord) -> str:
        outcome = "failed" if previous.error else "succeeded"
        return (f"Already called {call.name} with the same arguments in this turn (call {previous.id}, which "
                f"{outcome}); its result is above. Do not repeat it: use that result, call a different tool "
                "or different arguments, or answer.")

    @staticmethod
    def _schema_hint(tool: BaseTool) -> str:
        schema = tool.tool_call_schema
        properties = schema.model_json_schema().get("properties", {}) if hasattr(schema, "model_json_schema") else {}
        if not properties:
            return "{} (no arguments)"
        return json.dumps({name: spec.get("type", "any") for name, spec in properties.items()})
