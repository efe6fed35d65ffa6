"""Grounding: which numbers in an answer appear in none of the turn's evidence.

Why: the rule "never state a number that is not in a tool result" is only worth something if it
is checked. The check is deliberately cheap and textual: the numbers of the answer against the
numbers of the tool results (and the reference limits and the question itself), tolerating the
rounding a writer does (88.63 may be quoted as 88.6 or 89) and a ratio quoted as a percentage.
Identifiers (node-3, gpu-5, A100, x16), list ordinals, dates and clock times are not quantities
and are skipped.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Iterable

# Things that contain digits but are not quantities; removed before numbers are read.
_NOT_QUANTITIES = [
    re.compile(r"\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?"),  # dates
    re.compile(r"\b\d{1,2}:\d{2}(?::\d{2})?(?!\d)"),  # clock times, also "11:53Z"
    re.compile(r"(?m)^\s*(?:[-*]\s+)?\d{1,2}[.)](?=\s)"),  # list ordinals "1." "2)"
    re.compile(r"[A-Za-z_][A-Za-z_]*[-_/#]?\d+(?:[-_/]\d+)*", re.ASCII),  # ids: node-3, gpu_5, A100, x16
]
_NUMBER = re.compile(r"(?<![\w.])-?\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\w])|(?<![\w.])-?\d+(?:\.\d+)?")
_PERCENT_AFTER = re.compile(r"^\s?%")


def _strip_non_quantities(text: str) -> str:
    for pattern in _NOT_QUANTITIES:
        text = pattern.sub(" ", text)
    return text


def numbers_in(text: str, *, skip_identifiers: bool = True) -> list[tuple[str, Decimal, bool]]:
    """(as written, value, followed by %) for each number in ``text``."""
    if skip_identifiers:
        text = _strip_non_quantities(text)
    found: list[tuple[str, Decimal, bool]] = []
    for match in _NUMBER.finditer(text):
        written = match.group(0)
        try:
            value = Decimal(written.replace(",", ""))
        except InvalidOperation:
            continue
        found.append((written, value, bool(_PERCENT_AFTER.match(text[match.end():]))))
    return found


def _decimals(written: str) -> int:
    return len(written.split(".", 1)[1]) if "." in written else 0


def _matches(written: str, value: Decimal, percent: bool, evidence: set[Decimal]) -> bool:
    tolerance = Decimal(5) / (Decimal(10) ** (_decimals(written) + 1))  # half a unit in the last place
    candidates = [(value, tolerance)]
    if percent:
        candidates.append((value / 100, tolerance / 100))  # 85% quoted from a 0.85 ratio
    return any(abs(known - candidate) <= allowed for candidate, allowed in candidates for known in evidence)


def evidence_numbers(texts: Iterable[str]) -> set[Decimal]:
    """Every number written in the evidence texts (identifiers included: ``gpu-3`` holds a 3)."""
    values: set[Decimal] = set()
    for text in texts:
        values.update(value for _, value, _ in numbers_in(text, skip_identifiers=False))
        values.update(value for _, value, _ in numbers_in(text))
    return values


def unverified_numbers(answer: str, evidence_texts: Iterable[str]) -> list[str]:
    """Numbers of ``answer`` (as written, in order, unique) that no evidence text supports."""
    evidence = evidence_numbers(evidence_texts)
    missing: list[str] = []
    for written, value, percent in numbers_in(answer):
        if not _matches(written, value, percent, evidence) and written not in missing:
            missing.append(written)
    return missing


def check_answer(answer: str, evidence_texts: Iterable[str]) -> "GroundingReport":
    from gpudoc.graph.contracts import GroundingReport, StatedNumber

    texts = list(evidence_texts)
    missing = unverified_numbers(answer, texts)
    checked = len({written for written, _, _ in numbers_in(answer)})
    return GroundingReport(checked=checked, verified=checked - len(missing),
                           unverified=[StatedNumber(text=m) for m in missing])
