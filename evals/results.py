"""What an evaluation run produces: per check, per turn, per case, and the summary.

Why one pydantic model for all of it: ``gpudoc eval --json`` prints it, ``--out`` writes it, the
HTML report and the comparison notebook read it back, and LangSmith feedback is derived from it.
They must agree on one shape, and old result files must stay readable (fields only get added).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from datetime import datetime
from typing import Any, Iterable, Literal

from pydantic import BaseModel, Field, computed_field

CheckName = Literal["completed", "tools", "subjects", "cause", "number", "says", "forbidden", "grounding",
                    "round_trips", "tokens", "latency"]
#: the order checks are reported in
CHECK_ORDER: tuple[str, ...] = ("completed", "tools", "subjects", "cause", "number", "says", "forbidden",
                                "grounding", "round_trips", "tokens", "latency")


class Check(BaseModel):
    """One judge-free check of one turn. ``passed`` None: not applicable to this run or turn."""

    name: CheckName
    passed: bool | None
    detail: str = ""


class ToolUse(BaseModel):
    """A tool call of a turn, without its (large) result text."""

    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    error_kind: str | None = None
    result_chars: int = 0
    duration_ms: float = 0.0


class JudgeVerdict(BaseModel):
    """The optional LLM-as-judge grade of one turn; reported apart from the judge-free scores."""

    score: int | None = Field(None, description="1 (useless or wrong) .. 5 (correct, complete, grounded)")
    verdict: Literal["pass", "fail"] | None = None
    reason: str = ""
    error: str | None = Field(None, description="why there is no grade (judge unreachable, unreadable reply)")


class TurnRecord(BaseModel):
    question: str
    answer: str = ""
    tools: list[ToolUse] = Field(default_factory=list)
    unverified_numbers: list[str] = Field(default_factory=list)
    round_trips: int = 0
    tool_rounds: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    degraded: bool = False
    degraded_reason: str | None = None
    checks: list[Check] = Field(default_factory=list)
    judge: JudgeVerdict | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def passed(self) -> bool:
        return all(c.passed is not False for c in self.checks)


class CaseOutcome(BaseModel):
    id: str
    file: str = ""
    scenarios: list[str]
    scenario_names: list[str] = Field(default_factory=list, description="scenario names without their places")
    tags: list[str] = Field(default_factory=list)
    passed: bool
    scores: dict[str, bool | None] = Field(default_factory=dict, description="check -> passed in every turn")
    score: float = Field(0.0, description="share of applicable checks passed, over all turns")
    error: str | None = Field(None, description="why the case could not be run (stale cassette, agent failure)")
    turns: list[TurnRecord] = Field(default_factory=list)

    @classmethod
    def from_turns(cls, *, turns: list[TurnRecord], error: str | None = None, **fields: Any) -> "CaseOutcome":
        scores: dict[str, bool | None] = {}
        for name in CHECK_ORDER:
            results = [c.passed for t in turns for c in t.checks if c.name == name]
            applicable = [r for r in results if r is not None]
            scores[name] = None if not applicable else all(applicable)
        applicable = [c.passed for t in turns for c in t.checks if c.passed is not None]
        return cls(turns=turns, error=error, scores=scores,
                   score=round(sum(applicable) / len(applicable), 4) if applicable else 0.0,
                   passed=error is None and bool(turns) and all(t.passed for t in turns), **fields)


class Rate(BaseModel):
    cases: int
    passed: int

    @computed_field  # type: ignore[prop-decorator]
    @property
    def rate(self) -> float:
        return round(self.passed / self.cases, 4) if self.cases else 0.0


class CheckTally(BaseModel):
    passed: int = 0
    failed: int = 0
    not_applicable: int = 0


class JudgeSummary(BaseModel):
    graded: int
    errors: int
    mean_score: float | None
    pass_rate: float | None


class Summary(BaseModel):
    cases: int
    passed: int
    errors: int
    pass_rate: float
    by_scenario: dict[str, Rate]
    by_tag: dict[str, Rate]
    by_check: dict[str, CheckTally]
    round_trips_mean: float
    tokens_mean: float
    tokens_total: int
    latency_mean_s: float
    latency_p95_s: float
    judge: JudgeSummary | None = None

    @classmethod
    def of(cls, cases: list[CaseOutcome]) -> "Summary":
        by_scenario: dict[str, list[bool]] = defaultdict(list)
        by_tag: dict[str, list[bool]] = defaultdict(list)
        for case in cases:
            for name in dict.fromkeys(case.scenario_names):
                by_scenario[name].append(case.passed)
            for tag in case.tags:
                by_tag[tag].append(case.passed)
        by_check = {name: CheckTally() for name in CHECK_ORDER}
        for case in cases:
            for turn in case.turns:
                for check in turn.checks:
                    tally = by_check[check.name]
                    if check.passed is None:
                        tally.not_applicable += 1
                    elif check.passed:
                        tally.passed += 1
                    else:
                        tally.failed += 1
        turns = [t for c in cases for t in c.turns]
        latencies = sorted(t.latency_s for t in turns)
        passed = sum(c.passed for c in cases)
        return cls(
            cases=len(cases), passed=passed, errors=sum(c.error is not None for c in cases),
            pass_rate=round(passed / len(cases), 4) if cases else 0.0,
            by_scenario={k: Rate(cases=len(v), passed=sum(v)) for k, v in sorted(by_scenario.items())},
            by_tag={k: Rate(cases=len(v), passed=sum(v)) for k, v in sorted(by_tag.items())},
            by_check=by_check,
            round_trips_mean=_mean(t.round_trips for t in turns),
            tokens_mean=_mean(t.tokens for t in turns),
            tokens_total=sum(t.tokens for t in turns),
            latency_mean_s=_mean(latencies, digits=3),
            latency_p95_s=round(latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))], 3) if latencies else 0.0,
            judge=_judge_summary(turns),
        )


def _mean(values: Iterable[float], digits: int = 2) -> float:
    items = list(values)
    return round(statistics.fmean(items), digits) if items else 0.0


def _judge_summary(turns: list[TurnRecord]) -> JudgeSummary | None:
    verdicts = [t.judge for t in turns if t.judge is not None]
    if not verdicts:
        return None
    graded = [v for v in verdicts if v.error is None and v.score is not None]
    return JudgeSummary(
        graded=len(graded), errors=len(verdicts) - len(graded),
        mean_score=_mean(v.score for v in graded) if graded else None,  # type: ignore[misc]
        pass_rate=round(sum(v.verdict == "pass" for v in graded) / len(graded), 4) if graded else None,
    )


class RunInfo(BaseModel):
    """What was evaluated, how, and where the answers came from."""

    mode: Literal["replay", "live", "record"]
    model: str
    base_url: str | None = None
    recording: str | None = Field(None, description="cassette set replayed or written")
    answers_from: str = Field(description="who wrote the answers: the model, or a test double named as such")
    test_double: bool = Field(False, description="True when the answers come from a test double, not a model")
    sampling: dict[str, Any] = Field(default_factory=dict)
    judge_model: str | None = None
    started_at: datetime
    duration_s: float = 0.0
    gpudoc_version: str = ""
    suite_cases: int = 0
    langsmith_experiment: str | None = None


class EvalRun(BaseModel):
    """A whole run: ``gpudoc eval --json`` prints it, ``--out`` writes it."""

    run: RunInfo
    summary: Summary
    cases: list[CaseOutcome]
