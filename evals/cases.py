"""The evaluation suite: cases written in YAML under ``evals/suite/``, loaded and checked here.

Why YAML and a strict loader: the suite grows by people adding cases (a new fault scenario, a
new kind of question) without touching Python, and a typo in a case must fail at load time with
the file and the case named, not silently turn into a check that can never fail. Every scenario,
tool, rule id and quantity a case names is checked against the simulator, the tool list, the
diagnosis rules and ``evidence.QUANTITIES``.

A file holds ``defaults`` (merged into each case: tags are added, budgets filled in) and
``cases``. A case is either one ``question`` with its ``expect``, or ``turns`` (follow-up
questions in one thread), each with its own ``expect``. The format is documented in
``evals/README.md``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterable, Literal, Sequence

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from gpudoc.evals.evidence import QUANTITIES
from gpudoc.tools.cluster_tools import TOOL_NAMES
from gpudoc.tools.diagnosis.rules import RULES
from gpudoc.tools.sim.scenarios import parse_scenario

SUITE_DIR = Path(__file__).parent / "suite"

_SUBJECT = re.compile(r"^(cluster|truth|node-\d+|node-\d+/gpu-\d+|\d+)$")
#: a subject written as ``truth``: whatever the simulator says is at fault (a job id, for job scenarios)
TRUTH = "truth"


class SuiteError(ValueError):
    """A case file that cannot be used; the message names the file, the case and the problem."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ToolRequirement(Strict):
    """At least one of ``any_of`` must have answered (succeeded, or said the node does not exist).

    ``node``: calls that name a node must name this one (cluster-wide calls still count).
    """

    any_of: list[str] = Field(min_length=1)
    node: str | None = None

    @field_validator("any_of")
    @classmethod
    def _known_tools(cls, names: list[str]) -> list[str]:
        unknown = [n for n in names if n not in TOOL_NAMES]
        if unknown:
            raise ValueError(f"unknown tool(s) {unknown}; tools: {', '.join(TOOL_NAMES)}")
        return names


class Cause(Strict):
    """The root cause, named by a diagnosis rule id, an XID, or one of a few specific terms."""

    rules: list[str] = Field(default_factory=list)
    xids: list[int] = Field(default_factory=list)
    terms: list[str] = Field(default_factory=list, description="regexes, case-insensitive")

    @field_validator("rules")
    @classmethod
    def _known_rules(cls, rules: list[str]) -> list[str]:
        unknown = [r for r in rules if r not in RULES]
        if unknown:
            raise ValueError(f"unknown rule id(s) {unknown}")
        return rules

    @model_validator(mode="after")
    def _something(self) -> "Cause":
        if not (self.rules or self.xids or self.terms):
            raise ValueError("a cause needs rules, xids or terms")
        return self


class KeyNumber(Strict):
    """A number the answer must state with its unit, taken from this run's tool results."""

    quantity: str
    subject: str | None = Field(None, description="whose reading (node-3, node-3/gpu-5, a job id, 'truth'); "
                                                  "None: any subject")

    @field_validator("quantity")
    @classmethod
    def _known_quantity(cls, name: str) -> str:
        if name not in QUANTITIES:
            raise ValueError(f"unknown quantity {name!r}; quantities: {', '.join(QUANTITIES)}")
        return name


class Budget(Strict):
    """Most a turn may cost. ``None`` means no limit on that axis."""

    round_trips: int | None = None
    tokens: int | None = None
    latency_s: float | None = None


DEFAULT_BUDGET = Budget(round_trips=4, tokens=40_000, latency_s=120.0)


