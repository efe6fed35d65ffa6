"""``gpudoc sim``: serve the simulated cluster as the GPU Watchdog API and as per-node exporters.

Why: the ``watchdog`` source, a GPU Watchdog frontend or a Prometheus can then run against a
realistic cluster with injected faults, on a laptop, with no GPUs. ``--prometheus-dir`` writes
the scrape targets and the past hour for a Prometheus to start from (``prometheus_feed``).
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

import uvicorn

from gpudoc.cli import CliError
from gpudoc.commands.common import add_listen_arguments, add_source_arguments, listen, url_host
from gpudoc.commands.options import settings_from_args
from gpudoc.tools.sim.dcgm_exporter import DcgmExporter
from gpudoc.tools.sim.dcgm_fields import COUNTER_PROFILES, load_counters
from gpudoc.tools.sim.prometheus_feed import write_prometheus_dir
from gpudoc.tools.sim.scenarios import parse_scenario
from gpudoc.tools.sim.source import SimSource
from gpudoc.tools.sim.watchdog_api import create_watchdog_app
from gpudoc.tools.sources.factory import open_source


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "sim",
        help="serve the simulated cluster as the GPU Watchdog backend (+ exporter pages)",
        description=(
            "Serve the simulated cluster as the GPU Watchdog backend (/api/..., /health), with the "
            "exporter pages its collector and a Prometheus scrape (dcgm-exporter at "
            "/metrics/gpu/<host>/metrics, node_exporter at /metrics/node/<host>/metrics, "
            "/metrics/slurm/metrics) and DCGM-exporter metrics for the whole cluster (/metrics). Point "
            "`--source watchdog --backend-url http://HOST:PORT`, a GPU Watchdog frontend, its backend's "
            "collector or a Prometheus (see --prometheus-dir) at it."
        ),
    )
    add_listen_arguments(parser, default_port=3001)
    add_source_arguments(parser)
    group = parser.add_argument_group("exporters")
    group.add_argument(
        "--dcgm-counters", default="gpudoc", metavar="default|gpudoc|FILE.csv",
        help="fields the simulated dcgm-exporter exports: NVIDIA's defaults, gpudoc's counters file "
        "(infra/dcgm-exporter/gpudoc-counters.csv, the default) or any dcgm-exporter counters CSV",
    )
    group.add_argument(
        "--prometheus-dir", type=Path, default=None, metavar="DIR",
        help="write file_sd scrape targets (dcgm-targets.json, node-targets.json) and the exporters' "
        "past as OpenMetrics (history.om, for `promtool tsdb create-blocks-from openmetrics`) into DIR",
    )
    group.add_argument("--history-minutes", type=int, default=70,
                       help="how much past to write with --prometheus-dir (default 70; 0: the targets only)")
    group.add_argument("--history-step", type=int, default=60, metavar="SECONDS",
                       help="one past scrape every SECONDS in the written history (default 60, at least 15)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if getattr(args, "source", "sim") not in (None, "sim"):
        raise CliError(
            f"gpudoc sim serves the simulated cluster, so --source {args.source} makes no sense here; "
            "drop --source (or use --source sim) and point clients or a Prometheus at this server."
        )
    if args.history_minutes < 0 or args.history_step < 15:
        raise CliError("--history-minutes must be 0 (targets only) or more, --history-step at least 15 seconds.")
    try:
        options = settings_from_args(args).source_options(realtime=True).model_copy(update={"source": "sim", "slurm": None})
        source = open_source(options)
        placed = [parse_scenario(spec, options.nodes) for spec in options.scenarios]
        counters, unsupported = load_counters(args.dcgm_counters)
    except ValueError as exc:
        raise CliError.from_value_error(exc) from None
    assert isinstance(source, SimSource)
    exporter = DcgmExporter(counters)
    listener = listen(args.host, args.port)
    host, port = listener.getsockname()[:2]
    scenarios = ", ".join(
        placement.name + (f"@{placement.subject}" if placement.subject else "") for placement in placed
    )
    if unsupported:
        print(f"gpudoc sim: not simulated, left out like fields a GPU does not support: {', '.join(unsupported)}")
    if args.prometheus_dir is not None:
        paths = write_prometheus_dir(source, exporter, f"{url_host(host)}:{port}", args.prometheus_dir,
                                     args.history_minutes, args.history_step)
        print(f"gpudoc sim: wrote scrape targets and {args.history_minutes} min of history to "
              f"{', '.join(str(p) for p in paths.values())}", flush=True)
    counters_name = args.dcgm_counters if args.dcgm_counters in COUNTER_PROFILES else Path(args.dcgm_counters).name
    print(
        f"gpudoc sim: serving {options.nodes} simulated {options.gpu_model} nodes (seed "
        f"{options.seed}) as the GPU Watchdog API on http://{url_host(host)}:{port} "
        f"(exporter pages at /metrics/gpu/<host>/metrics with {counters_name} dcgm counters, "
        f"/metrics/node/<host>/metrics and /metrics/slurm/metrics, the whole cluster at /metrics); "
        f"clock anchored at {source.clock.anchor.isoformat()}; "
        f"scenarios: {scenarios or 'none (a healthy cluster)'}",
        flush=True,
    )
    server = uvicorn.Server(
        uvicorn.Config(create_watchdog_app(source, exporter), log_level="warning", access_log=False)
    )
    try:
        server.run(sockets=[listener])
    finally:
        asyncio.run(source.aclose())
        listener.close()
    return 0
