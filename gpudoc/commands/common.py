"""Command-line options shared by several subcommands, and turning them into a source."""

from __future__ import annotations

import argparse
import socket
from collections.abc import Callable

from gpudoc.cli import CliError
from gpudoc.config import Settings
from gpudoc.tools.sources.base import ClusterSource
from gpudoc.tools.sources.factory import SourceOptions, open_source


#: the simulator's size limits, the same as ``SourceOptions.nodes`` accepts
MIN_NODES, MAX_NODES = 1, 1024


def int_in_range(low: int, high: int) -> Callable[[str], int]:
    """An argparse ``type`` that rejects out-of-range numbers at parse time, with the range in the
    message, rather than letting them reach a model validator (or the OS) further down."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid integer: {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is out of range; use {low}..{high}")
        return value

    return parse


def add_listen_arguments(parser: argparse.ArgumentParser, *, default_port: int) -> None:
    """``--host`` and ``--port`` for the commands that serve HTTP (``sim`` and ``serve``)."""
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int_in_range(0, 65535), default=default_port,
                        help=f"port to listen on; 0 picks a free one (default {default_port})")


def listen(host: str, port: int) -> socket.socket:
    """A bound, listening socket, made before the server starts, so that a busy port or a bad host
    is one clear ``CliError`` rather than a traceback from inside the server's start-up."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise CliError(f"Cannot listen on {host}:{port}: {exc.strerror}. Check --host.") from None
    listener = socket.socket(family, kind, proto)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(address)
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
    group = parser.add_argument_group("cluster source")
    group.add_argument(
        "--source", choices=["sim", "watchdog", "prometheus"], default=None,
        help="where cluster facts come from (default: $GPUDOC_SOURCE or sim)",
    )
    group.add_argument(
        "--scenario", action="append", default=[], metavar="NAME[@node-N[/gpu-M]]",
        help="inject a fault into the simulated cluster; repeatable (see `gpudoc scenarios`)",
    )
    group.add_argument("--seed", type=int, default=42, help="simulator seed (default 42)")
    group.add_argument("--nodes", type=int_in_range(MIN_NODES, MAX_NODES), default=8,
                       help=f"simulated nodes, 8 GPUs each ({MIN_NODES}..{MAX_NODES}, default 8)")
    group.add_argument("--gpu-model", choices=["a100", "h100"], default="a100", help="simulated GPU model")
    group.add_argument(
        "--backend-url", default=None,
        help="GPU Watchdog API base URL for --source watchdog (default: $BACKEND_BASE_URL)",
    )
    group.add_argument(
        "--prometheus-url", default=None,
        help="Prometheus (or Thanos/Mimir/VictoriaMetrics) API base URL for --source prometheus "
        "(default: $PROMETHEUS_URL); credentials come from $PROMETHEUS_BEARER_TOKEN or "
        "$PROMETHEUS_USERNAME/$PROMETHEUS_PASSWORD",
    )
    group.add_argument("--alertmanager-url", default=None,
                       help="Alertmanager base URL, for silences (default: $ALERTMANAGER_URL)")
    group.add_argument("--prometheus-insecure", action="store_true",
                       help="do not verify Prometheus's TLS certificate (default: $PROMETHEUS_TLS_VERIFY)")


def source_options(args: argparse.Namespace, settings: Settings, *, realtime: bool = True) -> SourceOptions:
    return SourceOptions(
        source=args.source or settings.source,
        scenarios=list(args.scenario),
        seed=args.seed,
        nodes=args.nodes,
        gpu_model=args.gpu_model,
        realtime=realtime,
        backend_base_url=args.backend_url or settings.backend_base_url,
        backend_timeout_s=settings.backend_timeout_s,
        **{**settings.prometheus_options(), **prometheus_flags(args)},
    )


def prometheus_flags(args: argparse.Namespace) -> dict[str, object]:
    """The Prometheus options given on the command line, which win over the environment."""
    flags: dict[str, object] = {}
    if getattr(args, "prometheus_url", None):
        flags["prometheus_url"] = args.prometheus_url
    if getattr(args, "alertmanager_url", None):
        flags["alertmanager_url"] = args.alertmanager_url
    if getattr(args, "prometheus_insecure", False):
        flags["prometheus_tls_verify"] = False
    return flags


def source_from_args(args: argparse.Namespace, settings: Settings, *, realtime: bool = True) -> ClusterSource:
    """The source the options name; a bad option (unknown scenario, node outside the cluster) is
    a ``CliError`` whose message lists the valid values."""
    try:
        return open_source(source_options(args, settings, realtime=realtime))
    except ValueError as exc:
        raise CliError.from_value_error(exc) from None


def add_llm_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("language model")
    group.add_argument("--llm-base-url", default=None, help="OpenAI-compatible base URL (default: $LLM_BASE_URL)")
    group.add_argument("--model", default=None, help="model name (default: $LLM_MODEL)")
