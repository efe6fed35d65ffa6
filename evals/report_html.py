"""The evaluation report: one self-contained HTML file (``gpudoc eval --report FILE.html``).

Why this content: a team choosing a model wants, on one page, who answered (and whether it was a
test double), the pass rate, where it fails (per scenario, per tag, per check), how it works
(each case's tool trajectory), and what it costs (latency and tokens per case), then every case
with its failed checks and the answers themselves. No scripts, no remote resources; charts are
inline SVG; all cluster-derived text is escaped.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

from gpudoc.evals.results import CHECK_ORDER, CaseOutcome, EvalRun
from gpudoc.evals.svg_charts import Bar, Chip, Point, Stack, chip_rows, rate_bars, scatter, stacked_bars
from gpudoc.tools.cluster_tools import TOOL_NAMES

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px auto; max-width: 1160px;
       color: #212121; padding: 0 16px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; }
.sub { color: #616161; margin: 0 0 16px; }
.double { background: #fff8e1; border: 1px solid #f9a825; padding: 8px 12px; border-radius: 6px; margin: 12px 0; }
.kpis { display: flex; flex-wrap: wrap; gap: 12px; margin: 16px 0; }
.kpi { border: 1px solid #e0e0e0; border-radius: 8px; padding: 10px 14px; min-width: 120px; }
.kpi b { display: block; font-size: 22px; } .kpi span { color: #616161; font-size: 12px; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(540px, 1fr)); gap: 20px; }
figure { margin: 0; } figcaption { font-weight: 600; margin-bottom: 6px; }
svg { max-width: 100%; height: auto; font-family: inherit; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid #eeeeee; vertical-align: top; }
td.ok { color: #2e7d32; font-weight: 600; } td.no { color: #c62828; font-weight: 600; }
details { margin: 2px 0; } summary { cursor: pointer; color: #1565c0; }
pre { white-space: pre-wrap; background: #fafafa; border: 1px solid #eeeeee; padding: 8px; border-radius: 4px;
      max-height: 360px; overflow: auto; }
.muted { color: #757575; }
"""


def _kpi(value: str, label: str) -> str:
    return f'<div class="kpi"><b>{escape(value)}</b><span>{escape(label)}</span></div>'


def _figure(caption: str, svg: str, css: str) -> str:
    return f'<figure class="chart {css}"><figcaption>{escape(caption)}</figcaption>{svg}</figure>'


def _trajectory(case: CaseOutcome) -> list[Chip]:
    chips: list[Chip] = []
    for turn_index, turn in enumerate(case.turns):
        for call_index, tool in enumerate(turn.tools):
            chips.append(Chip(tool=tool.name, failed=tool.error_kind is not None,
                              gap_before=turn_index > 0 and call_index == 0))
    return chips


def _case_row(case: CaseOutcome) -> str:
    failed = [c for t in case.turns for c in t.checks if c.passed is False]
    problems = "".join(f"<div><b>{escape(c.name)}</b>: {escape(c.detail)}</div>" for c in failed)
    if case.error:
        problems = f"<div><b>error</b>: {escape(case.error)}</div>" + problems
    turns = []
    for turn in case.turns:
        calls = ", ".join(f"{t.name}({', '.join(f'{k}={v}' for k, v in t.arguments.items())})"
                          + (f" [{t.error_kind}]" if t.error_kind else "") for t in turn.tools) or "none"
        judge = (f"<div class='muted'>judge: {turn.judge.score}/5 {escape(turn.judge.verdict or '')} "
                 f"{escape(turn.judge.reason or turn.judge.error or '')}</div>") if turn.judge else ""
        turns.append(f"<div><b>Q:</b> {escape(turn.question)}</div><div class='muted'>tools: {escape(calls)}; "
                     f"{turn.round_trips} round trip(s), {turn.tokens} tokens, {turn.latency_s:.2f} s</div>"
                     f"{judge}<pre>{escape(turn.answer)}</pre>")
    return (f"<tr><td>{escape(case.id)}</td><td class='{'ok' if case.passed else 'no'}'>"
            f"{'pass' if case.passed else 'FAIL'}</td><td>{case.score:.2f}</td>"
            f"<td>{escape(', '.join(case.scenarios) or 'healthy')}</td>"
            f"<td>{problems or '<span class=muted>-</span>'}<details><summary>conversation</summary>"
            f"{''.join(turns)}</details></td></tr>")


