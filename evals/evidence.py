"""Readings in a run's tool results: which number, of which quantity, about which subject.

Why: "the answer states the key number with its unit" is only a fair check if the number is the
one the tools returned in *that* run (a model cannot pass it by guessing a plausible 89 °C, nor
fail it because the simulator's noise moved a reading by a degree). So the scorer reads the tool
results the agent received, finds every reading of the asked quantity about the asked subject,
and accepts the answer if it states one of them with the unit.

Readings come from two places in the compact JSON the tools return:

- numeric fields, by key (``temp_c``, ``power_w``, ``link_downed``...), attributed to the node
  and GPU of the enclosing objects (``{"node": "node-2", "gpus": [{"gpu": 3, "temp_c": 90}]}``);
  ``same_for_all_gpus`` holds for every GPU of its node;
- text (finding evidence, anomalies, flags), where a number counts when the words right before
  it name the quantity ("temperature 90 °C", "NVLink errors 0 -> 5166") and none of them names a
  limit or a comparison ("slowdown 89 °C", "median 51 °C"), attributed to the finding's subject
  or the object's node, and to ``gpu-N`` when the text starts with it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Iterable, Iterator

#: a number that is not part of an identifier (node-3, mlx5_1, A100, x16, 11:53Z)
NUMBER = re.compile(r"(?<![\w./:-])\d+(?:\.\d+)?(?![\d:])")
_NODE = re.compile(r"^node-\d+$")
_GPU_PREFIX = re.compile(r"^\s*gpu-(\d+)\b")
_WINDOW_CUT = re.compile(r"[(,;:]")
#: a number compared with or offset from another is not a reading ("37 °C above node median")
_COMPARED_AFTER = re.compile(
    r"^\s*(?:°\s?C|W\b|%|MHz|min\b)?\s*(?:[<>=≥≤]|(?:above|below|over|under|higher|lower|more|less)\b)", re.IGNORECASE)
_COMPARATORS = (">", "<", "≥", "≤")


@dataclass(frozen=True)
class Quantity:
    """A kind of reading, how the tools write it and how an answer must state it.

    ``keys``: fragments of JSON keys that hold it; ``labels``: words right before a number in
    tool text, one of which must be there when given; ``text_unit``: what must follow the number in tool text (regex, may be empty);
    ``exclude``: key or label fragments that make a number something else (a limit, a median);
    ``answer_unit``: what must follow the number in the answer; ``answer_label``: words that may
    precede it instead (for counts: "NVLink errors: 5166"); ``nonzero``: zero is no evidence.
    """

    name: str
    keys: tuple[str, ...]
    labels: tuple[str, ...]
    text_unit: str
    answer_unit: str
    answer_label: str | None = None
    exclude: tuple[str, ...] = ()
    nonzero: bool = False


QUANTITIES: dict[str, Quantity] = {q.name: q for q in (
    Quantity("temperature", keys=("temp_c",), labels=(), text_unit=r"\s?°\s?C",
             answer_unit=r"\s?(?:°\s?C|º\s?C|C\b|degrees)",
             exclude=("slowdown", "shutdown", "operating", "limit", "median", "threshold", "max_c", "per_10min")),
    Quantity("power", keys=("power_w",), labels=(), text_unit=r"\s?W\b", answer_unit=r"\s?(?:W\b|watts?)",
             exclude=("limit", "default", "total", "idle")),
    Quantity("power_limit", keys=("power_limit_w",), labels=("limit",), text_unit=r"\s?W\b",
             answer_unit=r"\s?(?:W\b|watts?)", exclude=("default", "same_for_all_gpus", "limits")),
    Quantity("sm_clock", keys=("sm_clock_mhz",), labels=(), text_unit=r"\s?MHz", answer_unit=r"\s?MHz"),
    Quantity("utilization", keys=("util_pct",), labels=(), text_unit=r"\s?%", answer_unit=r"\s?(?:%|percent)",
             exclude=("mem_util", "peers", "median", "vs")),
    Quantity("remapped_rows", keys=("remapped_rows",), labels=("remapped rows",), text_unit="",
             answer_unit=r"(?:\s+\w+){0,2}\s+(?:remapped\s+)?rows?\b", answer_label=r"rows?", nonzero=True),
    Quantity("nvlink_errors", keys=("nvlink_errors",), labels=("nvlink errors",), text_unit="",
             answer_unit=r"(?:\s+\w+){0,2}\s+errors?\b", answer_label=r"errors?", nonzero=True),
    Quantity("nvlink_links_down", keys=("nvlink_links_down",), labels=(), text_unit=r"\s+nvlink\s+link\(s\)\s+down",
             answer_unit=r"(?:\s+\w+){0,2}\s+links?\b", answer_label=r"links?\s+down", nonzero=True),
    Quantity("pcie_replays", keys=("pcie_replays",), labels=("replays",), text_unit="",
             answer_unit=r"(?:\s+\w+){0,2}\s+replays?\b", answer_label=r"replays?", nonzero=True),
    Quantity("link_downed", keys=("link_downed",), labels=("link_downed", "link downed"), text_unit="",
             answer_unit=r"(?:\s+\w+){0,3}\s+(?:times|flaps?|link[- ]?downs?|drops?|events?)\b",
             answer_label=r"link[_ -]?down(?:ed)?(?:_total)?|flap(?:s|ped)?", nonzero=True),
    Quantity("idle_minutes", keys=("idle_min",), labels=("idle for", "% for", "idle"), text_unit=r"\s?min\b",
             answer_unit=r"\s?(?:min\b|mins\b|minutes?)", nonzero=True),
    Quantity("pending_jobs", keys=("jobs_pending", "pending"), labels=(), text_unit=r"\s+job(?:\(s\)|s)?\s+pending",
             answer_unit=r"(?:\s+pending)?\s+(?:jobs?|job\(s\))", answer_label=r"pending(?:\s+jobs)?",
             exclude=("reasons", "waiting"), nonzero=True),
    Quantity("gpu_count", keys=("gpus",), labels=(), text_unit=r"\s+GPUs\b", answer_unit=r"\s+(?:\w+\s+)?GPUs\b",
             exclude=("alloc", "partitions"), nonzero=True),
)}


@dataclass(frozen=True)
class Reading:
    """One number of a quantity about a subject, as a tool returned it.

    ``subject`` is ``cluster``, ``node-N``, ``node-N/gpu-M``, ``node-N/gpu-*`` (every GPU of the
    node) or a job id.
    """

    quantity: str
    subject: str
    value: Decimal
    tool: str

    def about(self, subject: str | None) -> bool:
        """Whether the reading is about ``subject``; a node's readings include its GPUs'."""
        if subject is None or self.subject == subject:
            return True
        if subject.startswith("node-") and "/" not in subject:
            return self.subject.startswith(subject + "/")
        if self.subject.endswith("/gpu-*") and "/gpu-" in subject:
            return subject.split("/gpu-", 1)[0] == self.subject.split("/gpu-", 1)[0]
        return False


def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


#: keys of a statistic of the quantity named by the key above them ({"temp_c": {"max": 90}})
_STAT_KEYS = frozenset({"min", "avg", "max", "last", "mean", "total", "alloc", "now"})
#: keys whose numbers are rates of change, not readings
_RATE_KEYS = ("per_10min", "per_min", "slope", "trend")


def _key_matches(quantity: Quantity, path: tuple[str, ...]) -> bool:
    """Whether the field at ``path`` holds ``quantity``: its own key (or, for a statistic, its
    parent's) names it, and no key on the path names a limit, a rate or another exclusion."""
    lowered = [k.lower() for k in path]
    named = [k for k in lowered if k not in _STAT_KEYS]
    if not named or any(rate in key for key in lowered for rate in _RATE_KEYS):
        return False
    return (any(fragment in named[-1] for fragment in quantity.keys)
            and not any(fragment in key for key in lowered for fragment in quantity.exclude))


def _window(text: str, start: int) -> str:
    """The words before a number, back to the previous bracket, comma, semicolon or colon."""
    before = text[max(0, start - 48):start]
    cut = None
    for cut in _WINDOW_CUT.finditer(before):
        pass
    return (before[cut.end():] if cut else before).lower()


def text_readings(text: str, subject: str, tool: str) -> Iterator[Reading]:
    """Readings written in one piece of tool text about ``subject``."""
    gpu = _GPU_PREFIX.match(text)
    if gpu and _NODE.match(subject):
        subject = f"{subject}/gpu-{int(gpu.group(1))}"
    for match in NUMBER.finditer(text):
        value = _decimal(match.group(0))
        if value is None:
            continue
        window = _window(text, match.start())
        after = text[match.end():]
        if _COMPARED_AFTER.match(after) or any(sign in window.replace("->", " ") for sign in _COMPARATORS):
            continue
        for quantity in QUANTITIES.values():
            if quantity.text_unit and not re.match(quantity.text_unit, after, re.IGNORECASE):
                continue
            if quantity.labels and not any(label in window for label in quantity.labels):
                continue
            if not quantity.labels and not quantity.text_unit:
                continue
            if any(word in window for word in quantity.exclude):
                continue
            yield Reading(quantity.name, subject, value, tool)


def _walk(value: Any, path: tuple[str, ...], subject: str, tool: str) -> Iterator[Reading]:
    if isinstance(value, dict):
        subject = _subject_of(value, subject)
        for key, child in value.items():
            child_subject = subject
            if key == "same_for_all_gpus" and _NODE.match(subject):
                child_subject = f"{subject}/gpu-*"
            yield from _walk(child, (*path, str(key)), child_subject, tool)
    elif isinstance(value, list):
        for child in value:
            yield from _walk(child, path, subject, tool)
    elif isinstance(value, str):
        yield from text_readings(value, subject, tool)
    else:
        number = _decimal(value)
        if number is None:
            return
        for quantity in QUANTITIES.values():
            if _key_matches(quantity, path):
                yield Reading(quantity.name, subject, number, tool)


def _subject_of(obj: dict[str, Any], inherited: str) -> str:
    """The subject an object is about: a finding's subject, a node, a GPU of the inherited node."""
    subject = obj.get("subject")
    if isinstance(subject, str) and subject:
        return subject
    if "id" in obj and ("user" in obj or "partition" in obj):  # a Slurm job
        return str(obj["id"])
    node = obj.get("node") or obj.get("node_id")
    if isinstance(node, str) and _NODE.match(node):
        inherited = node
    gpu = obj.get("gpu")
    if isinstance(gpu, int) and not isinstance(gpu, bool) and inherited.startswith("node-"):
        return f"{inherited.split('/', 1)[0]}/gpu-{gpu}"
    return inherited


def readings(tool_results: Iterable[tuple[str, str]]) -> list[Reading]:
    """Every reading in ``(tool name, result text)`` pairs; results that are not JSON are read as text."""
    found: list[Reading] = []
    for tool, text in tool_results:
        try:
            data = json.loads(text)
        except ValueError:
            found.extend(text_readings(text, "cluster", tool))
            continue
        found.extend(_walk(data, (), "cluster", tool))
    return found


def candidates(all_readings: Iterable[Reading], quantity: str, subject: str | None) -> list[Decimal]:
    """The distinct values of ``quantity`` about ``subject`` (zero dropped where it is no evidence)."""
    spec = QUANTITIES[quantity]
    values = {r.value for r in all_readings if r.quantity == quantity and r.about(subject)}
    if spec.nonzero:
        values.discard(Decimal(0))
    return sorted(values)