class Expectations(Strict):
    tools: list[ToolRequirement] = Field(default_factory=list)
    subjects: list[str] = Field(default_factory=list, description="each must be named in the answer")
    cause: Cause | None = None
    number: KeyNumber | None = None
    says: list[str] = Field(default_factory=list, description="regexes; each must match the answer")
    forbid: list[str] = Field(default_factory=list, description="regexes; none may match the answer")
    negative_control: bool = Field(
        False, description="nothing here is broken: calling anything faulty or recommending a hardware action fails")
    budget: Budget = Field(default_factory=Budget)

    @field_validator("tools", mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        """``tools: [get_x, [get_y, get_z], {any_of: [...], node: node-2}]``."""
        if not isinstance(value, list):
            return value
        return [{"any_of": [item]} if isinstance(item, str) else {"any_of": item} if isinstance(item, list)
                else item for item in value]

    @field_validator("subjects")
    @classmethod
    def _subject_shape(cls, subjects: list[str]) -> list[str]:
        bad = [s for s in subjects if not _SUBJECT.match(s)]
        if bad:
            raise ValueError(f"subjects look like node-3, node-3/gpu-5, a job id or 'truth'; got {bad}")
        return subjects

    @field_validator("says", "forbid")
    @classmethod
    def _regexes(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"bad regex {pattern!r}: {exc}") from None
        return patterns


class Turn(Strict):
    question: str = Field(min_length=1)
    expect: Expectations = Field(default_factory=Expectations)


class EvalCase(Strict):
    """One conversation over one simulated cluster."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    scenarios: list[str] = Field(default_factory=list, description="NAME[@node-N[/gpu-M]], as gpudoc --scenario")
    tags: list[str] = Field(default_factory=list)
    seed: int = 42
    nodes: int = Field(8, ge=1, le=1024)
    gpu_model: Literal["a100", "h100"] = "a100"
    turns: list[Turn] = Field(min_length=1)
    file: str = Field("", description="the suite file it came from")

    @model_validator(mode="before")
    @classmethod
    def _single_question(cls, data: Any) -> Any:
        if isinstance(data, dict) and "question" in data:
            if "turns" in data:
                raise ValueError("give either question (+ expect) or turns, not both")
            data = dict(data)
            data["turns"] = [{"question": data.pop("question"), "expect": data.pop("expect", {})}]
        return data

    @model_validator(mode="after")
    def _scenarios_parse(self) -> "EvalCase":
        for spec in self.scenarios:
            parse_scenario(spec, self.nodes)  # ValueError names the valid scenarios / places
        return self

    @property
    def scenario_names(self) -> list[str]:
        """The scenario names without their places (``healthy`` when none is injected)."""
        return [spec.split("@", 1)[0].strip().lower() for spec in self.scenarios] or ["healthy"]

    @property
    def questions(self) -> list[str]:
        return [turn.question for turn in self.turns]


def _merge_defaults(case: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    merged = {**{k: v for k, v in defaults.items() if k not in ("tags", "budget")}, **case}
    merged["tags"] = list(dict.fromkeys([*defaults.get("tags", []), *case.get("tags", [])]))
    budget = {**DEFAULT_BUDGET.model_dump(), **(defaults.get("budget") or {})}
    turns = merged.get("turns")
    expects = [t.setdefault("expect", {}) for t in turns] if isinstance(turns, list) else \
        [merged.setdefault("expect", {})]
    for expect in expects:
        if isinstance(expect, dict):
            expect["budget"] = {**budget, **(expect.get("budget") or {})}
    return merged


def load_file(path: Path) -> list[EvalCase]:
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise SuiteError(f"{path.name}: not valid YAML: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("cases"), list):
        raise SuiteError(f"{path.name}: expected a mapping with a 'cases' list")
    defaults = document.get("defaults") or {}
    cases = []
    for index, raw in enumerate(document["cases"]):
        label = raw.get("id", f"#{index + 1}") if isinstance(raw, dict) else f"#{index + 1}"
        if not isinstance(raw, dict):
            raise SuiteError(f"{path.name}: case {label} is not a mapping")
        try:
            cases.append(EvalCase.model_validate({**_merge_defaults(raw, defaults), "file": path.name}))
        except (ValidationError, ValueError) as exc:
            raise SuiteError(f"{path.name}: case {label}: {_one_line(exc)}") from None
    return cases


def _one_line(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'case'}: {e['msg']}" for e in exc.errors())
    return str(exc)


def load_suite(directory: Path = SUITE_DIR) -> list[EvalCase]:
    """Every case of every ``*.yaml`` file in ``directory``, in file then case order; ids unique."""
    files = sorted(directory.glob("*.yaml"))
    if not files:
        raise SuiteError(f"no suite files (*.yaml) in {directory}")
    cases: list[EvalCase] = []
    seen: dict[str, str] = {}
    for path in files:
        for case in load_file(path):
            if case.id in seen:
                raise SuiteError(f"{path.name}: case id {case.id!r} is already used in {seen[case.id]}")
            seen[case.id] = path.name
            cases.append(case)
    return cases


def select(cases: Sequence[EvalCase], *, ids: Iterable[str] = (), tags: Iterable[str] = ()) -> list[EvalCase]:
    """Cases with one of ``ids`` (or an id matching a ``*`` pattern) that carry one of ``tags``.

    An id or tag that selects nothing is an error naming what exists: a typo must not run an
    empty suite that "passes".
    """
    ids, tags = list(ids), list(tags)
    chosen = list(cases)
    if ids:
        patterns = {i: re.compile("^" + ".*".join(map(re.escape, i.split("*"))) + "$") for i in ids}
        missing = [i for i, p in patterns.items() if not any(p.match(c.id) for c in cases)]
        if missing:
            raise SuiteError(f"no case matches {', '.join(missing)}; see `gpudoc eval --list`")
        chosen = [c for c in chosen if any(p.match(c.id) for p in patterns.values())]
    if tags:
        known = {t for c in cases for t in c.tags}
        missing = [t for t in tags if t not in known]
        if missing:
            raise SuiteError(f"no case is tagged {', '.join(missing)}; tags: {', '.join(sorted(known))}")
        chosen = [c for c in chosen if set(tags) & set(c.tags)]
    if not chosen:
        raise SuiteError(f"no case matches {', '.join(ids)} and is tagged {' or '.join(tags)}")
    return chosen
