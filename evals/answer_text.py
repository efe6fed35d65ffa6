"""Reading an answer without a judge: which subjects it names, which cause, which numbers with
which units, and which claims (healthy, faulty, a hardware action for some GPU) it makes.

Why plain text rules: the scores must be reproducible, cheap and impossible to talk round. The
rules are deliberately literal and work on *segments* (lines and sentences, so a table row is one
segment): "node-3 ... GPU 5" in one segment names ``node-3/gpu-5``; a hardware action in a
segment applies to the subjects that segment names, unless the segment negates it ("no RMA
needed", "do not drain").
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Iterable, Sequence

from gpudoc.evals.evidence import QUANTITIES

_SENTENCE_END = re.compile(r"(?:(?<=[.!?])|(?<=[.!?]\*\*)|(?<=[.!?][*_)\]]))\s+")
_NODE_REF = re.compile(r"\bnode[-_ ]?0*(\d+)(?!\d)", re.IGNORECASE)
_GPU_REF = re.compile(r"\bgpu(?:\s+index)?[-_ #]?0*(\d+)(?!\d)", re.IGNORECASE)
_FULL_GPU_REF = re.compile(r"\bnode[-_ ]?0*(\d+)\s*[/:]\s*gpu[-_ ]?0*(\d+)(?!\d)", re.IGNORECASE)
_XID_LIST = re.compile(r"\bxids?\s*[#:-]?\s*(\d+(?:\s*(?:,|/|and|&|or|\+)\s*\d+)*)", re.IGNORECASE)
_ANSWER_NUMBER = re.compile(r"(?<![\w./:-])\d+(?:\.\d+)?(?![\d:]|\.\d)")

NEGATIONS = re.compile(r"\b(?:no|not|none|nothing|never|without|neither|nor|unnecessary|unneeded)\b|n't\b",
                       re.IGNORECASE)
#: words that limit a claim to part of the cluster ("all *other* GPUs are healthy")
EXCEPTIONS = re.compile(r"\b(?:except|other|others|apart from|besides|but|aside from|remaining|rest)\b",
                        re.IGNORECASE)
HARDWARE_ACTION = re.compile(r"\b(?:rma|replace|drain|reboot|reset|reseat|power[- ]cycle)\b", re.IGNORECASE)
_HEALTHY_CLAIM = re.compile(
    r"\b(?:cluster|everything|all\s+(?:\d+\s+)?(?:nodes|gpus))\b[^.;]*?\b(?:is|are|looks?|appears?|seems?)\s+"
    r"(?:\w+\s+)?(?:healthy|fine|ok|okay|normal|nominal|in\s+good\s+(?:shape|health))\b"
    r"|\bno\s+(?:issues|problems|faults|errors|anomalies|findings)\s+(?:were\s+)?(?:found|detected|reported)\b"
    r"|\bnothing\s+(?:is\s+)?(?:wrong|abnormal)\b",
    re.IGNORECASE,
)
_FAULT_CLAIM = re.compile(
    r"\b(?:critical|faulty|fault|failed|failing|failure|broken|defective|hardware\s+(?:error|problem|issue))\b"
    r"|\b(?:rma|replace|drain)\b",
    re.IGNORECASE,
)


def segments(answer: str) -> list[str]:
    """Lines, split further into sentences; empty ones dropped."""
    parts: list[str] = []
    for line in answer.splitlines():
        parts.extend(p.strip() for p in _SENTENCE_END.split(line) if p.strip())
    return parts


def subjects_in(segment: str) -> set[str]:
    """Nodes and GPUs a segment names: ``node-3``, and ``node-3/gpu-5`` when a GPU is named with it."""
    found = {f"node-{int(n)}/gpu-{int(g)}" for n, g in _FULL_GPU_REF.findall(segment)}
    nodes = {f"node-{int(n)}" for n in _NODE_REF.findall(segment)}
    gpus = {int(g) for g in _GPU_REF.findall(_FULL_GPU_REF.sub(" ", segment))}
    if len(nodes) == 1 and gpus:
        node = next(iter(nodes))
        found |= {f"{node}/gpu-{g}" for g in gpus}
    return found | nodes | {s.split("/", 1)[0] for s in found}


def mentions(answer: str, subject: str) -> bool:
    """Whether the answer names ``subject`` (``cluster`` always counts; job ids as numbers)."""
    if subject == "cluster":
        return True
    if subject.isdigit():
        return re.search(rf"(?<!\d){subject}(?!\d)", answer) is not None
    return any(subject in subjects_in(segment) for segment in segments(answer))


def xids_in(answer: str) -> set[int]:
    found: set[int] = set()
    for match in _XID_LIST.finditer(answer):
        found |= {int(n) for n in re.findall(r"\d+", match.group(1))}
    return found


def names_cause(answer: str, *, rules: Sequence[str], xids: Sequence[int], terms: Sequence[str]) -> str | None:
    """How the answer names the cause (the rule id, ``XID n`` or the term), or None."""
    lowered = answer.lower()
    for rule in rules:
        if rule.lower() in lowered:
            return rule
    named = xids_in(answer) & set(xids)
    if named:
        return f"XID {min(named)}"
    for term in terms:
        match = re.search(term, answer, re.IGNORECASE)
        if match:
            return match.group(0)
    return None


def _decimals(written: str) -> int:
    return len(written.split(".", 1)[1]) if "." in written else 0


def _close(written: str, value: Decimal, known: Decimal) -> bool:
    """Equal up to the writer's rounding (88.63 may be written 88.6 or 89)."""
    return abs(known - value) <= Decimal(5) / (Decimal(10) ** (_decimals(written) + 1))


