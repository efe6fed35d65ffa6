"""Grounding: which numbers in an answer no tool result of the turn supports.

Why more than "the digits appear somewhere": one node's details hold hundreds of numbers, so
a textual check verified almost any number (52 of the integers 0-100 against one result). Here
a stated number is verified only by an evidence value that

- has a compatible **unit**: a temperature by a temperature (``temp_c``, ``°C`` in text), power
  by power, a percentage by a percentage (or a 0-1 ratio), memory by memory (MiB/GiB/GB
  converted), a clock by a clock, a duration by a duration, a count of GPUs by a count of GPUs;
- is about a compatible **subject**: "GPU 3 of node-2 is at 88.6 °C" needs a value of
  node-2/gpu-3 (or of node-2, or of no particular subject, such as a model's limits);
- equals it **within the precision it was stated**: 88.6 and 89 quote 88.63, 88.64 does not.

Units come from the text after a number (``°C``, ``W``, ``%``, ``MiB``), a label before it in the
same clause ("temperature 88.6"), or the column header or row label of a markdown table; in
tool results from the JSON key (``temp_c``, ``power_w``, ``util_pct``, ``mem_used_mib``).
Subjects come from ``node-N`` / ``GPU M`` mentions (and table columns) in the answer and from
the enclosing objects (``{"node": "node-2", "gpus": [{"gpu": 3, ...}]}``) in the results.
Identifiers (node-3, gpu-5, A100, x16), list ordinals, dates and clock times are not quantities.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

from gpudoc.graph.contracts import GroundingReport, StatedNumber

# Things that contain digits but are not quantities; blanked out (same length) before numbers are read.
_NOT_QUANTITIES = [
    re.compile(r"\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?"),  # dates
    re.compile(r"\b\d{1,2}:\d{2}(?::\d{2})?(?!\d)"),  # clock times, also "11:53Z"
    re.compile(r"(?m)^\s*(?:[-*]\s+)?\d{1,2}[.)](?=\s)"),  # list ordinals "1." "2)"
    re.compile(r"[A-Za-z_][A-Za-z_]*[-_/#]?\d+(?:[-_/]\d+)*", re.ASCII),  # ids: node-3, gpu_5, A100, x16
    re.compile(r"\b(?:GPU|gpu|job|Job|JOB|XID|xid|Xid|node|Node)\s+#?\d+"),  # "GPU 3", "job 10430", "XID 79"
]
_NUMBER = re.compile(r"(?<![\w.])-?\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\w])|(?<![\w.])-?\d+(?:\.\d+)?")
_NODE = re.compile(r"\bnode[-_ ]?(\d+)\b", re.IGNORECASE)
_GPU = re.compile(r"\bgpu[-_ #]?(\d+)\b", re.IGNORECASE)
_JOB = re.compile(r"\bjob\s+#?(\d+)\b", re.IGNORECASE)
_WORD = re.compile(r"[a-z]+")
_LIMIT_WORDS = frozenset({"limit", "limits", "slowdown", "shutdown", "operating", "threshold", "thresholds", "max"})
#: keys of JSON values that are thresholds rather than readings
_LIMIT_KEYS = ("limit", "max_operating", "slowdown", "shutdown", "mem_max", "threshold")
#: a statement about the whole cluster: only values about no particular node support it
CLUSTER = "*cluster"
#: keys whose integers name things (GPU index, job id) rather than count them
_IDENTIFIER_KEYS = frozenset({"gpu", "id", "job", "index", "port", "last_xid", "xids", "uuid"})

#: unit written after a number -> (unit class, factor to the class's base unit)
_UNIT_AFTER: list[tuple[re.Pattern[str], str, float]] = [
    (re.compile(r"^\s?(?:GB/s|Gbps|Gb/s|GBps)"), "bandwidth", 1.0),
    (re.compile(r"^\s?(?:°|º|deg(?:rees?)?\b\s?)\s?C?\b|^\s?C\b"), "temperature", 1.0),
    (re.compile(r"^\s?kW\b"), "power", 1000.0),
    (re.compile(r"^\s?(?:W\b|watts?\b)", re.IGNORECASE), "power", 1.0),
    (re.compile(r"^\s?(?:%|percent\b|per cent\b)"), "percent", 1.0),
    (re.compile(r"^\s?(?:TiB|TB)\b"), "memory", 1024.0 * 1024),
    (re.compile(r"^\s?(?:GiB|GB)\b"), "memory", 1024.0),
    (re.compile(r"^\s?(?:MiB|MB)\b"), "memory", 1.0),
    (re.compile(r"^\s?GHz\b"), "frequency", 1000.0),
    (re.compile(r"^\s?MHz\b"), "frequency", 1.0),
    (re.compile(r"^\s?(?:h|hrs?|hours?)\b"), "duration", 60.0),
    (re.compile(r"^\s?(?:min|mins|minutes?)\b"), "duration", 1.0),
    (re.compile(r"^\s?(?:s|sec|secs|seconds?)\b"), "duration", 1 / 60),
]
#: words that name what a number measures (a label before it, a table header or row label, a JSON key)
_LABELS: list[tuple[tuple[str, ...], str, float]] = [
    (("gbps",), "bandwidth", 1.0),
    (("temp", "temperature", "temperatures", "hot", "hottest", "c", "slowdown", "shutdown", "operating"),
     "temperature", 1.0),
    (("power", "w", "watts", "draw", "draws"), "power", 1.0),
    (("util", "utilisation", "utilization", "pct", "percent", "busy", "load"), "percent", 1.0),
    (("mib",), "memory", 1.0),
    (("gb", "gib"), "memory", 1024.0),
    (("memory", "mem"), "memory", None),  # unit unknown: MiB in results, GB/MiB in answers
    (("mhz", "clock", "clocks"), "frequency", 1.0),
    (("min", "minutes", "waiting"), "duration", 1.0),
    (("s", "seconds"), "duration", 1 / 60),
]
#: nouns after a count -> JSON keys counting them
_COUNTED = {
    "gpu": ("gpus", "gpus_examined"), "node": ("nodes", "nodes_examined", "nodes_with_anomalies"),
    "job": ("pending", "running", "completed", "failed", "cancelled", "matched", "jobs_pending", "jobs_running"),
    "finding": ("critical", "warning", "info"), "alert": ("firing_count", "active_count", "events_count"),
    "rule": ("rules_count",), "sample": ("samples",), "cpu": ("cpus", "total", "alloc", "cpus_alloc"),
}


@dataclass(frozen=True)
class Quantity:
    """A number with what it measures and what it is about."""

    value: Decimal
    unit: str  # a class of _UNIT_AFTER / _LABELS, or "count"
    scale: float | None  # factor to the class's base unit; None when unknown (memory without a unit)
    node: str | None = None
    gpu: int | None = None
    counted: str | None = None  # for counts: the JSON key, or the noun of a stated count
    written: str = ""
    limit: bool = False  # a threshold (slowdown, power limit), not a reading
    job: str | None = None  # the Slurm job it is about
    every_gpu: bool = False  # a node's value that holds for each of its GPUs (same_for_all_gpus)

    @property
    def subject(self) -> str | None:
        if self.node == CLUSTER:
            return "cluster"
        if self.node and self.gpu is not None:
            return f"{self.node}/gpu-{self.gpu}"
        return self.node or (f"gpu-{self.gpu}" if self.gpu is not None else None)


def _blank(text: str) -> str:
    for pattern in _NOT_QUANTITIES:
        text = pattern.sub(lambda m: " " * len(m.group(0)), text)
    return text


def _label_unit(words: Iterable[str]) -> tuple[str, float | None] | None:
    for word in words:
        for names, unit, scale in _LABELS:
            if word in names:
                return unit, scale
    return None


def _key_unit(key: str) -> tuple[str, float | None] | None:
    """The unit a JSON key names: ``temp_c``, ``power_w``, ``util_pct``, ``mem_used_mib``, ``waiting_min``."""
    parts = key.lower().split("_")
    if "per" in parts:
        return "rate", 1.0  # per_10min: a change per time, not a reading
    if parts[-1] in ("c",) or "temp" in parts:
        return "temperature", 1.0
    if parts[-1] == "w" or "power" in parts:
        return "power", 1.0
    return _label_unit(reversed(parts))


def _unit_after(text: str) -> tuple[str, float] | None:
    for pattern, unit, scale in _UNIT_AFTER:
        if pattern.match(text):
            return unit, scale
    return None


def _counted_noun(text: str) -> str | None:
    match = re.match(r"^\s?([a-z]+)", text.lower())
    if not match:
        return None
    word = match.group(1).rstrip("s")
    return word if word in _COUNTED else None


# ---------------------------------------------------------------------------------------------
# Stated numbers (the answer, and evidence that is prose)
# ---------------------------------------------------------------------------------------------


def _table_header(lines: list[str], index: int) -> list[str] | None:
    """The header cells of the markdown table ``lines[index]`` belongs to."""
    start = index
    while start > 0 and lines[start - 1].lstrip().startswith("|"):
        start -= 1
    if start + 1 < len(lines) and re.match(r"^\s*\|?\s*:?-{2,}", lines[start + 1]) and start != index:
        return [cell.strip().lower() for cell in lines[start].strip().strip("|").split("|")]
    return None


def stated_quantities(text: str, *, node: str | None = None, gpu: int | None = None) -> list[Quantity]:
    """The quantities of a text (an answer, a finding's evidence), each with its unit and subject."""
    found: list[Quantity] = []
    lines = text.splitlines()
    context_node = node
    for index, line in enumerate(lines):
        is_row = line.lstrip().startswith("|")
        header = _table_header(lines, index) if is_row else None
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")] if is_row else []
        if is_row and re.match(r"^\s*\|?\s*:?-{2,}", line):
            continue
        if header and len(cells) == len(header):
            found.extend(_row_quantities(header, cells, context_node, gpu))
            continue
        nodes_in_line = [(m.start(), f"node-{int(m.group(1))}") for m in _NODE.finditer(line)]
        nodes_in_line += [(m.start(), CLUSTER) for m in re.finditer(r"\bcluster\b", line, re.IGNORECASE)]
        nodes_in_line.sort()
        gpus_in_line = [(m.start(), int(m.group(1))) for m in _GPU.finditer(line)]
        jobs_in_line = [(m.start(), m.group(1)) for m in _JOB.finditer(line)]
        blanked = _blank(line)
        for match in _NUMBER.finditer(blanked):
            quantity = _quantity(match.group(0), blanked, match.start(), match.end(), line,
                                 _subject_node(nodes_in_line, blanked, match.start()) or context_node,
                                 _last_before(gpus_in_line, match.start(), gpu))
            job = _last_before(jobs_in_line, match.start())
            found.append(replace(quantity, job=job) if job else quantity)
        if nodes_in_line and nodes_in_line[-1][1] != CLUSTER:
            context_node = nodes_in_line[-1][1]
    return found


def _subject_node(mentions: list[tuple[int, str]], blanked: str, position: int) -> str | None:
    """The node a number is said of: the last node named before it on its line; "the cluster" only
    within the same clause ("cluster median 0; hottest 33 °C" says 33 °C of no particular node)."""
    for start, node in reversed([(s, n) for s, n in mentions if s < position]):
        if node != CLUSTER:
            return node
        if not re.search(r"[;.]\s", blanked[start:position]):
            return CLUSTER
    return None


def _last_before(mentions: list[tuple[int, Any]], position: int, default: Any = None) -> Any:
    before = [value for start, value in mentions if start < position]
    return before[-1] if before else default


def _quantity(written: str, blanked: str, start: int, end: int, line: str, node: str | None,
              gpu: int | None) -> Quantity:
    value = Decimal(written.replace(",", ""))
    after = line[end:]
    unit = _unit_after(after)
    counted = None
    clause_words = _WORD.findall(re.split(r"[.;:,(|]", blanked[:start])[-1].lower())
    if unit is None:
        unit = _label_unit(reversed(clause_words[-4:]))
    if unit is None:
        counted = _counted_noun(after)
        unit = ("count", 1.0)
    return Quantity(value=value, unit=unit[0], scale=unit[1], node=node, gpu=gpu, counted=counted, written=written,
                    limit=bool(_LIMIT_WORDS & set(clause_words[-3:])))


def _row_quantities(header: list[str], cells: list[str], node: str | None, gpu: int | None) -> list[Quantity]:
    """A markdown table row: units from the column headers or a label cell, subjects from id columns."""
    row_text = " ".join(cells)
    node = next((f"node-{int(m.group(1))}" for m in [_NODE.search(row_text)] if m), node)
    gpu_match = _GPU.search(row_text)
    gpu = int(gpu_match.group(1)) if gpu_match else gpu
    label = None
    label_limit = False
    for title, cell in zip(header, cells):
        if title in ("gpu", "gpus", "index", "#") and cell.isdigit():
            gpu = int(cell)
        if not label and re.fullmatch(r"[a-z_]+", cell) and (label := _key_unit(cell)):
            label_limit = any(marker in cell for marker in _LIMIT_KEYS)
    found = []
    for title, cell in zip(header, cells):
        if title in ("gpu", "index", "#") or not cell:
            continue
        column = _key_unit(title.replace(" ", "_")) or _label_unit(_WORD.findall(title))
        blanked = _blank(cell)
        for match in _NUMBER.finditer(blanked):
            quantity = _quantity(match.group(0), blanked, match.start(), match.end(), cell, node, gpu)
            explicit = _unit_after(cell[match.end():])
            unit = explicit or column or label
            if unit and not explicit:
                quantity = Quantity(value=quantity.value, unit=unit[0], scale=unit[1], node=node, gpu=gpu,
                                    written=quantity.written,
                                    limit=label_limit or bool(_LIMIT_WORDS & set(_WORD.findall(title))))
            found.append(quantity)
    return found


# ---------------------------------------------------------------------------------------------
# Evidence: tool results (JSON) and reference texts
# ---------------------------------------------------------------------------------------------


def _node_of(value: Any) -> str | None:
    if isinstance(value, str):
        match = _NODE.fullmatch(value.strip())
        return f"node-{int(match.group(1))}" if match else None
    return None


@lru_cache(maxsize=512)
def evidence_quantities(text: str) -> tuple[Quantity, ...]:
    """The quantities of one piece of evidence: a tool's JSON result, or prose (cached: a turn's
    evidence is checked once per answer, a benchmark checks thousands of statements against it)."""
    try:
        data = json.loads(text)
    except ValueError:
        return tuple(stated_quantities(text))
    if not isinstance(data, (dict, list)):
        return tuple(stated_quantities(text))
    return tuple(_walk(data, (), None, None, None))


def _walk(item: Any, keys: tuple[str, ...], node: str | None, gpu: int | None,
          fields: bool | None, job: str | None = None) -> Iterator[Quantity]:
    if isinstance(item, dict):
        if isinstance(item.get("id"), str) and ("state" in item or "user" in item):
            job = item["id"]  # a Slurm job: its numbers are about the job
        fields = fields or "point_fields" in item
        if fields and "points" in item:  # chart points are for drawing; answers quote the statistics beside them
            item = {key: value for key, value in item.items() if key not in ("points", "point_fields")}
        node = _node_of(item.get("node")) or _node_of(item.get("node_id")) or node
        if isinstance(item.get("gpu"), int) and not isinstance(item.get("gpu"), bool):
            gpu = item["gpu"]
        subject = item.get("subject")
        if isinstance(subject, str) and _NODE.match(subject):
            node = _node_of(subject.split("/")[0]) or node
            gpu_match = _GPU.search(subject)
            gpu = int(gpu_match.group(1)) if gpu_match else gpu
        for key, value in item.items():
            yield from _walk(value, (*keys, str(key)), node, gpu, fields, job)
    elif isinstance(item, list):
        for value in item:
            yield from _walk(value, keys, node, gpu, fields, job)
    elif isinstance(item, str):
        yield from (replace(q, job=q.job or job) for q in stated_quantities(item, node=node, gpu=gpu))
    elif isinstance(item, (int, float)) and not isinstance(item, bool):
        if keys and (keys[-1] in _IDENTIFIER_KEYS or keys[-1].endswith("_gpus")):
            return  # an index, an id or a list of GPU indices names something; it measures nothing
        unit = next((u for key in reversed(keys) if (u := _key_unit(key))), None)
        yield Quantity(value=Decimal(str(item)), unit=unit[0] if unit else "count",
                       scale=unit[1] if unit else 1.0, node=node, gpu=gpu,
                       counted=keys[-1] if keys and not unit else None, written=str(item),
                       limit=any(marker in key for key in keys for marker in _LIMIT_KEYS), job=job,
                       every_gpu=any(key.startswith("same_for_all") for key in keys))


# ---------------------------------------------------------------------------------------------
# Matching
# ---------------------------------------------------------------------------------------------


def _tolerance(written: str) -> Decimal:
    decimals = len(written.split(".", 1)[1]) if "." in written else 0
    return Decimal(5) / (Decimal(10) ** (decimals + 1))  # half a unit in the last place


def _same_subject(stated: Quantity, known: Quantity) -> bool:
    if known.limit and not stated.limit:
        return False  # a reading is not verified by a threshold that happens to be equal
    if known.job and stated.job != known.job and (stated.job or stated.node or stated.gpu is not None):
        return False  # a job's numbers are about that job, not about a GPU or another job
    if stated.node == CLUSTER:
        return known.node is None
    if stated.gpu is not None and known.gpu is None and known.node and not (known.limit or known.every_gpu):
        return False  # a node's aggregate (its average, its maximum) is not a reading of one GPU
    if stated.node and known.node and stated.node != known.node:
        return False
    return not (stated.gpu is not None and known.gpu is not None and stated.gpu != known.gpu)


def _candidates(stated: Quantity, known: Quantity) -> list[Decimal]:
    """``known``'s value in the unit ``stated`` was written in, for each reading that could apply."""
    if stated.unit == "count":
        if known.unit != "count":
            return []
        if stated.counted and known.counted != stated.counted and known.counted not in _COUNTED[stated.counted]:
            return []
        return [known.value]
    if stated.unit != known.unit:
        return []
    if stated.scale is None or known.scale is None:  # memory of unknown unit: MiB, GiB or GB
        scales = [1.0, 1024.0, 1000.0 ** 3 / 1024 ** 2]
        return [known.value / Decimal(str(s)) for s in scales] + [known.value]
    values = [known.value * Decimal(str(known.scale)) / Decimal(str(stated.scale))]
    if stated.unit == "memory" and stated.scale == 1024.0:  # "80 GB" for 81920 MiB: GB said for GiB
        values.append(known.value * Decimal(str(known.scale)) * Decimal(1024 ** 2) / Decimal(1000 ** 3))
    if stated.unit == "percent" and known.value <= 1:
        values.append(known.value * 100)  # 85% quoted from a 0.85 ratio
    return values


def supported(stated: Quantity, evidence: Iterable[Quantity]) -> bool:
    allowed = _tolerance(stated.written)
    return any(abs(value - stated.value) <= allowed
               for known in evidence if _same_subject(stated, known)
               for value in _candidates(stated, known))


def check_answer(answer: str, evidence_texts: Iterable[str]) -> GroundingReport:
    """The numbers of ``answer`` checked against the evidence texts (tool results, limits, the question)."""
    evidence = [quantity for text in evidence_texts for quantity in evidence_quantities(text)]
    stated = stated_quantities(answer)
    unverified: list[StatedNumber] = []
    for quantity in stated:
        if not supported(quantity, evidence) and quantity.written not in [n.text for n in unverified]:
            unverified.append(StatedNumber(text=quantity.written, unit=quantity.unit, subject=quantity.subject))
    return GroundingReport(checked=len(stated), verified=len(stated) - len(unverified), unverified=unverified)


def unverified_numbers(answer: str, evidence_texts: Iterable[str]) -> list[str]:
    """Numbers of ``answer`` (as written, in order, unique) that no evidence supports."""
    return [number.text for number in check_answer(answer, evidence_texts).unverified]


def numbers_in(text: str) -> list[tuple[str, Decimal]]:
    """(as written, value) of each quantity in ``text`` (identifiers, dates and times left out)."""
    try:
        return [(q.written, q.value) for q in stated_quantities(text)]
    except InvalidOperation:  # pragma: no cover - the pattern only matches numbers
        return []
