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
- **Turns at once on one thread** run one after the other, in arrival order; the later ones
  first stream a ``queued`` status. Nothing is lost: each turn sees the answers before it. This
  holds across processes and hosts too: with PostgreSQL, a turn also holds the thread's advisory
  lock (``graph/pg_locks.py``) from reading the thread until its checkpoint is written.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import aclosing
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

from gpudoc.graph.checkpoint import ThreadStoreError, is_probe_thread, probe_store
from gpudoc.graph.contracts import (
    AgentEvent,
    DoneEvent,
    ErrorEvent,
    StatusEvent,
    TokenEvent,
    ToolEndEvent,
    TurnResult,
)
from gpudoc.graph.deadline import stream_turn_within
from gpudoc.graph.llm import message_text
from gpudoc.graph.thread_store import NoSharedThreadLocks, SharedThreadLocks
from gpudoc.server.metrics import ServerMetrics
from gpudoc.server.thread_locks import ThreadLocks
from gpudoc.tools.cluster_tools import TOOL_NAMES

THREAD_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")

log = logging.getLogger("gpudoc.server.turns")

#: how the error of a turn the store could not keep begins, on every route
NOT_SAVED_PREFIX = "The turn was not saved: "


def not_run(problem: ThreadStoreError) -> ErrorEvent:
    """The error of a turn refused before it ran because its store is unreachable."""
    return ErrorEvent(kind="store", message=f"{NOT_SAVED_PREFIX}{str(problem).rstrip('.')}. Nothing of this turn ran; check /readyz.")


class TurnFailedError(RuntimeError):
    """The agent ended a turn with an error event instead of an answer; ``kind`` as ``ErrorEvent``'s."""

    def __init__(self, message: str, *, kind: str = "agent") -> None:
        super().__init__(message)
        self.kind = kind

    @property
    def not_saved(self) -> bool:
        """The conversation store failed: nothing of the turn was kept."""
        return self.kind == "store"


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


def conversation_of(sent: Sequence[BaseMessage]) -> list[BaseMessage]:
    """The questions and answers of a history a client sent, as plain messages.

    Why rebuilt: a client's messages are its own objects (any LangChain type, with metadata,
    artifacts and tool traffic from elsewhere); the thread keeps the conversation gpudoc reads,
    question and answer texts, which a later turn compacts to anyway. Tool calls, tool results
    and system messages sent along are not part of it.
    """
    rebuilt: list[BaseMessage] = []
    for message in sent:
        entry = _entry(message)
        if entry is not None:
            role, text = entry
            rebuilt.append(HumanMessage(content=text) if role == "human" else AIMessage(content=text))
    return rebuilt


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
    return bool(THREAD_ID_PATTERN.match(value)) and not is_probe_thread(value)


