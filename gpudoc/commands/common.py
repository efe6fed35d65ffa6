"""Command-line options shared by several subcommands, and turning them into a source."""

from __future__ import annotations

import argparse

from gpudoc.config import Settings
from gpudoc.tools.sources.base import ClusterSource
from gpudoc.tools.sources.factory import SourceOptions, open_source


def add_source_arguments(parser: argparse.ArgumentParser) -> None:
    """``--source`` and the simulator options, identical for diagnose, ask, chat, serve and sim."""
    group = parser.add_argument_group("cluster source")
    group.add_argument(
        "--source", choices=["sim", "watchdog"], default=None,
        help="where cluster facts come from (default: $GPUDOC_SOURCE or sim)",
    )
    group.add_argument(
        "--scenario", action="append", default=[], metavar="NAME[@node-N[/gpu-M]]",
        help="inject a fault into the simulated cluster; repeatable (see `gpudoc scenarios`)",
    )
    group.add_argument("--seed", type=int, default=42, help="simulator seed (default 42)")
    group.add_argument("--nodes", type=int, default=8, help="simulated nodes, 8 GPUs each (default 8)")
    group.add_argument("--gpu-model", choices=["a100", "h100"], default="a100", help="simulated GPU model")
    group.add_argument(
        "--backend-url", default=None,
        help="GPU Watchdog API base URL for --source watchdog (default: $BACKEND_BASE_URL)",
    )


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
    )


def source_from_args(args: argparse.Namespace, settings: Settings, *, realtime: bool = True) -> ClusterSource:
    return open_source(source_options(args, settings, realtime=realtime))


def add_llm_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("language model")
    group.add_argument("--llm-base-url", default=None, help="OpenAI-compatible base URL (default: $LLM_BASE_URL)")
    group.add_argument("--model", default=None, help="model name (default: $LLM_MODEL)")
