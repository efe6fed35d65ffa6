"""Running one turn of the agent and turning the graph's streams into the contract's events.

Why a runner between the graph and its callers: the CLI, LangServe, the original chat API and
the chat page all want the same thing (answer and reasoning tokens as the model produces them,
each tool call as it starts and ends, progress, then one ``TurnResult``), and none of them
should depend on the graph's node names or state layout.

The tokens of a turn, joined, are exactly its ``TurnResult.answer``: only the answer node's
model text streams as answer (with the blank space around it trimmed, as the answer is), and
whatever the answer has beyond what streamed (an accepted draft, a note on an answer cut short,
the no-model answer) follows as the last token before ``DoneEvent``.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any, AsyncIterator, Mapping

from langchain_core.messages import AIMessageChunk, HumanMessage
from langgraph.graph.state import CompiledStateGraph

from gpudoc.graph.contracts import (
    AgentEvent,
    DoneEvent,
    ErrorEvent,
    GroundingReport,
    ReasoningEvent,
    StatusEvent,
    TokenEvent,
    TokenUsage,
    ToolEndEvent,
    ToolStartEvent,
    TurnResult,
)
from gpudoc.graph.llm import REASONING_KEY, content_text

log = logging.getLogger(__name__)

#: the graph's own bound is max_rounds; this only stops a runaway graph
RECURSION_LIMIT = 100
#: nodes whose model reasoning is streamed to the caller
MODEL_NODES = frozenset({"plan", "answer"})
#: the node whose model text is the answer
ANSWER_NODE = "answer"


class AgentTurnError(RuntimeError):
    """A turn ended without an answer (a bug or an unexpected failure, never a down LLM)."""


def turn_config(thread_id: str, enable_thinking: bool | None = None) -> dict[str, Any]:
    configurable: dict[str, Any] = {"thread_id": thread_id}
    if enable_thinking is not None:
        configurable["enable_thinking"] = enable_thinking
    return {"configurable": configurable, "recursion_limit": RECURSION_LIMIT}


def turn_result_from_state(state: Mapping[str, Any], *, thread_id: str | None = None) -> TurnResult:
    """The ``TurnResult`` of a graph's final state (the current turn's channels)."""
    outcome = state.get("outcome")
    grounding = state.get("grounding") or GroundingReport()
    return TurnResult(
        answer=outcome.answer if outcome else "",
        tool_calls=list(state.get("evidence") or []),
        findings=list(state.get("findings") or []),
        degraded=bool(outcome and outcome.degraded),
        degraded_reason=outcome.degraded_reason if outcome else None,
        answer_cut_short=bool(outcome and outcome.cut_short),
        reasoning=state.get("reasoning", ""),
        unverified_numbers=[number.text for number in grounding.unverified],
        grounding=grounding,
        llm_round_trips=int(state.get("llm_round_trips", 0)),
        tool_rounds=int(state.get("rounds", 0)),
        tokens=state.get("tokens") or TokenUsage(),
        thread_id=thread_id,
    )


class AnswerStream:
    """The answer tokens sent so far, trimmed as the final answer is (no blank space at either end)."""

    def __init__(self) -> None:
        self.sent = ""
        self._blank = ""  # blank space held back until text follows it

    def feed(self, text: str) -> str:
        text = self._blank + text
        if not self.sent:
            text = text.lstrip()
        body = text.rstrip()
        self._blank = text[len(body):]
        self.sent += body
        return body

    def rest(self, answer: str) -> str:
        """What the answer has beyond the tokens sent; logs an error if the tokens were not its start."""
        if answer.startswith(self.sent):
            return answer[len(self.sent):]
        log.error("streamed answer differs from the final answer", extra={"streamed": self.sent[:200]})
        return ""


def _model_events(message: Any, metadata: Mapping[str, Any], answer: AnswerStream) -> list[AgentEvent]:
    node = metadata.get("langgraph_node")
    if node not in MODEL_NODES or not isinstance(message, AIMessageChunk):
        return []  # whole messages are state updates; only streamed chunks are news
    events: list[AgentEvent] = []
    reasoning = message.additional_kwargs.get(REASONING_KEY)
    if reasoning:
        events.append(ReasoningEvent(text=str(reasoning)))
    if node == ANSWER_NODE:
        text = answer.feed(content_text(message.content))
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
    if kind == "reasoning":
        return ReasoningEvent(text=str(payload.get("text", "")))
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
    answer = AnswerStream()
    try:
        async for mode, payload in agent.astream(
            {"messages": [HumanMessage(content=question)]}, config, stream_mode=["messages", "custom", "values"]
        ):
            if mode == "messages":
                message, metadata = payload
                for event in _model_events(message, metadata, answer):
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
    if final is None or final.get("outcome") is None or not final["outcome"].answer:
        yield ErrorEvent(message="The agent ended the turn without an answer.")
        return
    result = turn_result_from_state(final, thread_id=thread)
    rest = answer.rest(result.answer)
    if rest:
        yield TokenEvent(text=rest)
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