class TurnService:
    """Runs turns on one compiled agent and records what happened in the server's metrics.

    Turns on one thread run one at a time, in arrival order (``ThreadLocks``); each turn ends by
    ``turn_timeout_s`` (``graph/deadline.py``); a turn that fails because the conversation store
    failed says that it was not saved (``ErrorEvent.kind == "store"``).
    """

    def __init__(self, agent: Any, metrics: ServerMetrics, *, enable_thinking: bool,
                 turn_timeout_s: float | None = None, known_tools: Iterable[str] = TOOL_NAMES,
                 shared_locks: SharedThreadLocks | None = None,
                 store_reachable: Callable[[], Awaitable[None]] | None = None) -> None:
        self.agent = agent
        self.metrics = metrics
        self.enable_thinking = enable_thinking
        self.turn_timeout_s = turn_timeout_s
        self.known_tools = frozenset(known_tools)
        self.threads = ThreadLocks()  # this process's turns, in arrival order
        self.shared_locks: SharedThreadLocks = shared_locks or NoSharedThreadLocks()  # every process's
        #: a database server's quick answer (``ThreadStore.check_reachable``); None for a local file
        self.store_reachable = store_reachable
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
        history = conversation_of(history)
        if thread_id is None:
            if (down := await self._store_down()) is not None:
                self._observe(down)
                yield down
                return
            turn = self._stream(question, new_thread_id(), history=history, private=True,
                                enable_thinking=enable_thinking)
            async with aclosing(turn):
                async for event in turn:
                    yield event
            return
        if self.threads.busy(thread_id):
            yield StatusEvent(stage="queued", detail="waiting for the turn before it on this thread to finish")
        async with self.threads.hold(thread_id):
            try:
                release = await self.shared_locks.acquire(thread_id)  # turns of other workers and hosts
            except ThreadStoreError as problem:  # the database holding the lock is unreachable
                failed = not_run(problem)
                self._observe(failed)
                yield failed
                return
            try:
                # Matched against the thread only now, with the turns before it answered.
                added = await self.history_to_add(thread_id, history)
                turn = self._stream(question, thread_id, history=added, private=False,
                                    enable_thinking=enable_thinking)
                async with aclosing(turn):
                    async for event in turn:
                        yield event
            finally:
                await asyncio.shield(release())

    async def _stream(self, question: str, thread: str, *, history: Sequence[BaseMessage], private: bool,
                      enable_thinking: bool | None) -> AsyncIterator[AgentEvent]:
        await self._add_history(thread, history)
        events: asyncio.Queue[AgentEvent | None] = asyncio.Queue()
        producer = asyncio.create_task(
            self._produce(events, question, thread, self.enable_thinking if enable_thinking is None else enable_thinking),
            name=f"gpudoc-turn-{thread}",
        )
        started = time.perf_counter()
        first_token_seen = False
        finished = False
        store_failed = False
        try:
            while (event := await events.get()) is not None:
                if isinstance(event, TokenEvent) and not first_token_seen:
                    first_token_seen = True
                    self.metrics.first_token_latency.observe(time.perf_counter() - started)
                if isinstance(event, ErrorEvent):
                    event = await self._explained(event)
                    store_failed = event.kind == "store"
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
                if private:
                    # A private thread goes once its turn has completely wound down, never while
                    # the turn's own clean-up may still write to it; after a store failure, in the
                    # background: deleting waits for the same store, and the answer must not.
                    if producer.done() and not store_failed:
                        await asyncio.shield(self._forget(thread))
                    else:
                        producer.add_done_callback(lambda _task: self._forget_later(thread))

    async def _produce(
        self, events: asyncio.Queue[AgentEvent | None], question: str, thread_id: str, enable_thinking: bool
    ) -> None:
        """Runs the turn in a task of its own, so that only ``stream`` ever cancels it, and only once."""
        try:
            turn = stream_turn_within(self.agent, question, deadline_s=self.turn_timeout_s, thread_id=thread_id,
                                      enable_thinking=enable_thinking)
            async with aclosing(turn):
                async for event in turn:
                    events.put_nowait(event)
        finally:
            events.put_nowait(None)

    async def _store_down(self) -> ErrorEvent | None:
        """Why a turn must not start: a database server that does not answer at once.

        Why before the turn: a turn on a store that is gone would run its model calls and then
        wait for the connection pool (``db_timeout_s``) once per read, write and clean-up before
        saying it was not saved; the operator waits for nothing. The turns of a thread learn the
        same from their lock (``graph/pg_locks.py``); a private thread takes none, so it asks.
        """
        if self.store_reachable is None:
            return None
        try:
            await self.store_reachable()
        except ThreadStoreError as problem:
            return not_run(problem)
        return None

    async def _explained(self, event: ErrorEvent) -> ErrorEvent:
        """A failed turn whose store cannot be written says so: nothing of it was kept."""
        if event.kind == "store":
            return event
        checkpointer = getattr(self.agent, "checkpointer", None)
        if checkpointer is None:
            return event
        try:
            if self.store_reachable is not None:  # a database server that is gone: no pool wait to learn it
                await self.store_reachable()
            await probe_store(checkpointer)
        except ThreadStoreError as problem:
            return ErrorEvent(kind="store", message=(
                f"{NOT_SAVED_PREFIX}{str(problem).rstrip('.')}. Nothing of this turn is kept in the conversation; check the "
                "conversation store (GPUDOC_DB_PATH: disk space, permissions, integrity; GPUDOC_DB_URL: the "
                "database server) and /readyz."))
        return event

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
                    raise TurnFailedError(event.message, kind=event.kind)
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
        if checkpointer is None or not hasattr(checkpointer, "adelete_thread"):
            return
        try:
            await checkpointer.adelete_thread(thread_id)
        except Exception as error:  # a failing store: the turn already said so; the leftover is harmless
            log.warning("a private thread could not be deleted", extra={"thread_id": thread_id, "error": str(error)})

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
            # a tool name the model invented must not become a new time series
            name = event.name if event.name in self.known_tools else "unknown"
            self.metrics.tool_calls.labels(name, "error" if event.error else "ok").inc()
        elif isinstance(event, DoneEvent):
            result = event.result
            if result.degraded:
                self.metrics.degraded_answers.inc()
            self.metrics.turns.labels("degraded" if result.degraded else "answered").inc()
            self.metrics.unverified_numbers.inc(len(result.unverified_numbers))
        elif isinstance(event, ErrorEvent):
            self.metrics.turns.labels("error").inc()
