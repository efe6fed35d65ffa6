"""Statements about real tool results, honest and random, for the grounding check's test and benchmark.

An honest statement quotes a value of the evidence (rounded as a writer rounds) with its unit
and its subject; a random one has the same form with a value drawn from the unit's plausible
range. The grounding check must verify the first kind and refuse the second.
"""

from __future__ import annotations

import asyncio
import random
from decimal import Decimal

from gpudoc.graph.grounding import Quantity, evidence_quantities
from gpudoc.graph.prompts import GPU_LIMITS
from gpudoc.tools.cluster_tools import build_cluster_tools
from gpudoc.tools.sim.source import SimSource

#: unit class -> (how it is written, plausible range, decimals a writer uses)
UNITS = {
    "temperature": ("°C", (20.0, 100.0), (0, 1)),
    "power": ("W", (50.0, 700.0), (0, 1)),
    "percent": ("%", (0.0, 100.0), (0, 1)),
    "memory": ("MiB", (0.0, 81920.0), (0,)),
    "frequency": ("MHz", (200.0, 2000.0), (0,)),
    "duration": ("min", (0.0, 240.0), (0,)),
}
LABELS = {"temperature": "temperature", "power": "power draw", "percent": "utilisation", "memory": "memory used",
          "frequency": "SM clock", "duration": "waiting"}
CALLS = [("get_node_details", {"node_id": "node-2"}), ("get_gpu_history", {"node_id": "node-2"}),
         ("get_current_metrics", {}), ("get_cluster_status", {}), ("diagnose_cluster", {}),
         ("get_slurm_jobs", {"state": "PENDING"})]


def tool_results() -> list[str]:
    """The results of six tool calls on a simulated cluster with a hot GPU, a lost GPU and a queue."""
    source = SimSource.create(seed=42, nodes=8, realtime=False,
                              scenarios=["thermal-throttle@node-2/gpu-3", "xid79-fell-off-bus@node-3/gpu-5",
                                         "pending-on-drained"])
    tools = {tool.name: tool for tool in build_cluster_tools(source)}

    async def run() -> list[str]:
        return [await tools[name].ainvoke(arguments) for name, arguments in CALLS]

    return asyncio.run(run())


def evidence_texts() -> list[str]:
    return [*tool_results(), GPU_LIMITS]


def _subject_phrase(quantity: Quantity) -> str:
    if quantity.job:
        return f"job {quantity.job}"
    if quantity.node and quantity.gpu is not None:
        return f"GPU {quantity.gpu} of {quantity.node}"
    return quantity.node or "the cluster"


def _quotable(texts: list[str]) -> list[Quantity]:
    return [q for text in texts for q in evidence_quantities(text) if q.unit in UNITS and q.scale == 1.0]


def _written(value: float, decimals: int) -> str:
    return f"{value:.{decimals}f}"


def _label(quantity: Quantity) -> str:
    return f"{LABELS[quantity.unit]} limit" if quantity.limit else LABELS[quantity.unit]


def honest_statements(texts: list[str], count: int, rng: random.Random) -> list[str]:
    quotable = _quotable(texts)
    statements = []
    for _ in range(count):
        quantity = rng.choice(quotable)
        unit, _, decimals = UNITS[quantity.unit]
        value = _written(float(quantity.value), rng.choice(decimals))
        statements.append(f"{_subject_phrase(quantity)}: {_label(quantity)} {value} {unit}.")
    return statements


def random_statements(texts: list[str], count: int, rng: random.Random) -> list[str]:
    """The honest statements' form (unit, subject, precision) with values drawn from the unit's range."""
    quotable = _quotable(texts)
    statements = []
    for _ in range(count):
        quantity = rng.choice(quotable)
        unit, (low, high), decimals = UNITS[quantity.unit]
        value = _written(rng.uniform(low, high), rng.choice(decimals))
        statements.append(f"{_subject_phrase(quantity)}: {_label(quantity)} {value} {unit}.")
    return statements


def bare_numbers() -> list[str]:
    """The numbers the old textual check was measured with: integers 0-100 and values 30.0-89.9, no unit."""
    return [str(n) for n in range(101)] + [str(Decimal(n) / 10) for n in range(300, 900)]
