"""Where conversations are kept: a LangGraph checkpointer on SQLite.

Why SQLite by default: a thread must survive a restart of ``gpudoc chat`` or the server with
nothing to install or run; one file at ``Settings.db_path`` (``GPUDOC_DB_PATH``) does that.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator

from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver


@asynccontextmanager
async def open_checkpointer(path: str | Path) -> AsyncIterator[AsyncSqliteSaver]:
    """An ``AsyncSqliteSaver`` on ``path`` (created with its folder if missing), closed on exit."""
    target = Path(path).expanduser()
    target.parent.mkdir(parents=True, exist_ok=True)
    async with AsyncSqliteSaver.from_conn_string(str(target)) as saver:
        await saver.setup()
        yield saver
