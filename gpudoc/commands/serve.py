"""``gpudoc serve``: LangServe at ``/agent``, the original ``/api/agent/*`` API and the chat page at ``/``.

Why bind and open the source before starting uvicorn: a busy port or a misspelt scenario should
be one clear line and exit code 2, not a traceback from inside the server's start-up. The thread
store is opened (and migrated) once here too, before any worker starts.

Why a non-loopback address needs the token: the agent reads the whole cluster's state and runs
model calls on the site's GPUs; open without a token, anyone on the network can do both. The
operator can still choose that, out loud (``--insecure-no-auth``).

Shutdown: on SIGTERM the listener closes at once and the turns in flight get
``GPUDOC_SHUTDOWN_GRACE_S`` to finish (streams included), then the server stops (with
``--workers``, each worker does so).
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import socket

import uvicorn

from gpudoc.cli import CliError
from gpudoc.commands.common import add_listen_arguments, listen, url_host
from gpudoc.commands.options import add_option_groups, settings_from_args
from gpudoc.config import AGENT_GROUP, LLM_GROUP, SOURCE_GROUP, THREADS_GROUP
from gpudoc.graph.checkpoint import ThreadStoreError
from gpudoc.graph.thread_store import open_thread_store
from gpudoc.server.app import create_app
from gpudoc.server.langserve_compat import let_streams_finish_on_shutdown
from gpudoc.server.logs import configure_logging
from gpudoc.server.settings import SERVER_GROUP, ServerSettings
from gpudoc.tools.sources.factory import open_source


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="serve the agent over HTTP: chat page, LangServe /agent, /api/agent/chat",
        description=(
            "Serve the diagnostic agent: the chat page at /, LangServe at /agent (invoke, batch, "
            "stream, stream_events, playground), the original GPU Watchdog API at /api/agent/chat "
            "and /api/agent/health, and /healthz, /readyz, /metrics. Conversations are kept in "
            "SQLite (--db-path) or PostgreSQL (--db-url) and survive a restart; --workers N runs N "
            "processes on one port (PostgreSQL only)."
        ),
    )
    add_listen_arguments(parser, default_port=8080)
    parser.add_argument("--insecure-no-auth", action="store_true",
                        help="listen on a non-loopback address without GPUDOC_API_TOKEN (anyone who can reach it "
                             "can ask questions and read the cluster's state); refused otherwise")
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default="info",
                        help="log level of the JSON logs on stderr (default info)")
    add_option_groups(parser, SERVER_GROUP, THREADS_GROUP, SOURCE_GROUP, LLM_GROUP, AGENT_GROUP,
                      settings_cls=ServerSettings)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args, ServerSettings)
    if settings.workers > 1 and not settings.db_url:
        raise CliError(
            f"--workers {settings.workers} needs threads in PostgreSQL: set GPUDOC_DB_URL (or --db-url) to "
            "postgresql://... . The SQLite thread file is for one process; several would write it at once "
            "and a conversation's turns could not be ordered across them. Use --workers 1 with SQLite."
        )
    open_to_network = reachable_from_network(args.host)
    if open_to_network and not settings.token and not args.insecure_no_auth:
        raise CliError(
            f"Refusing to listen on {args.host} without an API token: anyone who can reach it could ask "
            "questions and read the cluster's state. Set GPUDOC_API_TOKEN, listen on 127.0.0.1, or pass "
            "--insecure-no-auth to accept that."
        )
    try:
        options = settings.source_options(realtime=True)
        source = open_source(options)  # fails here, clearly, on a bad scenario or option
    except ValueError as exc:
        raise CliError.from_value_error(exc) from None
    threads = asyncio.run(_check_thread_store(settings))
    listener = listen(args.host, args.port, per_worker=settings.workers > 1)
    host, port = listener.getsockname()[:2]
    configure_logging(args.log_level)
    access = "API token required" if settings.token else (
        "NO API TOKEN: open to anyone who can reach it (--insecure-no-auth)" if open_to_network else "no API token")
    print(
        f"gpudoc serve: chat page on http://{url_host(host)}:{port}/ (LangServe at /agent, playground at "
        f"/agent/playground/); source {options.source}; model {settings.llm_model} at {settings.llm_base_url}; "
        f"threads in {threads}; {access}" + (f"; {settings.workers} workers" if settings.workers > 1 else ""),
        flush=True,
    )
    if settings.workers > 1:
        asyncio.run(source.aclose())  # each worker opens its own
        from gpudoc.server.workers import serve_workers

        try:
            if serve_workers(settings, listener, log_level=args.log_level):
                raise CliError("a worker failed to start; its log above says why")
        finally:
            listener.close()
        return 0
    app = create_app(settings, source=source, owns_source=True, freeze_heap=True)
    let_streams_finish_on_shutdown()
    server = uvicorn.Server(
        uvicorn.Config(app, log_config=None, access_log=False, timeout_graceful_shutdown=settings.shutdown_grace_s)
    )
    try:
        server.run(sockets=[listener])
    finally:
        listener.close()
    return 0


def reachable_from_network(host: str) -> bool:
    """Whether ``host`` names an address other than loopback (0.0.0.0, a LAN address...).

    A host that does not resolve is not: ``listen`` then reports it in its own words.
    """
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror:
        return False
    addresses = {info[4][0].split("%", 1)[0] for info in infos}
    return not all(ipaddress.ip_address(address).is_loopback for address in addresses)


async def _check_thread_store(settings: ServerSettings) -> str:
    """Open the thread store once up front (and migrate it): an unwritable path or an unreachable
    database is then one clear line, not a traceback from inside the server's start-up."""
    try:
        async with open_thread_store(settings) as store:
            return store.description
    except ThreadStoreError as exc:
        raise CliError(str(exc)) from None