def stated_with_unit(answer: str, quantity: str, values: Iterable[Decimal]) -> str | None:
    """The first place the answer states one of ``values`` with the quantity's unit, or None."""
    spec = QUANTITIES[quantity]
    known = list(values)
    for segment in segments(answer):
        for match in _ANSWER_NUMBER.finditer(segment):
            written = match.group(0)
            try:
                value = Decimal(written)
            except InvalidOperation:
                continue
            if not any(_close(written, value, k) for k in known):
                continue
            after = segment[match.end():]
            before = segment[max(0, match.start() - 40):match.start()]
            if re.match(spec.answer_unit, after, re.IGNORECASE):
                return (written + after[:16]).strip()
            if spec.answer_label and re.search(rf"(?:{spec.answer_label})\W{{0,4}}(?:\w+\W+){{0,3}}$", before,
                                               re.IGNORECASE):
                return (before[-24:] + written).strip()
    return None


def claims_healthy(answer: str) -> str | None:
    """A segment calling the whole cluster healthy (not negated, not limited to the others)."""
    for segment in segments(answer):
        match = _HEALTHY_CLAIM.search(segment)
        if not match or EXCEPTIONS.search(segment):
            continue
        phrased_negatively = match.group(0).lower().startswith(("no ", "nothing"))  # "no issues found"
        rest = segment.replace(match.group(0), " ") if phrased_negatively else segment
        if not NEGATIONS.search(rest):
            return segment
    return None


def claims_fault(answer: str) -> str | None:
    """A segment saying something is faulty or needs a hardware action, without negating it."""
    for segment in segments(answer):
        if _FAULT_CLAIM.search(segment) and not NEGATIONS.search(segment):
            return segment
    return None


def hardware_actions(answer: str) -> list[tuple[str, set[str]]]:
    """(segment, subjects it names) for each segment recommending a hardware action, not negated."""
    found = []
    for segment in segments(answer):
        if HARDWARE_ACTION.search(segment) and not NEGATIONS.search(segment):
            subjects = subjects_in(segment)
            if subjects:
                found.append((segment, subjects))
    return found
