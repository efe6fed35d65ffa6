"""Formatting rules shared by every tool output: compact JSON, rounding, times, free text, budget.

Why one place: a tool result goes into a small model's context on every round, so each byte
costs latency and attention. All tools therefore agree on the same conventions:

* JSON without spaces (``{"a":1,"b":2}``), non-ASCII kept as is;
* 1 decimal for °C, W and %, integers for MiB and MHz;
* times as ``2025-01-31T12:01:00Z`` (UTC) or ``12:01`` inside a documented range;
* user-written free text (job names, node reasons, rule names) cleaned of control characters
  and cut to ``FREE_TEXT_MAX_CHARS`` so it stays data in a labelled field;
* every result at most ``OUTPUT_BUDGET_CHARS`` characters, with a note saying how to narrow
  the query when items had to be left out; the source's notes about the facts
  (``sources.notes``) are part of that budget, so lists shrink to leave them room.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from typing import Any, Callable

from gpudoc.tools.sources.notes import current_notes

#: Upper bound on the characters of any tool result, on any cluster size.
OUTPUT_BUDGET_CHARS = 6000

#: Longest user-written text (job name, node reason) copied into a tool result.
FREE_TEXT_MAX_CHARS = 80

_CONTROL_OR_SPACE_RUN = re.compile(r"[\s\x00-\x1f\x7f]+")


def dumps(payload: Any) -> str:
    """The compact JSON every tool returns."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def r1(value: float | None) -> float | None:
    """°C, W and % to one decimal (``None`` stays ``None``)."""
    return None if value is None else round(float(value), 1) + 0.0  # + 0.0 turns -0.0 into 0.0


def rint(value: float | None) -> int | None:
    """MiB and MHz as integers (``None`` stays ``None``)."""
    return None if value is None else int(round(float(value)))


def iso(moment: datetime | None) -> str | None:
    """A UTC timestamp to the second: ``2025-01-31T12:01:00Z``."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def hhmm(moment: datetime) -> str:
    """A UTC clock time ``12:01``, used inside a result whose range gives the date."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%H:%M")


def free_text(text: str | None, limit: int = FREE_TEXT_MAX_CHARS) -> str | None:
    """User-written text made safe to embed as a value: one line, bounded length."""
    if text is None:
        return None
    cleaned = _CONTROL_OR_SPACE_RUN.sub(" ", text).strip()
    if len(cleaned) > limit:
        cleaned = cleaned[: limit - 1].rstrip() + "…"
    return cleaned


def without_none(mapping: dict[str, Any]) -> dict[str, Any]:
    """Drop keys whose value is ``None``: absent facts are omitted, never shown as zero."""
    return {key: value for key, value in mapping.items() if value is not None}


def payload_budget() -> int:
    """What a tool's own payload may take: the budget less the room its source notes will need.

    A tool renders after its source calls, so the notes they made are known by then.
    """
    collector = current_notes()
    if collector is None or not collector:
        return OUTPUT_BUDGET_CHARS
    return OUTPUT_BUDGET_CHARS - len(dumps({NOTES_KEY: collector.lines}))


#: the key under which a tool result carries its source's notes
NOTES_KEY = "source_notes"


def fit_to_budget(
    build: Callable[[int], dict[str, Any]], total: int, budget: int | None = None
) -> dict[str, Any]:
    """The payload showing as many of ``total`` prioritised items as fit in ``budget`` characters
    (default: ``payload_budget()``).

    ``build(k)`` returns the payload with the first ``k`` items (and, when ``k < total``, the
    note that says what was left out and how to narrow). Sizes grow with ``k``, so a binary
    search finds the largest ``k`` in a handful of serialisations.
    """
    budget = payload_budget() if budget is None else budget
    full = build(total)
    if len(dumps(full)) <= budget or total == 0:
        return full
    low, high = 0, total - 1
    while low < high:
        middle = (low + high + 1) // 2
        if len(dumps(build(middle))) <= budget:
            low = middle
        else:
            high = middle - 1
    return build(low)


def fit_list(
    header: dict[str, Any],
    key: str,
    items: list[Any],
    left_out_note: Callable[[int], str],
    budget: int | None = None,
) -> dict[str, Any]:
    """``header`` plus as many of the prioritised ``items`` under ``key`` as fit in ``budget``.

    When some are left out, ``truncated`` carries ``left_out_note(shown)``: what is missing and
    how to narrow the query, so the model asks a better question instead of guessing.
    """

    def build(shown: int) -> dict[str, Any]:
        if shown == len(items):
            return {**header, key: items}
        return {**header, "truncated": left_out_note(shown), key: items[:shown]}

    return fit_to_budget(build, len(items), budget)
