"""``gpudoc serve``: LangServe at ``/agent``, the original ``/api/agent/*`` API and the chat page at ``/``.

Why bind and open the source before starting uvicorn: a busy port or a misspelt scenario should
be one clear line and exit code 2, not a traceback from inside the server's start-up.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

import uvicorn

from gpudoc.cli import CliError
from gpudoc.commands.common import add_listen_arguments, listen, url_host
from gpudoc.commands.options import add_option_groups, settings_from_args
from gpudoc.config import AGENT_GROUP, LLM_GROUP, SOURCE_GROUP, THREADS_GROUP
from gpudoc.graph.checkpoint import ThreadStoreError, open_checkpointer
from gpudoc.server.app import create_app
from gpudoc.server.logs import configure_logging
from gpudoc.server.settings import ServerSettings
from gpudoc.tools.sources.factory import open_source


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="serve the agent over HTTP: chat page, LangServe /agent, /api/agent/chat",
        description=(
            "Serve the diagnostic agent: the chat page at /, LangServe at /agent (invoke, batch, "
            "stream, stream_events, playground), the original GPU Watchdog API at /api/agent/chat "
            "and /api/agent/health, and /healthz, /readyz, /metrics. Conversations are kept in "
            "SQLite (--db-path) and survive a restart."
        ),
    )
    add_listen_arguments(parser, default_port=8080)
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default="info",
                        help="log level of the JSON logs on stderr (default info)")
    add_option_groups(parser, THREADS_GROUP, SOURCE_GROUP, LLM_GROUP, AGENT_GROUP, settings_cls=ServerSettings)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args, ServerSettings)
    try:
        options = settings.source_options(realtime=True)
        source = open_source(options)  # fails here, clearly, on a bad scenario or option
    except ValueError as exc:
        raise CliError.from_value_error(exc) from None
    asyncio.run(_check_thread_store(settings.db_path))
    listener = listen(args.host, args.port)
    host, port = listener.getsockname()[:2]
    configure_logging(args.log_level)
    print(
        f"gpudoc serve: chat page on http://{url_host(host)}:{port}/ (LangServe at /agent, playground at "
        f"/agent/playground/); source {options.source}; model {settings.llm_model} at {settings.llm_base_url}; "
        f"threads in {settings.db_path}" + ("; API token required" if settings.token else ""),
        flush=True,
    )
    app = create_app(settings, source=source, owns_source=True)
    server = uvicorn.Server(
        uvicorn.Config(app, log_config=None, access_log=False, timeout_graceful_shutdown=5)
    )
    try:
        server.run(sockets=[listener])
    finally:
        listener.close()
    return 0


async def _check_thread_store(db_path: Path) -> None:
    """Open the thread database once up front: an unwritable path is then one clear line, not a
    traceback from inside the server's start-up."""
    try:
        async with open_checkpointer(db_path):
            pass
    except ThreadStoreError as exc:
        raise CliError(str(exc)) from None
