"""``gpudoc chat``: an interactive conversation with the agent on one thread.

Why a thread in SQLite: follow-up questions ("and its memory temperature?") need the earlier
turns, and ``--thread ID`` resumes a conversation after the terminal was closed. ``/new`` starts
a fresh thread, ``/exit`` (or Ctrl-D) leaves.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import sys
import uuid
from pathlib import Path

from gpudoc.cli import CliError
from gpudoc.commands.ask import TerminalRenderer, add_agent_arguments, prepare_model, settings_from_args
from gpudoc.commands.common import source_from_args
from gpudoc.commands.options import add_option_groups
from gpudoc.config import THREADS_GROUP
from gpudoc.graph.agent import build_agent
from gpudoc.graph.checkpoint import ThreadStoreError, open_checkpointer
from gpudoc.graph.contracts import ErrorEvent
from gpudoc.graph.llm import build_chat_model
from gpudoc.graph.runner import stream_turn

HELP = "Ask about the cluster. /new starts a new conversation, /exit leaves."
HISTORY_FILE = Path("~/.gpudoc_history").expanduser()


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "chat", help="an interactive conversation with the agent",
        description="Chat with the diagnostic agent. The conversation is kept in SQLite ($GPUDOC_DB_PATH).",
    )
    add_agent_arguments(parser)
    add_option_groups(parser, THREADS_GROUP)
    parser.add_argument("--db", dest="db_path", type=Path, default=argparse.SUPPRESS, help="alias of --db-path")
    parser.add_argument("--thread", default=None, help="continue this thread id (default: a new thread)")
    parser.set_defaults(func=run)


def _read_line(prompt: str) -> str | None:
    try:
        return input(prompt)
    except EOFError:
        return None


def _enable_readline() -> None:
    """Line editing and history when stdin is a terminal; nothing to do otherwise."""
    if not sys.stdin.isatty():
        return
    try:
        import readline
    except ImportError:  # Windows without pyreadline: plain input() still works
        return
    with contextlib.suppress(OSError):
        readline.read_history_file(HISTORY_FILE)
    atexit.register(lambda: readline.write_history_file(HISTORY_FILE))


def run(args: argparse.Namespace) -> int:
    _enable_readline()
    with asyncio.Runner() as runner:
        return runner.run(_chat(args))


async def _chat(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    source = source_from_args(args, settings, realtime=True)  # a bad option fails before the LLM probe
    db_path = settings.db_path
    thread = args.thread or uuid.uuid4().hex
    renderer = TerminalRenderer(sys.stdout, show_thinking=settings.llm_enable_thinking)
    try:
        settings = await prepare_model(settings, notice=sys.stderr)
        async with open_checkpointer(db_path) as checkpointer:
            agent = build_agent(source=source, llm=build_chat_model(settings), checkpointer=checkpointer,
                                settings=settings)
            print(f"gpudoc chat - thread {thread} ({db_path}). {HELP}")
            while True:
                line = await asyncio.to_thread(_read_line, "\nyou> ")
                if line is None or line.strip() in ("/exit", "/quit"):
                    return 0
                question = line.strip()
                if not question:
                    continue
                if question == "/new":
                    thread = uuid.uuid4().hex
                    print(f"new thread {thread}")
                    continue
                if question.startswith("/"):
                    print(HELP)
                    continue
                async for event in stream_turn(agent, question, thread_id=thread):
                    renderer.show(event)
                    if isinstance(event, ErrorEvent):
                        print(f"gpudoc: error: {event.message}", file=sys.stderr)
    except ThreadStoreError as exc:
        raise CliError(str(exc)) from None
    finally:
        await source.aclose()
