"""``gpudoc scenarios``: the faults the simulator can inject, where they land by default."""

from __future__ import annotations

import argparse

from gpudoc.tools.sim.scenarios import SCENARIOS, ScenarioSpec


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "scenarios", help="list the simulator's fault scenarios",
        description="List the fault scenarios usable with --scenario NAME[@node-N[/gpu-M]].",
    )
    parser.set_defaults(func=run)


def default_place(spec: ScenarioSpec) -> str:
    if spec.default_node is None:
        return "-"
    place = f"node-{spec.default_node}"
    return place if spec.default_gpu is None else f"{place}/gpu-{spec.default_gpu}"


def run(args: argparse.Namespace) -> int:
    name_w = max(len(name) for name in SCENARIOS)
    place_w = max(len("DEFAULT"), *(len(default_place(s)) for s in SCENARIOS.values()))
    print(f"{'SCENARIO':<{name_w}}  {'DEFAULT':<{place_w}}  SUMMARY")
    for name, spec in SCENARIOS.items():
        print(f"{name:<{name_w}}  {default_place(spec):<{place_w}}  {spec.summary}")
    print("\nuse: gpudoc diagnose --scenario NAME[@node-N[/gpu-M]] (repeatable)")
    return 0
