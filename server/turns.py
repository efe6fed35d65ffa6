"""Running agent turns for the HTTP routes: thread ids, history sent by clients, metrics.

Why one service for every route: LangServe at ``/agent``, the original ``/api/agent/chat`` and
the chat page all run the same turn through ``stream_turn``; the differences are only in how a
conversation is identified and how the events are encoded on the wire.

Thread semantics (the same for every route and client):

- **No thread id**: the messages sent before the question are the conversation so far; the turn
  runs on a private thread seeded with them, deleted once the turn is over (the original chat
  API, the chat playground without a thread id, one-off ``invoke`` calls).
- **A thread id**: the server keeps the conversation. A client may send only the new question,
  or the whole conversation again (``RemoteRunnable`` and the playground do): the history it
  sends is matched against the thread's questions and answers, and only messages the thread
  does not hold yet are added, so nothing is stored twice. A history that contradicts the
  thread (a different question or answer at the same place) is refused with
  ``ThreadConflictError`` rather than merged or silently dropped.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

from gpudoc.graph.contracts import (
    AgentEvent,
    DoneEvent,
    ErrorEvent,
    TokenEvent,
    ToolEndEvent,
    TurnResult,
)
from gpudoc.graph.llm import message_text
from gpudoc.graph.runner import stream_turn
from gpudoc.server.metrics import ServerMetrics

THREAD_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


class TurnFailedError(RuntimeError):
    """The agent ended a turn with an error event instead of an answer."""


class ThreadConflictError(ValueError):
    """The history a client sent contradicts the conversation the server keeps for that thread."""


def _entry(message: BaseMessage) -> tuple[str, str] | None:
    """A message as the conversation shows it: (role, text); ``None`` for tool traffic."""
    if isinstance(message, HumanMessage):
        return "human", message_text(message).strip()
    if isinstance(message, AIMessage) and not (message.tool_calls or message.invalid_tool_calls):
        text = message_text(message).strip()
        return ("ai", text) if text else None
    return None


def history_to_add(stored: Sequence[BaseMessage], sent: Sequence[BaseMessage], *, thread_id: str) -> list[BaseMessage]:
    """The messages of ``sent`` that a thread holding ``stored`` does not hold yet.

    Raises ``ThreadConflictError`` when ``sent`` is neither part of the thread's conversation
    nor the thread's conversation continued.
    """
    kept = [entry for entry in map(_entry, stored) if entry]
    given = [(message, entry) for message in sent if (entry := _entry(message))]
    entries = [entry for _, entry in given]
    if not entries:
        return []
    if not kept:
        return [message for message, _ in given]
    size = len(entries)
    if kept[-size:] == entries or kept[:size] == entries:
        return []
    if entries[: len(kept)] == kept:
        return [message for message, _ in given[len(kept):]]
    where = next((i for i, (a, b) in enumerate(zip(kept, entries)) if a != b), min(len(kept), size))
    raise ThreadConflictError(
        f"the history sent with thread {thread_id!r} differs from the conversation the server keeps for it "
        f"(message {where + 1}). Send only the new question with this thread id, or use a new thread id "
        "for a different conversation."
    )


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
        """The events of one turn (see the module docstring for the thread semantics).

        Raises ``ThreadConflictError`` before the turn starts when ``history`` contradicts the thread.
        """
        thread = thread_id or new_thread_id()
        await self._add_history(thread, await self.history_to_add(thread_id, history) if thread_id else history)
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

    async def history_to_add(self, thread_id: str, history: Sequence[BaseMessage]) -> list[BaseMessage]:
        """What of ``history`` the thread lacks; ``ThreadConflictError`` when it contradicts the thread."""
        if not history:
            return []
        state = await self.agent.aget_state({"configurable": {"thread_id": thread_id}})
        return history_to_add((state.values or {}).get("messages") or [], history, thread_id=thread_id)

    async def _add_history(self, thread_id: str, history: Sequence[BaseMessage]) -> None:
        if history:
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
