"""Running agent turns for the HTTP routes: thread ids, history from stateless clients, metrics.

Why one service for every route: LangServe at ``/agent``, the original ``/api/agent/chat`` and
the chat page all run the same turn through ``stream_turn``; the differences are only in how a
conversation is identified (a thread id kept by the checkpointer, or the whole history sent by
a stateless client) and how the events are encoded on the wire.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing
from typing import Any

from langchain_core.messages import BaseMessage

from gpudoc.graph.contracts import (
    AgentEvent,
    DoneEvent,
    ErrorEvent,
    TokenEvent,
    ToolEndEvent,
    TurnResult,
)
from gpudoc.graph.runner import stream_turn
from gpudoc.server.metrics import ServerMetrics

THREAD_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


class TurnFailedError(RuntimeError):
    """The agent ended a turn with an error event instead of an answer."""


def new_thread_id() -> str:
    return f"thread-{uuid.uuid4().hex}"


def valid_thread_id(value: str) -> bool:
    return bool(THREAD_ID_PATTERN.match(value))


class TurnService:
    """Runs turns on one compiled agent and records what happened in the server's metrics."""

    def __init__(self, agent: Any, metrics: ServerMetrics, *, enable_thinking: bool) -> None:
        self.agent = agent
        self.metrics = metrics
        self.enable_thinking = enable_thinking
        self._background: set[asyncio.Task[None]] = set()

    async def stream(
        self,
        question: str,
        *,
        thread_id: str | None = None,
        history: Sequence[BaseMessage] = (),
        enable_thinking: bool | None = None,
    ) -> AsyncIterator[AgentEvent]:
        """The events of one turn. Without a thread id the turn runs on a fresh, private thread.

        ``history`` (earlier messages a stateless client sends along) is appended to the thread
        before the question, so the agent sees the same conversation the client shows.
        """
        thread = thread_id or new_thread_id()
        if history:
            await self._append_history(thread, history)
        events: asyncio.Queue[AgentEvent | None] = asyncio.Queue()
        producer = asyncio.create_task(
            self._produce(events, question, thread, self.enable_thinking if enable_thinking is None else enable_thinking),
            name=f"gpudoc-turn-{thread}",
        )
        started = time.perf_counter()
        first_token_seen = False
        finished = False
        try:
            while (event := await events.get()) is not None:
                if isinstance(event, TokenEvent) and not first_token_seen:
                    first_token_seen = True
                    self.metrics.first_token_latency.observe(time.perf_counter() - started)
                self._observe(event)
                if isinstance(event, (DoneEvent, ErrorEvent)):
                    finished = True
                    self.metrics.turn_latency.observe(time.perf_counter() - started)
                yield event
            await producer  # re-raises what ended the turn early, if anything
        finally:
            if not finished:
                # the client went away (or the server is stopping): the turn was cancelled
                self.metrics.turns.labels("cancelled").inc()
            try:
                if not producer.done():
                    # Cancel the turn once and let it close its LLM request undisturbed: a server
                    # cancels a departed client's handler repeatedly, and a cancellation landing in
                    # the agent's own clean-up would leave the LLM stream open, generating for nobody.
                    producer.cancel()
                    await asyncio.shield(asyncio.wait({producer}))
            finally:
                if thread_id is None:
                    # A private thread goes once its turn has completely wound down, never while
                    # the turn's own clean-up may still write to it.
                    if producer.done():
                        await asyncio.shield(self._forget(thread))
                    else:
                        producer.add_done_callback(lambda _task: self._forget_later(thread))

    async def _produce(
        self, events: asyncio.Queue[AgentEvent | None], question: str, thread_id: str, enable_thinking: bool
    ) -> None:
        """Runs the turn in a task of its own, so that only ``stream`` ever cancels it, and only once."""
        try:
            turn = stream_turn(self.agent, question, thread_id=thread_id, enable_thinking=enable_thinking)
            async with aclosing(turn):
                async for event in turn:
                    events.put_nowait(event)
        finally:
            events.put_nowait(None)

    async def run(
        self,
        question: str,
        *,
        thread_id: str | None = None,
        history: Sequence[BaseMessage] = (),
        enable_thinking: bool | None = None,
    ) -> TurnResult:
        """One whole turn; raises ``TurnFailedError`` when the agent reports an error."""
        events = self.stream(question, thread_id=thread_id, history=history, enable_thinking=enable_thinking)
        async with aclosing(events):
            async for event in events:
                if isinstance(event, DoneEvent):
                    return event.result
                if isinstance(event, ErrorEvent):
                    raise TurnFailedError(event.message)
        raise TurnFailedError("the agent ended the turn without an answer")

    def _forget_later(self, thread_id: str) -> None:
        task = asyncio.get_running_loop().create_task(self._forget(thread_id))
        self._background.add(task)  # keep a reference until it is done
        task.add_done_callback(self._background.discard)

    async def _forget(self, thread_id: str) -> None:
        """Drop a private thread once its turn is over.

        A stateless client (the original chat API, the playground) sends the whole history with
        every request, so keeping its one-turn threads would only grow the database forever.
        """
        checkpointer = getattr(self.agent, "checkpointer", None)
        if checkpointer is not None and hasattr(checkpointer, "adelete_thread"):
            await checkpointer.adelete_thread(thread_id)

    async def _append_history(self, thread_id: str, history: Sequence[BaseMessage]) -> None:
        config = {"configurable": {"thread_id": thread_id}}
        await self.agent.aupdate_state(config, {"messages": list(history)})

    def _observe(self, event: AgentEvent) -> None:
        if isinstance(event, ToolEndEvent):
            self.metrics.tool_calls.labels(event.name, "error" if event.error else "ok").inc()
        elif isinstance(event, DoneEvent):
            result = event.result
            if result.degraded:
                self.metrics.degraded_answers.inc()
            self.metrics.turns.labels("degraded" if result.degraded else "answered").inc()
            self.metrics.unverified_numbers.inc(len(result.unverified_numbers))
        elif isinstance(event, ErrorEvent):
            self.metrics.turns.labels("error").inc()
