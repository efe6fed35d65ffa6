"""Slurm's compact notations, read the way Slurm writes them: hostlists, GRES and TRES strings,
wait statuses and the ``{"set", "infinite", "number"}`` numbers of OpenAPI v0.0.39 and newer.

Why a module of its own: slurmrestd and the CLI hand these over as opaque strings in every
OpenAPI version (``nodes: "node-[1-2]"``, ``gres_used: "gpu:a100:2(IDX:0-1)"``,
``tres_per_node: "gres/gpu:8"``), and GPU ↔ job mapping depends on reading them exactly.
Every function returns ``None`` (or an empty result) for text it cannot read rather than
guessing a number.
"""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime
from typing import Any

#: largest hostlist expansion accepted (a typo like node-[0-99999999] must not eat the memory)
MAX_HOSTLIST_HOSTS = 100_000

_RANGE = re.compile(r"^(\d+)(?:-(\d+))?$")
_GPU_ENTRY = re.compile(r"^gpu(?::[^:(]+)*?(?::(\d+))?(?:\((.*)\))?$")
_IDX = re.compile(r"IDX:([^)]*)")


def split_top_level(text: str, separator: str = ",") -> list[str]:
    """Split at ``separator`` outside brackets and parentheses: ``a[1,2],b(x,y)`` -> 2 parts."""
    parts, depth, current = [], 0, []
    for ch in text:
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth = max(0, depth - 1)
        if ch == separator and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


def _expand_ranges(body: str) -> list[str] | None:
    values: list[str] = []
    for item in body.split(","):
        match = _RANGE.match(item.strip())
        if match is None:
            return None
        first, last = match.group(1), match.group(2) or match.group(1)
        width = len(first) if first.startswith("0") else 0
        low, high = int(first), int(last)
        if high < low or high - low > MAX_HOSTLIST_HOSTS:
            return None
        values.extend(str(n).zfill(width) for n in range(low, high + 1))
    return values


def expand_hostlist(text: str | None) -> list[str]:
    """``"node-[1-2],gpu[01-03,07]"`` -> ``["node-1", "node-2", "gpu01", ...]``; ``[]`` for empty.

    Raises ``ValueError`` for a hostlist Slurm would not write (unbalanced or bad ranges).
    """
    hosts: list[str] = []
    for part in split_top_level(text or ""):
        pieces = re.split(r"(\[[^\]]*\])", part)
        choices: list[list[str]] = []
        for piece in pieces:
            if piece.startswith("[") and piece.endswith("]"):
                expanded = _expand_ranges(piece[1:-1])
                if expanded is None:
                    raise ValueError(f"unreadable hostlist range {piece!r} in {text!r}")
                choices.append(expanded)
            elif "[" in piece or "]" in piece:
                raise ValueError(f"unbalanced brackets in hostlist {text!r}")
            elif piece:
                choices.append([piece])
        for combination in itertools.product(*choices):
            hosts.append("".join(combination))
            if len(hosts) > MAX_HOSTLIST_HOSTS:
                raise ValueError(f"hostlist {text[:40]!r}… names more than {MAX_HOSTLIST_HOSTS} hosts")
    return hosts


def expand_indices(text: str) -> list[int] | None:
    """``"0-2,5"`` -> ``[0, 1, 2, 5]``; ``None`` for ``N/A`` or anything else unreadable."""
    text = text.strip()
    if not text or text.upper() == "N/A":
        return None
    values = _expand_ranges(text)
    return None if values is None else [int(v) for v in values]


class GpuGres:
    """What a GRES string says about GPUs: how many, and which indices when it names them."""

    __slots__ = ("count", "indices")

    def __init__(self, count: int, indices: list[int] | None):
        self.count, self.indices = count, indices


