"""What the hardening costs: cleaning cluster text where facts are built, and checking request bodies.

Baselines measured in the same run:

1. **Fact cleaning**: the time to clean the value of every ``ClusterText``/``ClusterName`` field
   that ``current_metrics()`` and ``slurm()`` of a 16-node simulated cluster (with the
   ``hostile-names`` scenario) return, against the time those two calls take in all: the share of
   building the facts that cleaning costs. (The stored values are cleaned again: plain ones take
   the same fast path as on the way in; the few hostile ones are shorter than they arrived.)
2. **Body check**: ``json_body_problem`` (UTF-8, JSON, depth, surrogates, integer range) on a
   one-question request, a request with 50 history messages and a body at the 256 kB limit,
   against ``json.loads`` of the same body (what any JSON route pays anyway).

Usage: ``python benchmarks/hardening_overhead.py [--repeat N]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gpudoc.server.guards import json_body_problem  # noqa: E402
from gpudoc.tools.models.text import clean_cluster_name, clean_cluster_text  # noqa: E402
from gpudoc.tools.sim.source import SimSource  # noqa: E402


def best_of(repeat: int, call) -> float:
    """The fastest of ``repeat`` timed calls, in milliseconds."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - started)
    return best * 1000


CLEANERS = (clean_cluster_text, clean_cluster_name)


def cleaned_values(value: Any) -> list[str]:
    """The values of every ``ClusterText``/``ClusterName`` field in ``value`` (models, lists of them)."""
    found: list[str] = []
    if isinstance(value, list):
        for item in value:
            found += cleaned_values(item)
    elif isinstance(value, BaseModel):
        for name, field in type(value).model_fields.items():
            item = getattr(value, name)
            cleaned = any(getattr(meta, "func", None) in CLEANERS for meta in field.metadata)
            if cleaned and isinstance(item, str):
                found.append(item)
            elif cleaned and isinstance(item, list):
                found += [text for text in item if isinstance(text, str)]
            else:
                found += cleaned_values(item)
    return found


def fact_cleaning(repeat: int) -> tuple[float, float, int]:
    """(building the facts, cleaning their cluster-text fields, how many fields), in ms."""
    source = SimSource.create(nodes=16, scenarios=["hostile-names", "thermal-throttle"], realtime=False)
    loop = asyncio.new_event_loop()
    nodes, slurm = loop.run_until_complete(source.current_metrics()), loop.run_until_complete(source.slurm())
    values = cleaned_values(nodes) + cleaned_values([slurm])

    def facts() -> None:
        loop.run_until_complete(source.current_metrics())
        loop.run_until_complete(source.slurm())

    built = best_of(repeat, facts)
    cleaning = best_of(repeat, lambda: [clean_cluster_text(value) for value in values])
    loop.close()
    return built, cleaning, len(values)


def bodies() -> dict[str, bytes]:
    question = {"type": "human", "content": "Is node-2 running hot? What is running there?"}
    answer = {"type": "ai", "content": "GPU 3 of node-2 reads 89.2 °C; job 10231 of akumar runs there. " * 6}
    one = {"input": {"messages": [question]}, "config": {"configurable": {"thread_id": "t-1"}}}
    history = {"input": {"messages": [question, answer] * 25 + [question]}}
    big = {"input": {"messages": [{"type": "human", "content": "x" * 250_000}]}}
    return {name: json.dumps(body).encode() for name, body in
            (("one question", one), ("50 history messages", history), ("256 kB body", big))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()

    built, cleaning, count = fact_cleaning(max(3, args.repeat // 4))
    print("fact cleaning (16 nodes with hostile-names: current_metrics + slurm, best of runs)")
    print(f"  building the facts (baseline, cleaning included)  {built:8.2f} ms")
    print(f"  cleaning their {count} cluster-text fields          {cleaning:8.2f} ms   share {cleaning / built:5.1%}")
    print("request body check vs json.loads of the same body (best of runs)")
    for name, body in bodies().items():
        parse = best_of(args.repeat, lambda: json.loads(body))
        check = best_of(args.repeat, lambda: json_body_problem(body))
        print(f"  {name:22s} {len(body):7d} B  json.loads {parse:7.3f} ms  check {check:7.3f} ms  "
              f"ratio {check / parse:5.2f}")


if __name__ == "__main__":
    main()
