"""Running one turn of the agent and turning the graph's streams into the contract's events.

Why a runner between the graph and its callers: the CLI, LangServe, the original chat API and
the chat page all want the same thing (answer and reasoning tokens as the model produces them,
each tool call as it starts and ends, progress, then one ``TurnResult``), and none of them
should depend on the graph's node names or state layout.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any, AsyncIterator, Mapping

from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage
from langgraph.graph.state import CompiledStateGraph

from gpudoc.graph.contracts import (
    AgentEvent,
    DoneEvent,
    ErrorEvent,
    ReasoningEvent,
    StatusEvent,
    TokenEvent,
    ToolCallRecord,
    ToolEndEvent,
    ToolStartEvent,
    TurnResult,
)
from gpudoc.graph.llm import REASONING_KEY, content_text
from gpudoc.tools.diagnosis.findings import Finding

log = logging.getLogger(__name__)

#: the graph's own bound is max_rounds; this only stops a runaway graph
RECURSION_LIMIT = 100
#: nodes whose model output is streamed to the caller
MODEL_NODES = frozenset({"plan", "answer"})


class AgentTurnError(RuntimeError):
    """A turn ended without an answer (a bug or an unexpected failure, never a down LLM)."""


def turn_config(thread_id: str, enable_thinking: bool | None = None) -> dict[str, Any]:
    configurable: dict[str, Any] = {"thread_id": thread_id}
    if enable_thinking is not None:
        configurable["enable_thinking"] = enable_thinking
    return {"configurable": configurable, "recursion_limit": RECURSION_LIMIT}


def turn_result_from_state(state: Mapping[str, Any], *, thread_id: str | None = None) -> TurnResult:
    """The ``TurnResult`` of a graph's final state (the current turn's fields)."""
    return TurnResult(
        answer=state.get("answer", ""),
        tool_calls=[ToolCallRecord.model_validate(r) for r in state.get("evidence") or []],
        findings=[Finding.model_validate(f) for f in state.get("findings") or []],
        degraded=bool(state.get("degraded")),
        degraded_reason=state.get("degraded_reason"),
        reasoning=state.get("reasoning", ""),
        unverified_numbers=list(state.get("unverified_numbers") or []),
        llm_round_trips=int(state.get("llm_round_trips", 0)),
        tool_rounds=int(state.get("rounds", 0)),
        thread_id=thread_id,
    )


def _model_events(message: Any, metadata: Mapping[str, Any]) -> list[AgentEvent]:
    if metadata.get("langgraph_node") not in MODEL_NODES or not isinstance(message, (AIMessage, AIMessageChunk)):
        return []
    events: list[AgentEvent] = []
    reasoning = message.additional_kwargs.get(REASONING_KEY)
    if reasoning:
        events.append(ReasoningEvent(text=str(reasoning)))
    text = content_text(message.content)
    if text:
        events.append(TokenEvent(text=text))
    return events


def _custom_event(payload: Mapping[str, Any]) -> AgentEvent | None:
    kind = payload.get("kind")
    if kind == "tool_start":
        return ToolStartEvent(id=payload["id"], name=payload["name"], arguments=payload.get("arguments") or {})
    if kind == "tool_end":
        return ToolEndEvent(id=payload["id"], name=payload["name"], result=payload.get("result", ""),
                            error=bool(payload.get("error")), duration_ms=float(payload.get("duration_ms", 0.0)))
    if kind == "status":
        return StatusEvent(stage=str(payload.get("stage", "")), detail=str(payload.get("detail", "")))
    return None


async def stream_turn(
    agent: CompiledStateGraph,
    question: str,
    *,
    thread_id: str | None = None,
    enable_thinking: bool | None = None,
) -> AsyncIterator[AgentEvent]:
    """The events of one turn as they happen, ending with ``DoneEvent`` (or ``ErrorEvent``).

    ``thread_id`` continues a conversation kept by the agent's checkpointer (a new id is made
    when None). ``enable_thinking`` False asks the model not to reason (vLLM chat template).
    """
    thread = thread_id or uuid.uuid4().hex
    config = turn_config(thread, enable_thinking)
    final: Mapping[str, Any] | None = None
    streamed_answer = False
    try:
        async for mode, payload in agent.astream(
            {"messages": [HumanMessage(content=question)]}, config, stream_mode=["messages", "custom", "values"]
        ):
            if mode == "messages":
                message, metadata = payload
                for event in _model_events(message, metadata):
                    streamed_answer = streamed_answer or isinstance(event, TokenEvent)
                    yield event
            elif mode == "custom" and isinstance(payload, Mapping):
                event = _custom_event(payload)
                if event is not None:
                    yield event
            elif mode == "values":
                final = payload
    except Exception as error:  # the caller gets one error event, never a traceback mid-stream
        log.exception("agent turn failed")
        yield ErrorEvent(message=f"The agent failed: {type(error).__name__}: {error}")
        return
    if final is None or not final.get("answer") and not final.get("degraded"):
        yield ErrorEvent(message="The agent ended the turn without an answer.")
        return
    result = turn_result_from_state(final, thread_id=thread)
    if result.degraded:
        yield TokenEvent(text=result.answer)  # written by gpudoc, not streamed by a model
    elif not streamed_answer and result.answer:
        yield TokenEvent(text=result.answer)
    yield DoneEvent(result=result)


async def run_turn(
    agent: CompiledStateGraph,
    question: str,
    *,
    thread_id: str | None = None,
    enable_thinking: bool | None = None,
) -> TurnResult:
    """One whole turn. Raises ``AgentTurnError`` if the agent fails (a down LLM is not a failure)."""
    async for event in stream_turn(agent, question, thread_id=thread_id, enable_thinking=enable_thinking):
        if isinstance(event, DoneEvent):
            return event.result
        if isinstance(event, ErrorEvent):
            raise AgentTurnError(event.message)
    raise AgentTurnError("The agent ended the turn without an answer.")
