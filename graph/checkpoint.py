"""Where conversations are kept: a LangGraph checkpointer on SQLite.

Why SQLite by default: a thread must survive a restart of ``gpudoc chat`` or the server with
nothing to install or run; one file at ``Settings.db_path`` (``GPUDOC_DB_PATH``) does that.
"""

from __future__ import annotations

import sqlite3
import uuid
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import AsyncIterator

import aiosqlite
from langgraph.checkpoint.base import BaseCheckpointSaver, empty_checkpoint
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from gpudoc.graph.state import CHECKPOINT_TYPES


def state_serializer() -> JsonPlusSerializer:
    """The checkpoint serializer, allowed to restore the typed values of the agent's state."""
    return JsonPlusSerializer(allowed_msgpack_modules=[(t.__module__, t.__name__) for t in CHECKPOINT_TYPES])


class ThreadStoreError(OSError):
    """The thread store cannot be used: a SQLite file that cannot be created, opened or written (a
    read-only folder, a file that is not SQLite), a PostgreSQL server that is unreachable or refuses
    us, a store that is closing, or a probe write that did not come back."""


@asynccontextmanager
async def open_checkpointer(path: str | Path) -> AsyncIterator[AsyncSqliteSaver]:
    """An ``AsyncSqliteSaver`` on ``path`` (created with its folder if missing), closed on exit.

    Raises ``ThreadStoreError`` naming the file and the variable to change when it cannot be opened.
    """
    target = Path(path).expanduser()
    async with AsyncExitStack() as stack:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            # Open it once synchronously first: when aiosqlite's own connect fails, its worker
            # thread outlives the event loop and prints a second traceback at exit.
            sqlite3.connect(target).close()
            connection = await stack.enter_async_context(aiosqlite.connect(str(target)))
            saver = AsyncSqliteSaver(connection, serde=state_serializer())
            await saver.setup()
        except (OSError, sqlite3.Error) as exc:
            raise ThreadStoreError(
                f"cannot open the thread database {target}: {exc}. "
                "Point GPUDOC_DB_PATH (or --db-path / --db) at a writable file."
            ) from exc
        yield saver


#: the threads the store probe writes to are this plus ``:`` and a random part (each probe its own:
#: several workers and replicas probe one database at once); client thread ids may contain ':',
#: so the name is one no conversation would choose, and the probe deletes its thread at once
PROBE_THREAD_ID = "gpudoc:store-probe"


def is_probe_thread(thread_id: str) -> bool:
    return thread_id == PROBE_THREAD_ID or thread_id.startswith(PROBE_THREAD_ID + ":")


async def probe_store(checkpointer: BaseCheckpointSaver) -> None:
    """Write a checkpoint to the store, read it back and delete it, through the checkpointer API.

    Why a write and not a ping: a store that answers but cannot write (a read-only or full disk,
    lost permissions, a database corrupted under a page the write needs) fails every turn while
    a read would pass. Through ``aput``/``aget_tuple``/``adelete_thread`` the probe works for any
    LangGraph checkpointer (SQLite here, PostgreSQL or another elsewhere). Raises
    ``ThreadStoreError`` naming the backend's error.
    """
    thread_id = f"{PROBE_THREAD_ID}:{uuid.uuid4().hex}"
    config = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
    try:
        saved = await checkpointer.aput(config, empty_checkpoint(), {"source": "input", "step": -1, "parents": {}}, {})
        found = await checkpointer.aget_tuple(saved)
        await checkpointer.adelete_thread(thread_id)
    except Exception as exc:  # any backend's error type: sqlite3, psycopg, OSError...
        raise ThreadStoreError(f"the conversation store cannot be written: {type(exc).__name__}: {exc}") from exc
    if found is None:
        raise ThreadStoreError("the conversation store accepted a write but did not return it")
