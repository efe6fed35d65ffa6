"""JavaScript's number rules, where gpudoc answers as GPU Watchdog's Express backend does.

Why: the original backend reads counts from the query string as ``Math.min(Number(raw) ||
default, cap)`` (``/api/agent/logs?lines=``, ``/api/alerts/events/history?limit=``), and both
gpudoc's server and its simulator must answer every such request the way it does. Python's
``float`` is not JavaScript's ``Number``: it accepts ``1_000``, ``inf`` and ``nan`` (all NaN in
JavaScript) and rejects ``0x10`` (16 in JavaScript).
"""

from __future__ import annotations

import math
import re

_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_INFINITY = re.compile(r"[+-]?Infinity")
_RADIX = {"x": 16, "o": 8, "b": 2}
_RADIX_LITERAL = re.compile(r"0(?:[xX][0-9a-fA-F]+|[oO][0-7]+|[bB][01]+)")


def js_number(text: str) -> float:
    """``Number(text)`` for a string: blanks around it ignored, ``""`` is 0, anything else that
    is not a JavaScript number literal is NaN."""
    literal = text.strip()
    if not literal:
        return 0.0
    if _DECIMAL.fullmatch(literal):
        return float(literal)
    if _INFINITY.fullmatch(literal):
        return -math.inf if literal.startswith("-") else math.inf
    if _RADIX_LITERAL.fullmatch(literal):
        return float(int(literal[2:], _RADIX[literal[1].lower()]))
    return math.nan


def express_count(raw: str | None, *, default: int, cap: int) -> int:
    """``Math.min(Number(raw) || default, cap)`` for a query parameter (``None``: not given).

    Zero, NaN and an absent parameter give ``default``; a fraction keeps its whole part (as
    ``Array.prototype.slice`` and SQLite's LIMIT read it); a negative count stays negative, and
    ``-Infinity`` is -1, which every caller reads the same way as any other negative count.
    """
    number = js_number(raw) if raw is not None else math.nan
    if math.isnan(number) or number == 0:
        return default
    capped = min(number, cap)
    return int(capped) if math.isfinite(capped) else -1
