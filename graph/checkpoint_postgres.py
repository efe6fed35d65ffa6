"""Conversations in PostgreSQL: LangGraph's own Postgres checkpointer on a pool of connections.

Why PostgreSQL: several ``gpudoc serve`` workers, and several hosts behind a load balancer,
must continue the same conversations; SQLite is one file on one host. Chosen by
``GPUDOC_DB_URL=postgresql://…`` (``graph/thread_store.py``); SQLite stays the default.

What this adds to ``AsyncPostgresSaver`` and why:

- a pool (psycopg_pool) whose connections are checked before use, so a PostgreSQL restart
  costs no turn, and a first connection made directly, so that a wrong URL, password or
  database is one precise message at start-up rather than a pool timeout;
- migrations (``setup()``) under a PostgreSQL advisory lock: replicas starting together would
  otherwise run the same ``CREATE TABLE`` and record the same migration twice;
- as many operations at once as the pool has connections: the saver serialises every
  operation of a process behind one ``asyncio.Lock`` even on a pool (LangGraph issue #7259),
  which would make every turn of a busy worker wait for every other turn's writes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from gpudoc.graph.checkpoint import ThreadStoreError, state_serializer
from gpudoc.graph.pg_locks import advisory_key, hold_advisory_lock

#: advisory lock key that serialises the checkpointer's migrations across processes and hosts
MIGRATION_LOCK = advisory_key("gpudoc:checkpoint-migrations")


def describe_url(url: str) -> str:
    """``postgresql://user@host:port/db`` without the password (for logs and messages)."""
    try:
        parts = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "postgresql://(unparseable URL)"
    user = f"{parts['user']}@" if parts.get("user") else ""
    host = parts.get("host") or "localhost"
    port = f":{parts['port']}" if parts.get("port") else ""
    return f"postgresql://{user}{host}{port}/{parts.get('dbname', '')}"


def connection_problem(url: str, error: BaseException) -> str:
    """One line naming the database (never its password) and what went wrong."""
    reason = " ".join(str(error).split()) or type(error).__name__
    return (f"cannot use the thread database {describe_url(url)} ({reason}). "
            "Check GPUDOC_DB_URL (or --db-url) and that PostgreSQL is running and reachable.")


async def connect(url: str, *, timeout_s: float) -> psycopg.AsyncConnection:
    """One autocommit connection, or ``ThreadStoreError`` with the precise reason."""
    try:
        return await psycopg.AsyncConnection.connect(url, autocommit=True, connect_timeout=max(1, round(timeout_s)))
    except (psycopg.Error, OSError) as exc:
        raise ThreadStoreError(connection_problem(url, exc)) from exc


@asynccontextmanager
async def open_postgres_checkpointer(
    url: str, *, pool_size: int = 10, timeout_s: float = 10.0
) -> AsyncIterator[AsyncPostgresSaver]:
    """An ``AsyncPostgresSaver`` on a pool of at most ``pool_size`` connections, migrated, closed on exit.

    ``timeout_s`` bounds connecting, and the pool's wait for a connection it has to make anew (after
    PostgreSQL restarted). Operations beyond ``pool_size`` at once wait their turn for a free
    connection without a time limit (the saver's lock, a semaphore of the pool's size): on a busy
    server a turn queues rather than fails; admission control bounds how many turns there are.
    Raises ``ThreadStoreError`` when the database cannot be reached or migrated.
    """
    pool = AsyncConnectionPool(
        url, min_size=1, max_size=pool_size, open=False, timeout=timeout_s, name="gpudoc-threads",
        kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
        check=AsyncConnectionPool.check_connection,
    )
    async with await connect(url, timeout_s=timeout_s) as admin:
        try:
            await pool.open(wait=True, timeout=timeout_s)
            saver = AsyncPostgresSaver(pool, serde=state_serializer())
            saver.lock = asyncio.Semaphore(pool_size)  # type: ignore[assignment] - the pool bounds use
            async with hold_advisory_lock(admin, MIGRATION_LOCK):
                await saver.setup()
        except (psycopg.Error, OSError, asyncio.TimeoutError) as exc:
            await pool.close()
            raise ThreadStoreError(connection_problem(url, exc)) from exc
        except BaseException:
            await pool.close()
            raise
    try:
        yield saver
    finally:
        await pool.close()
