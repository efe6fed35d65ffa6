"""One turn at a time per conversation thread, queued in arrival order, in this process.

Why: LangGraph's checkpointer keeps a thread as a chain of checkpoints. Two turns running at once
on one thread both start from the same checkpoint, and the one that finishes last writes over
the other: its question and answer vanish from the conversation although its client got an
answer. Serialising the turns of a thread (``asyncio.Lock`` wakes waiters in arrival order) keeps
every turn, each one seeing the answers before it.

Scope: the locks live in this process. Several server processes sharing one store (``gpudoc
serve --workers``, or replicas behind a load balancer) share PostgreSQL, and a turn holding this
lock then also takes the thread's advisory lock there (``graph/pg_locks.py``, through
``TurnService``), so turns of one thread follow each other across processes too.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field


@dataclass
class _Entry:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0  # holders and waiters; the entry goes when none is left


class ThreadLocks:
    """A lock per thread id, created on first use and dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}

    def busy(self, thread_id: str) -> bool:
        """Whether a turn on this thread is running (a new one would wait)."""
        entry = self._entries.get(thread_id)
        return entry is not None and entry.lock.locked()

    def waiting(self, thread_id: str) -> int:
        """Turns on this thread that hold or wait for its lock."""
        entry = self._entries.get(thread_id)
        return entry.users if entry else 0

    @asynccontextmanager
    async def hold(self, thread_id: str) -> AsyncIterator[None]:
        """Hold the thread's lock for the body, after the turns that asked for it earlier."""
        entry = self._entries.setdefault(thread_id, _Entry())
        entry.users += 1
        try:
            async with entry.lock:
                yield
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._entries[thread_id]
