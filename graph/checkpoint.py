"""Where conversations are kept: a LangGraph checkpointer on SQLite.

Why SQLite by default: a thread must survive a restart of ``gpudoc chat`` or the server with
nothing to install or run; one file at ``Settings.db_path`` (``GPUDOC_DB_PATH``) does that.
"""

from __future__ import annotations

import sqlite3
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import AsyncIterator

import aiosqlite
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from gpudoc.graph.state import CHECKPOINT_TYPES


def state_serializer() -> JsonPlusSerializer:
    """The checkpoint serializer, allowed to restore the typed values of the agent's state."""
    return JsonPlusSerializer(allowed_msgpack_modules=[(t.__module__, t.__name__) for t in CHECKPOINT_TYPES])


class ThreadStoreError(OSError):
    """The thread database cannot be created or opened (a read-only folder, a file that is not SQLite)."""


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
