"""Command-line options shared by several subcommands, and turning them into a source."""

from __future__ import annotations

import argparse
import socket
from collections.abc import Callable
from typing import Any

from gpudoc.cli import CliError
from gpudoc.commands.options import add_option_groups, number_in_range
from gpudoc.config import LLM_GROUP, SOURCE_GROUP, Settings
from gpudoc.tools.sources.base import ClusterSource
from gpudoc.tools.sources.factory import SourceOptions, open_source


def int_in_range(low: int, high: int) -> Callable[[str], int]:
    """An argparse ``type`` that rejects out-of-range integers at parse time, with the range in the message."""
    return number_in_range(int, low, high)


def float_in_range(low: float, high: float) -> Callable[[str], float]:
    """Like ``int_in_range``, for decimal numbers."""
    return number_in_range(float, low, high)


def add_listen_arguments(parser: argparse.ArgumentParser, *, default_port: int) -> None:
    """``--host`` and ``--port`` for the commands that serve HTTP (``sim`` and ``serve``)."""
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int_in_range(0, 65535), default=default_port,
                        help=f"port to listen on; 0 picks a free one (default {default_port})")


def listen(host: str, port: int, *, per_worker: bool = False) -> socket.socket:
    """A bound, listening socket, made before the server starts, so that a busy port or a bad host
    is one clear ``CliError`` rather than a traceback from inside the server's start-up.

    ``per_worker``: the port is shared by worker processes that each listen on a socket of their
    own (``SO_REUSEPORT``; the kernel spreads new connections over them by a hash of their
    addresses). This socket then only holds the port (and learns it, for port 0): it is bound but
    does not listen, so no connection ever waits on it."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise CliError(f"Cannot listen on {host}:{port}: {exc.strerror}. Check --host.") from None
    listener = socket.socket(family, kind, proto)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if per_worker:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        listener.bind(address)
        if not per_worker:
            listener.listen(2048)
    except OSError as exc:
        listener.close()
        raise CliError(
            f"Cannot listen on {host}:{port}: {exc.strerror}. Pick another --port or stop the process using it."
        ) from None
    return listener


def url_host(host: str) -> str:
    """The host as it goes into a URL: IPv6 addresses in brackets."""
    return f"[{host}]" if ":" in host else host


def add_source_arguments(parser: argparse.ArgumentParser) -> None:
    """``--source`` and the simulator options, identical for diagnose, ask, chat, serve and sim."""
    add_option_groups(parser, SOURCE_GROUP)


def source_options(args: argparse.Namespace, settings: Settings, *, realtime: bool = True) -> SourceOptions:
    """The source options of ``settings`` (which already carry the command line's flags)."""
    return settings.source_options(realtime=realtime)


def source_from_args(args: argparse.Namespace, settings: Settings, *, realtime: bool = True) -> ClusterSource:
    """The source the options name; a bad option (unknown scenario, node outside the cluster) is
    a ``CliError`` whose message lists the valid values."""
    try:
        return open_source(source_options(args, settings, realtime=realtime))
    except ValueError as exc:
        raise CliError.from_value_error(exc) from None


def add_llm_arguments(parser: argparse.ArgumentParser) -> None:
    """The language model's flags (endpoint, model, sampling, output budget, thinking)."""
    add_option_groups(parser, LLM_GROUP)
