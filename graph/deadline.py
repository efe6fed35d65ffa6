"""A turn's deadline: past ``GPUDOC_TURN_TIMEOUT_S`` the turn ends with what it has, labelled.

Why a deadline of its own when every model call and tool call already has one: a turn is several
of them (up to ``GPUDOC_MAX_ROUNDS`` rounds, retries, a second answer call), and an operator, a
load balancer or GPU Watchdog's chat panel waits for the whole. Past the deadline the graph is
cancelled (its model request closed, so the model stops generating for nobody) and the turn ends
the way a cut-short answer does: the answer streamed so far, or a plain sentence when none had
started, with the note that says why, and the tool calls that finished. The partial answer is
kept in the thread, so a follow-up question sees what the operator saw.

Why a task of its own: the deadline must interrupt the graph, never the caller. The graph runs
in a producer task under ``asyncio.timeout``; the caller only reads a queue, so a deadline that
expires while the caller is busy (sending bytes to a client) cannot land in the caller's code.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

from langchain_core.messages import AIMessage

from gpudoc.graph.contracts import (
    AgentEvent,
    DoneEvent,
    ErrorEvent,
    StatusEvent,
    TokenEvent,
    ToolEndEvent,
    ToolStartEvent,
    ToolCallRecord,
    TurnResult,
)
from gpudoc.graph.outcomes import cut_short
from gpudoc.graph.runner import stream_turn, turn_config
from gpudoc.graph.state import TurnOutcome

log = logging.getLogger(__name__)

#: how long saving the cut-short answer to the thread may take
SAVE_TIMEOUT_S = 10.0


def deadline_reason(seconds: float) -> str:
    return (f"the turn reached its time limit of {seconds:g} s (GPUDOC_TURN_TIMEOUT_S); the model or the "
            "cluster source was too slow.")


class TurnSoFar:
    """What a turn has shown its caller: the answer tokens and the tool calls that finished."""

    def __init__(self) -> None:
        self.answer = ""
        self._started: dict[str, ToolStartEvent] = {}
        self.tool_calls: list[ToolCallRecord] = []

    def see(self, event: AgentEvent) -> None:
        if isinstance(event, TokenEvent):
            self.answer += event.text
        elif isinstance(event, ToolStartEvent):
            self._started[event.id] = event
        elif isinstance(event, ToolEndEvent):
            start = self._started.get(event.id)
            self.tool_calls.append(ToolCallRecord(
                id=event.id, name=event.name, arguments=start.arguments if start else {}, result=event.result,
                error=event.error, duration_ms=event.duration_ms))

    def cut_at_deadline(self, seconds: float) -> tuple[str, str]:
        """(the token still to send, the whole labelled answer)."""
        reason = deadline_reason(seconds)
        if self.answer.strip():
            whole = cut_short(self.answer, reason)
            return whole[len(self.answer):], whole
        done = ", ".join(dict.fromkeys(r.name for r in self.tool_calls if not r.error)) or "none"
        whole = (f"No answer: {reason} Tools that returned data before the limit: {done}; their results are "
                 "in the tool calls. Ask again, or ask a narrower question.")
        return whole, whole


async def stream_turn_within(
    agent: Any,
    question: str,
    *,
    deadline_s: float | None,
    thread_id: str,
    enable_thinking: bool | None = None,
) -> AsyncIterator[AgentEvent]:
    """``stream_turn``'s events; past ``deadline_s`` (None: no deadline) a labelled partial end."""
    events: asyncio.Queue[AgentEvent | None] = asyncio.Queue()
    seen = TurnSoFar()

    async def produce() -> None:
        try:
            async with asyncio.timeout(deadline_s):
                turn = stream_turn(agent, question, thread_id=thread_id, enable_thinking=enable_thinking)
                async with aclosing(turn):
                    async for event in turn:
                        seen.see(event)
                        events.put_nowait(event)
        except TimeoutError:
            assert deadline_s is not None
            for event in await _ended_at_deadline(agent, seen, deadline_s, thread_id):
                events.put_nowait(event)
        finally:
            events.put_nowait(None)

    producer = asyncio.create_task(produce(), name=f"gpudoc-turn-{thread_id}")
    try:
        while (event := await events.get()) is not None:
            yield event
        await producer
    finally:
        if not producer.done():
            producer.cancel()
            await asyncio.shield(asyncio.wait({producer}))


async def _ended_at_deadline(agent: Any, seen: TurnSoFar, seconds: float, thread_id: str) -> list[AgentEvent]:
    rest, answer = seen.cut_at_deadline(seconds)
    log.warning("turn cut at its deadline", extra={"thread_id": thread_id, "deadline_s": seconds})
    outcome = TurnOutcome(answer=answer, cut_short=True)
    try:
        if getattr(agent, "checkpointer", None) is not None:  # a one-off turn (gpudoc ask) keeps no thread
            async with asyncio.timeout(SAVE_TIMEOUT_S):  # a store that hangs must not hold the turn open
                await agent.aupdate_state(turn_config(thread_id), {"messages": [AIMessage(content=answer)],
                                                                      "outcome": outcome}, as_node="finish")
    except Exception as error:  # the thread store failing too: the turn still ends, and says it was not kept
        log.error("the cut-short turn could not be saved", extra={"thread_id": thread_id, "error": str(error)})
        return [ErrorEvent(message=f"The turn reached its time limit of {seconds:g} s and could not be saved: "
                                   f"{type(error).__name__}: {error}", kind="store")]
    result = TurnResult(answer=answer, tool_calls=seen.tool_calls, answer_cut_short=True, thread_id=thread_id)
    return [StatusEvent(stage="deadline", detail=deadline_reason(seconds)), TokenEvent(text=rest),
            DoneEvent(result=result)]
