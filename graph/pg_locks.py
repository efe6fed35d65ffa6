"""PostgreSQL advisory locks: one turn at a time per thread across workers and hosts.

Why a lock across processes: a turn reads its thread's last checkpoint, runs, and writes new
checkpoints after it. Two turns of one thread that run at once on two workers both start from
the same checkpoint, and the one that finishes last makes the other's question and answer
disappear from the thread. Serialising turns inside one process is not enough once a load
balancer spreads a conversation's requests over processes and hosts, so the lock lives where
the threads live.

How: a session-level advisory lock (``pg_try_advisory_lock``) keyed by a 64-bit hash of the
thread id, taken on one connection per process that holds every lock of that process. When a
worker dies, PostgreSQL ends its session and frees its locks: a crash never leaves a thread
locked. A lock that is taken is retried with a short back-off rather than waited for in the
server (a waiting statement would keep a snapshot open, which ``CREATE INDEX CONCURRENTLY`` of a
migration elsewhere waits for). Session locks are re-entrant within a session, so turns of this
process on one thread first queue on an in-process lock. Two thread ids whose hashes collide
merely take turns.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import psycopg

from gpudoc.graph.checkpoint import ThreadStoreError

log = logging.getLogger(__name__)

#: first and longest pause between two tries of a lock that is taken
RETRY_FIRST_S = 0.02
RETRY_MAX_S = 0.5

Release = Callable[[], Awaitable[None]]


def advisory_key(name: str) -> int:
    """A stable signed 64-bit key for ``name`` (PostgreSQL's ``bigint`` advisory lock space)."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)


def thread_key(thread_id: str) -> int:
    return advisory_key(f"gpudoc:thread:{thread_id}")


async def _try_lock(connection: psycopg.AsyncConnection, key: int) -> bool:
    cursor = await connection.execute("SELECT pg_try_advisory_lock(%s)", (key,))
    row = await cursor.fetchone()
    return bool(row and row[0])


async def _wait_for_lock(try_lock: Callable[[], Awaitable[bool]]) -> None:
    pause = RETRY_FIRST_S
    while not await try_lock():
        await asyncio.sleep(pause)
        pause = min(pause * 2, RETRY_MAX_S)


@asynccontextmanager
async def hold_advisory_lock(connection: psycopg.AsyncConnection, key: int) -> AsyncIterator[None]:
    """Hold the session lock ``key`` on ``connection`` (autocommit) for the block."""
    await _wait_for_lock(lambda: _try_lock(connection, key))
    try:
        yield
    finally:
        await connection.execute("SELECT pg_advisory_unlock(%s)", (key,))


def _outcome_seen(done: asyncio.Future[object]) -> None:
    if not done.cancelled():
        done.exception()


class _Queue:
    """This process's turns of one thread: one holds the lock, the others wait here."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0


class PostgresThreadLocks:
    """Per-thread locks shared by every process that uses the same PostgreSQL database.

    ``acquire(thread_id)`` waits until no other turn of that thread runs anywhere and returns
    the coroutine function that releases it. ``graph/thread_store.open_thread_store`` makes one.

    ``problem`` words a database error for a ``ThreadStoreError`` (naming the database, never its
    password): a lock that cannot be taken fails the turn as a store error, like any other.
    """

    def __init__(self, connect: Callable[[], Awaitable[psycopg.AsyncConnection]], *,
                 problem: Callable[[BaseException], str] = lambda exc: f"the thread database failed: {exc}") -> None:
        self._connect = connect
        self._problem = problem
        self._connection: psycopg.AsyncConnection | None = None
        self._generation = 0  # a new session: the locks of the old one are gone
        self._io = asyncio.Lock()  # one statement at a time on the shared connection
        self._queues: dict[int, _Queue] = {}
        self._closed = False

    async def _execute(self, sql: str, *params: int) -> tuple[bool, int]:
        """Run ``sql`` with ``params`` on the lock session, reconnecting once if it was lost; (result, session)."""
        async with self._io:
            for attempt in (1, 2):
                if self._closed:
                    raise ThreadStoreError("the thread store is closed (the server is stopping)")
                if self._connection is None or self._connection.closed:
                    self._connection = await self._connect()
                    self._generation += 1
                try:
                    cursor = await self._connection.execute(sql, params)
                    row = await cursor.fetchone()
                    return bool(row and row[0]), self._generation
                except psycopg.OperationalError as exc:
                    if attempt == 2:
                        raise ThreadStoreError(self._problem(exc)) from exc
                    log.warning("the thread lock session was lost; locks it held are free again; reconnecting")
                    await self._connection.close()
                    self._connection = None
        raise AssertionError("unreachable")

    async def ping(self) -> None:
        """One round trip on the lock session (reconnecting if it was lost): is the database there?

        Why here: this session is the one connection a process always keeps to the database, so
        asking it costs no pool connection and never waits for a free one behind busy turns. The
        statement is never cancelled half-way (a caller bounding the wait leaves it to finish),
        which would leave the session that holds every lock of this process in doubt.
        """
        statement = asyncio.ensure_future(self._execute("SELECT true"))
        statement.add_done_callback(_outcome_seen)  # its error, once no caller waits any more, is no news
        await asyncio.shield(statement)

    async def acquire(self, thread_id: str) -> Release:
        key = thread_key(thread_id)
        queue = self._queues.setdefault(key, _Queue())
        queue.users += 1
        try:
            await queue.lock.acquire()
        except BaseException:
            self._leave(key, queue)
            raise
        session = 0

        async def try_lock() -> bool:
            nonlocal session
            attempt = asyncio.ensure_future(self._execute("SELECT pg_try_advisory_lock(%s)", key))
            try:
                taken, session = await asyncio.shield(attempt)
            except asyncio.CancelledError:
                # The turn was cancelled (its client left) while the statement ran: if it took the
                # lock, give it back, or the thread would stay locked as long as this session.
                await asyncio.shield(self._give_back_if_taken(attempt, key))
                raise
            return taken

        try:
            await _wait_for_lock(try_lock)
        except BaseException:
            queue.lock.release()
            self._leave(key, queue)
            raise

        async def release() -> None:
            try:
                if session == self._generation and not self._closed:  # else the session is gone, and its locks
                    await self._execute("SELECT pg_advisory_unlock(%s)", key)
            except psycopg.Error:
                log.warning("could not release a thread lock; it is freed when the lock session ends",
                            exc_info=True)
            finally:
                queue.lock.release()
                self._leave(key, queue)

        return release

    async def _give_back_if_taken(self, attempt: asyncio.Future[tuple[bool, int]], key: int) -> None:
        try:
            taken, session = await attempt
            if taken and session == self._generation:
                await self._execute("SELECT pg_advisory_unlock(%s)", key)
        except Exception:  # the session is gone, and the lock with it
            log.debug("could not give back a thread lock taken by a cancelled turn", exc_info=True)

    def _leave(self, key: int, queue: _Queue) -> None:
        queue.users -= 1
        if queue.users == 0 and self._queues.get(key) is queue:
            del self._queues[key]

    async def aclose(self) -> None:
        self._closed = True
        async with self._io:
            if self._connection is not None:
                await self._connection.close()
                self._connection = None
