"""``gpudoc sim``: serve the simulated cluster as the GPU Watchdog API and as DCGM-exporter metrics.

Why: the ``watchdog`` source, a GPU Watchdog frontend or a Prometheus can then run against a
realistic cluster with injected faults, on a laptop, with no GPUs.
"""

from __future__ import annotations

import argparse
import asyncio

import uvicorn

from gpudoc.cli import CliError
from gpudoc.commands.common import add_listen_arguments, add_source_arguments, listen, url_host
from gpudoc.commands.options import settings_from_args
from gpudoc.tools.sim.scenarios import parse_scenario
from gpudoc.tools.sim.watchdog_api import create_watchdog_app
from gpudoc.tools.sources.factory import open_source


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "sim",
        help="serve the simulated cluster as the GPU Watchdog backend (+ exporter pages)",
        description=(
            "Serve the simulated cluster as the GPU Watchdog backend (/api/..., /health), with the "
            "exporter pages its collector scrapes (/metrics/gpu/<host>/metrics, /metrics/slurm/metrics) "
            "and DCGM-exporter Prometheus metrics for the whole cluster (/metrics). Point `--source "
            "watchdog --backend-url http://HOST:PORT`, a GPU Watchdog frontend or its backend's "
            "collector at it."
        ),
    )
    add_listen_arguments(parser, default_port=3001)
    add_source_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if getattr(args, "source", "sim") != "sim":
        raise CliError(
            "gpudoc sim serves the simulated cluster, so --source watchdog makes no sense here; "
            "drop --source (or use --source sim) and point watchdog clients at this server."
        )
    try:
        options = settings_from_args(args).source_options(realtime=True).model_copy(update={"source": "sim", "slurm": None})
        source = open_source(options)
        placed = [parse_scenario(spec, options.nodes) for spec in options.scenarios]
    except ValueError as exc:
        raise CliError.from_value_error(exc) from None
    listener = listen(args.host, args.port)
    host, port = listener.getsockname()[:2]
    scenarios = ", ".join(
        placement.name + (f"@{placement.subject}" if placement.subject else "") for placement in placed
    )
    print(
        f"gpudoc sim: serving {options.nodes} simulated {options.gpu_model} nodes (seed "
        f"{options.seed}) as the GPU Watchdog API on http://{url_host(host)}:{port} "
        f"(exporter pages at /metrics/gpu/<host>/metrics and /metrics/slurm/metrics, the whole cluster at "
        f"/metrics); scenarios: {scenarios or 'none (a healthy cluster)'}",
        flush=True,
    )
    server = uvicorn.Server(
        uvicorn.Config(create_watchdog_app(source), log_level="warning", access_log=False)
    )
    try:
        server.run(sockets=[listener])
    finally:
        asyncio.run(source.aclose())
        listener.close()
    return 0