def gpu_gres(text: str | None) -> GpuGres | None:
    """GPUs in a node's ``gres``/``gres_used`` or a job's ``gres_detail`` entry.

    ``"gpu:a100:2(IDX:0-1)"`` -> 2 GPUs, indices [0, 1]; ``"gpu:8(S:0-1)"`` -> 8, no indices;
    ``"gpu:a100:4,gpu:v100:4"`` -> 8; ``"shard:32"`` (no GPU entry) -> ``None``;
    ``"gpu:(null):0(IDX:N/A)"`` -> 0. Each GPU type counts once.
    """
    if not text or text in ("(null)", "N/A"):
        return None
    count, indices, seen = 0, [], False
    for entry in split_top_level(text):
        match = _GPU_ENTRY.match(entry.replace(":(null)", ""))
        if match is None:
            continue
        seen = True
        count += int(match.group(1)) if match.group(1) else 1
        idx = _IDX.search(match.group(2) or "")
        if idx is not None:
            indices.extend(expand_indices(idx.group(1)) or [])
    if not seen:
        return None
    return GpuGres(count, sorted(set(indices)) if indices else None)


def tres_gpus(text: str | None) -> int | None:
    """GPUs in a TRES request or count: ``"gres/gpu:8"``, ``"gres:gpu:8"`` (22.05),
    ``"gres/gpu:a100:2"``, ``"cpu=2,mem=1G,gres/gpu=16"``. ``None`` when no GPU is named."""
    if not text:
        return None
    total, seen = 0, False
    for entry in split_top_level(text):
        key, sep, value = entry.partition("=")
        if not sep:  # "gres/gpu:a100:2": the count is the last field
            key, _, value = entry.rpartition(":")
        name = key.replace("gres:", "gres/", 1)
        if not (name == "gres/gpu" or name.startswith("gres/gpu:")):
            continue
        if not value.strip().isdigit():
            continue
        seen = True
        total += int(value)
    return total if seen else None


def tres_value(text: str | None, name: str) -> str | None:
    """One entry of a TRES string (``cpu=8,mem=8000M,gres/gpu=8``): ``tres_value(t, "gres/gpu")``."""
    for entry in split_top_level(text or ""):
        key, sep, value = entry.partition("=")
        if sep and key == name:
            return value
    return None


def number(value: Any) -> int | float | None:
    """A number as any OpenAPI version writes it; ``None`` when unset or infinite.

    v0.0.38: a plain number (or ``null``); v0.0.39+: ``{"set": true, "infinite": false,
    "number": 5}``; with ``+complex`` mode: ``"Infinity"``. Booleans are not numbers.
    """
    if isinstance(value, dict):
        if value.get("infinite") or value.get("set") is False:
            return None
        return number(value.get("number"))
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        return int(value)
    return None


def integer(value: Any) -> int | None:
    found = number(value)
    return None if found is None else int(found)


def is_infinite(value: Any) -> bool:
    return (isinstance(value, dict) and bool(value.get("infinite"))) or value == "Infinity"


def timestamp(value: Any) -> datetime | None:
    """A UNIX time in any version's form; 0 (Slurm's "never") is ``None``."""
    seconds = number(value)
    if seconds is None or seconds <= 0:
        return None
    return datetime.fromtimestamp(seconds, UTC)


def wait_status(raw: int) -> tuple[int | None, int | None]:
    """A POSIX wait status (what v0.0.38 and v0.0.39 report as ``exit_code``) as
    (return code, signal): 768 -> (3, None), 15 -> (None, 15)."""
    signal = raw & 0x7F
    if signal == 0:
        return (raw >> 8) & 0xFF, None
    return None, signal


def exit_status(value: Any) -> tuple[int | None, int | None]:
    """(return code, signal) from ``exit_code`` in any version: a wait status (v0.0.38, v0.0.39's
    number struct) or v0.0.40+'s ``{"status": [...], "return_code": {...}, "signal": {...}}``."""
    if isinstance(value, dict) and ("status" in value or "return_code" in value or "signal" in value):
        status = value.get("status") or []
        if isinstance(status, str):
            status = [status]
        if "PENDING" in status or "INVALID" in status:
            return None, None
        signal = value.get("signal")
        signal_id = integer(signal.get("id")) if isinstance(signal, dict) else None
        return integer(value.get("return_code")), signal_id
    raw = integer(value)
    if raw is None or raw < 0:
        return None, None
    return wait_status(raw)
