"""Prometheus text exposition format 0.0.4: one metric family as lines.

Why a module of its own: every exporter the simulator imitates (``slurm_exporter`` here) writes
the same format, and parsers that are stricter than Prometheus read it: GPU Watchdog's collector
takes ``name value`` for a sample without labels (never ``name{} value``) and plain decimals.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

#: the content type exporters answer with
PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Sample = tuple[dict[str, str], float | int | bool]


def family(name: str, kind: str, help_text: str, samples: Iterable[Sample]) -> list[str]:
    """``# HELP``, ``# TYPE`` and one line per sample; nothing at all without samples."""
    body = [f"{name}{_labels(labels)} {format_value(value)}" for labels, value in samples]
    if not body:
        return []
    return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", *body]


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{key}="{escape(value)}"' for key, value in labels.items()) + "}"


def escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def format_value(value: float | int | bool) -> str:
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
