"""Where conversations are kept: SQLite on this host (the default) or PostgreSQL shared by many.

Why one opener for both: the server, ``gpudoc chat`` and ``gpudoc serve``'s start-up checks all
need "the thread store the settings name", with its checkpointer for the graph, its lock for
turns of one thread (``graph/pg_locks.py`` with PostgreSQL; nothing to share with SQLite, which
one process owns) and, for ``/readyz`` and turns, whether a database server answers and what to
say when it fails.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import psycopg

from gpudoc.config import Settings
from gpudoc.graph.checkpoint import ThreadStoreError, open_checkpointer
from gpudoc.graph.pg_locks import PostgresThreadLocks, Release

#: how long a database server may take to answer before a turn or a readiness check calls it
#: unreachable: below the time allowed to connect (``db_timeout_s``), which is sized for a slow
#: network or a busy server, not for one that is gone
REACH_TIMEOUT_S = 3.0


class SharedThreadLocks(Protocol):
    """``acquire(thread_id)`` waits until no turn of that thread runs in any process using the
    store; returns the release. (Turns of one process are ordered by ``server/thread_locks.py``.)"""

    async def acquire(self, thread_id: str) -> Release: ...


class NoSharedThreadLocks:
    """The store belongs to one process (SQLite): there is no other process to wait for."""

    async def acquire(self, thread_id: str) -> Release:
        async def release() -> None:
            return None

        return release


@dataclass
class ThreadStore:
    """An open thread store: the graph's checkpointer, the per-thread lock, and what it is."""

    checkpointer: Any
    description: str  # for logs and messages; never a password
    shared_locks: SharedThreadLocks = field(default_factory=NoSharedThreadLocks)
    #: raises ``ThreadStoreError`` naming the database when it does not answer within
    #: ``REACH_TIMEOUT_S`` (database servers; a local file has nothing to reach)
    check_reachable: Callable[[], Awaitable[None]] | None = None


@asynccontextmanager
async def open_thread_store(settings: Settings) -> AsyncIterator[ThreadStore]:
    """The store ``settings`` name: PostgreSQL when ``db_url`` is set, else SQLite at ``db_path``.

    Raises ``ThreadStoreError`` with the reason and the setting to change when it cannot be opened.
    """
    if not settings.db_url:
        async with open_checkpointer(settings.db_path) as saver:
            yield ThreadStore(checkpointer=saver, description=f"SQLite file {settings.db_path}")
        return

    from gpudoc.graph.checkpoint_postgres import connect, connection_problem, describe_url, open_postgres_checkpointer

    url, timeout_s = settings.db_url, settings.db_timeout_s
    async with AsyncExitStack() as stack:
        saver = await stack.enter_async_context(
            open_postgres_checkpointer(url, pool_size=settings.db_pool_size, timeout_s=timeout_s))
        locks = PostgresThreadLocks(lambda: connect(url, timeout_s=timeout_s),
                                    problem=lambda exc: connection_problem(url, exc))
        stack.push_async_callback(locks.aclose)
        bound_s = min(timeout_s, REACH_TIMEOUT_S)

        async def reachable() -> None:
            """A round trip on the lock session within ``bound_s``, or why not, naming the database."""
            try:
                await asyncio.wait_for(locks.ping(), bound_s)
            except ThreadStoreError:
                raise
            except TimeoutError as exc:
                raise ThreadStoreError(connection_problem(url, TimeoutError(f"no answer within {bound_s:g} s"))) from exc
            except (psycopg.Error, OSError) as exc:
                raise ThreadStoreError(connection_problem(url, exc)) from exc

        yield ThreadStore(checkpointer=saver, description=f"PostgreSQL {describe_url(url)}",
                          shared_locks=locks, check_reachable=reachable)
