"""Comparing two evaluation results (two models, two versions of gpudoc, two samplings).

Why a module rather than notebook code: ``notebooks/eval_report.ipynb`` shows the comparison,
but the arithmetic (which cases regressed, per-scenario deltas) is tested here, and scripts can
use it without Jupyter.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from gpudoc.evals.results import CHECK_ORDER, EvalRun


class MetricRow(BaseModel):
    metric: str
    a: float
    b: float

    @property
    def delta(self) -> float:
        return round(self.b - self.a, 4)


class CaseChange(BaseModel):
    id: str
    a_passed: bool
    b_passed: bool
    b_failed_checks: list[str]


class Comparison(BaseModel):
    a_label: str
    b_label: str
    metrics: list[MetricRow]
    by_scenario: list[MetricRow]
    by_check: list[MetricRow]
    regressions: list[CaseChange]
    improvements: list[CaseChange]
    only_in_a: list[str]
    only_in_b: list[str]


def load_result(path: str | Path) -> EvalRun:
    return EvalRun.model_validate_json(Path(path).read_text())


def label_of(run: EvalRun) -> str:
    info = run.run
    return f"{info.model} ({info.mode}{', test double' if info.test_double else ''}, {info.started_at:%Y-%m-%d %H:%M})"


def _check_rate(run: EvalRun, check: str) -> float:
    tally = run.summary.by_check.get(check)
    if tally is None or tally.passed + tally.failed == 0:
        return 0.0
    return round(tally.passed / (tally.passed + tally.failed), 4)


def compare(a: EvalRun, b: EvalRun) -> Comparison:
    """B measured against A, over the cases both ran (cases only one ran are listed apart)."""
    a_cases, b_cases = {c.id: c for c in a.cases}, {c.id: c for c in b.cases}
    shared = [case_id for case_id in a_cases if case_id in b_cases]
    changes = [CaseChange(id=i, a_passed=a_cases[i].passed, b_passed=b_cases[i].passed,
                          b_failed_checks=[k for k, v in b_cases[i].scores.items() if v is False]) for i in shared]
    sa, sb = a.summary, b.summary
    metrics = [
        MetricRow(metric="pass rate", a=sa.pass_rate, b=sb.pass_rate),
        MetricRow(metric="cases passed", a=sa.passed, b=sb.passed),
        MetricRow(metric="model round trips per turn", a=sa.round_trips_mean, b=sb.round_trips_mean),
        MetricRow(metric="tokens per turn", a=sa.tokens_mean, b=sb.tokens_mean),
        MetricRow(metric="latency mean per turn (s)", a=sa.latency_mean_s, b=sb.latency_mean_s),
        MetricRow(metric="latency p95 per turn (s)", a=sa.latency_p95_s, b=sb.latency_p95_s),
    ]
    if sa.judge and sb.judge and sa.judge.mean_score is not None and sb.judge.mean_score is not None:
        metrics.append(MetricRow(metric="judge mean score (separate)", a=sa.judge.mean_score, b=sb.judge.mean_score))
    scenarios = sorted(set(sa.by_scenario) | set(sb.by_scenario))
    return Comparison(
        a_label=label_of(a), b_label=label_of(b), metrics=metrics,
        by_scenario=[MetricRow(metric=name, a=sa.by_scenario[name].rate if name in sa.by_scenario else 0.0,
                               b=sb.by_scenario[name].rate if name in sb.by_scenario else 0.0) for name in scenarios],
        by_check=[MetricRow(metric=name, a=_check_rate(a, name), b=_check_rate(b, name)) for name in CHECK_ORDER],
        regressions=[c for c in changes if c.a_passed and not c.b_passed],
        improvements=[c for c in changes if not c.a_passed and c.b_passed],
        only_in_a=[i for i in a_cases if i not in b_cases], only_in_b=[i for i in b_cases if i not in a_cases],
    )


def format_rows(rows: list[MetricRow], *, title: str, percent: bool = False) -> str:
    width = max([len(title), *(len(r.metric) for r in rows)]) + 2

    def show(value: float) -> str:
        return f"{value:.1%}" if percent else f"{value:g}"

    lines = [f"{title:<{width}} {'A':>10} {'B':>10} {'B - A':>10}"]
    lines += [f"{r.metric:<{width}} {show(r.a):>10} {show(r.b):>10} {('+' if r.delta > 0 else '') + show(r.delta):>10}"
              for r in rows]
    return "\n".join(lines)
