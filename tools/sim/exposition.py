"""The Prometheus text exposition format (0.0.4) as exporters write it: families, labels, values.

Why a module of its own: every exporter the simulator imitates (dcgm-exporter, node_exporter,
prometheus-slurm-exporter) and the history written for backfilling write the same lines, label
escaping is easy to get subtly wrong, and parsers stricter than Prometheus read them: GPU
Watchdog's collector takes ``name value`` for a sample without labels (never ``name{} value``).
A sample's value is either a number (written in plain decimals) or text an exporter already
formatted its own way (DCGM's ``%f``, client_golang's ``2.5e+10``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from decimal import Decimal

#: what exporters answer with, and what Prometheus expects from a scrape
PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Sample = tuple[dict[str, str], "float | int | bool | str"]


def family(name: str, kind: str, help_text: str, samples: Iterable[Sample]) -> list[str]:
    """``# HELP``, ``# TYPE`` and one line per sample; nothing at all without samples."""
    body = [f"{name}{_labels(labels)} {value if isinstance(value, str) else format_value(value)}"
            for labels, value in samples]
    if not body:
        return []
    return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", *body]


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    return "{" + format_labels(labels) + "}"


def format_labels(labels: dict[str, str]) -> str:
    return ",".join(f'{key}="{escape(value)}"' for key, value in labels.items())


def escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def format_value(value: float | int | bool) -> str:
    """Plain decimals: integers without a point, other numbers as Python writes them."""
    if isinstance(value, bool):
        return "1" if value else "0"
    number = float(value)
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "+Inf" if number > 0 else "-Inf"
    if number.is_integer() and abs(number) < 2**53:
        return str(int(number))
    return repr(number)


def go_float(value: float) -> str:
    """A number as client_golang writes it (Go's ``strconv.FormatFloat(v, 'g', -1, 64)``): the
    shortest digits, in exponent form from 1e+06 up and below 1e-04 (``2.5e+10``, ``1e-05``)."""
    number = float(value)
    if math.isnan(number) or math.isinf(number):
        return format_value(number)
    if number == 0:
        return "0"
    _, digits, exponent = Decimal(repr(abs(number))).normalize().as_tuple()
    text = "".join(map(str, digits))
    exp = len(text) + int(exponent) - 1
    prefix = "-" if number < 0 else ""
    if exp < -4 or exp >= 6:
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        return f"{prefix}{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if exp < 0:
        return f"{prefix}0.{'0' * (-exp - 1)}{text}"
    if len(text) <= exp + 1:
        return prefix + text + "0" * (exp + 1 - len(text))
    return f"{prefix}{text[:exp + 1]}.{text[exp + 1:]}"


def join_lines(lines: Iterable[str]) -> str:
    return "".join(line + "\n" for line in lines)
