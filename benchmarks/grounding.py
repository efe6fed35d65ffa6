"""How often the grounding check verifies random numbers, next to how often it verifies honest ones.

Evidence: six tool results on a simulated cluster (a hot GPU, a lost GPU, a pending queue) and the
GPU limits. Statements: honest ones quote an evidence value (rounded as a writer rounds) with its
unit and subject; random ones have the same form with a value drawn from the unit's plausible
range; bare numbers are integers 0-100 and values 30.0-89.9 with no unit. The baseline, measured
in the same run, is a textual check: "the number appears in some tool result within the precision
it was written with".

    python benchmarks/grounding.py [--statements 2000] [--seed 7]
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gpudoc.graph.grounding import unverified_numbers  # noqa: E402
from tests.grounding_statements import (  # noqa: E402
    bare_numbers,
    evidence_texts,
    honest_statements,
    random_statements,
)

_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?")


def textual_check(statement: str, texts: list[str]) -> bool:
    """The baseline: every number of the statement appears in the evidence within its stated precision."""
    known = {Decimal(n) for text in texts for n in _NUMBER.findall(text)}
    for written in _NUMBER.findall(re.sub(r"(?:node|GPU|gpu)[- ]\d+", " ", statement)):
        decimals = len(written.split(".", 1)[1]) if "." in written else 0
        allowed = Decimal(5) / (Decimal(10) ** (decimals + 1))
        if not any(abs(value - Decimal(written)) <= allowed for value in known):
            return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--statements", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    texts = evidence_texts()
    rng = random.Random(args.seed)
    sets = {
        "honest statements": honest_statements(texts, args.statements, rng),
        "random statements": random_statements(texts, args.statements, rng),
        "bare numbers": bare_numbers(),
    }
    print(f"evidence: {len(texts)} texts, {sum(len(t) for t in texts)} characters")
    print(f"{'statements':<20} {'count':>6} {'textual check':>14} {'gpudoc check':>13} {'ms/statement':>13}")
    for name, statements in sets.items():
        baseline = sum(textual_check(s, texts) for s in statements) / len(statements)
        started = time.perf_counter()
        passed = sum(not unverified_numbers(s, texts) for s in statements) / len(statements)
        elapsed = (time.perf_counter() - started) * 1000 / len(statements)
        print(f"{name:<20} {len(statements):>6} {baseline:>13.1%} {passed:>12.1%} {elapsed:>13.2f}")
    print("goal: random statements and bare numbers verified under 5 %, honest statements 100 %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