def render_report(result: EvalRun) -> str:
    info, summary = result.run, result.summary
    scenario_bars = [Bar(name, rate.rate, f"({rate.passed}/{rate.cases})")
                     for name, rate in sorted(summary.by_scenario.items(), key=lambda kv: (kv[1].rate, kv[0]))]
    tag_bars = [Bar(name, rate.rate, f"({rate.passed}/{rate.cases})")
                for name, rate in sorted(summary.by_tag.items(), key=lambda kv: (kv[1].rate, kv[0]))]
    checks = [Stack(name, tally.passed, tally.failed) for name in CHECK_ORDER
              if (tally := summary.by_check.get(name)) and tally.passed + tally.failed]
    rows = [(case.id, case.passed, _trajectory(case)) for case in result.cases]
    seen_tools = [t for t in TOOL_NAMES if any(c.tool == t for _, _, chips in rows for c in chips)]
    points = [Point(case.id, sum(t.tokens for t in case.turns), sum(t.latency_s for t in case.turns), case.passed)
              for case in result.cases]
    latency_label = "seconds (replay: client time, not the model's)" if info.mode == "replay" else "seconds"
    double = (f'<div class="double"><b>Answers from a test double, not a model:</b> {escape(info.answers_from)}. '
              "These scores check the client path, the graph and the scorer.</div>") if info.test_double else ""
    judge = _kpi(f"{summary.judge.mean_score}/5", f"judge mean ({info.judge_model}), separate") if summary.judge else ""
    sampling = ", ".join(f"{k}={v}" for k, v in info.sampling.items() if v is not None)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>gpudoc eval: {escape(info.model)} ({summary.pass_rate:.0%})</title><style>{CSS}</style></head>
<body>
<h1>gpudoc evaluation: {escape(info.model)}</h1>
<p class="sub">{escape(info.mode)} run, {escape(info.answers_from)}; started {info.started_at:%Y-%m-%d %H:%M} UTC,
{info.duration_s:.0f} s; {len(result.cases)} of {info.suite_cases} cases; sampling: {escape(sampling or 'server default')};
gpudoc {escape(info.gpudoc_version)}{'; LangSmith experiment ' + escape(info.langsmith_experiment) if info.langsmith_experiment else ''}</p>
{double}
<div class="kpis">{_kpi(f"{summary.pass_rate:.1%}", f"cases passed ({summary.passed}/{summary.cases})")}
{_kpi(str(summary.errors), "cases that could not run")}{_kpi(f"{summary.round_trips_mean:g}", "model round trips per turn")}
{_kpi(f"{summary.tokens_mean:,.0f}", "tokens per turn")}{_kpi(f"{summary.latency_p95_s:.2f} s", "latency p95 per turn")}{judge}</div>
<div class="grid">
{_figure("Pass rate per scenario", rate_bars(scenario_bars, title="Pass rate per scenario"), "by-scenario")}
{_figure("Pass rate per tag", rate_bars(tag_bars, title="Pass rate per tag"), "by-tag")}
{_figure("Checks passed and failed (all turns)", stacked_bars(checks, title="Checks"), "by-check")}
{_figure("Latency and tokens per case", scatter(points, title="Latency and tokens", x_label="tokens", y_label=latency_label), "cost")}
</div>
<h2>Tool trajectories</h2>
{_figure("Tool calls per case, in order (a gap starts the next turn; red outline: the call failed)",
         chip_rows(rows, seen_tools, title="Tool trajectories"), "trajectories")}
<h2>Cases</h2>
<table><thead><tr><th>case</th><th>result</th><th>score</th><th>scenarios</th><th>failed checks</th></tr></thead>
<tbody>{''.join(_case_row(case) for case in result.cases)}</tbody></table>
</body></html>
"""


def write_report(result: EvalRun, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(result), encoding="utf-8")
