"""The HTML report: self-contained (no scripts, nothing remote), cluster text escaped, and its charts
drawn in headless Chromium."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path

from gpudoc.evals.report_html import render_report
from gpudoc.evals.results import CaseOutcome, Check, EvalRun, RunInfo, Summary, ToolUse, TurnRecord
from tests.eval_runs import run_eval
from tests.services.chromium import browser_page, chromium_or_skip

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
HOSTILE = '<script>alert(1)</script><img src=x onerror="fetch(\'https://evil.example\')">'


def one_case_run(answer: str) -> EvalRun:
    turn = TurnRecord(question="Is node-2 running hot?", answer=answer, round_trips=2, prompt_tokens=10,
                      tools=[ToolUse(name="get_slurm_jobs", arguments={"user": HOSTILE})],
                      checks=[Check(name="subjects", passed=False, detail=f"not named: {HOSTILE}")])
    case = CaseOutcome.from_turns(turns=[turn], id="c", scenarios=["healthy"], scenario_names=["healthy"], tags=["t"])
    info = RunInfo(mode="live", model=HOSTILE, answers_from="a model", started_at=datetime.now(timezone.utc))
    return EvalRun(run=info, summary=Summary.of([case]), cases=[case])


def test_the_report_is_self_contained_and_escapes_cluster_text():
    html = render_report(one_case_run(f"job name: {HOSTILE}"))
    assert "<script" not in html and "<img" not in html and "onerror=\"" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    external = re.findall(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", html)
    assert external == []
    assert html.count("<svg") == 5


def test_the_report_renders_its_charts_in_chromium(capsys, tmp_path):
    chromium_or_skip()
    report = tmp_path / "report.html"
    call = run_eval(capsys, tmp_path, "--live", "--stub", "keyword", "--tag", "follow-up", "--tag", "nonexistent",
                    "--report", str(report))
    result = call.result
    assert 0 < result["summary"]["passed"] < result["summary"]["cases"]  # a report with passes and failures
    requests: list[str] = []
    with browser_page(width=1200, height=1500) as page:
        page.on("request", lambda request: requests.append(request.url))
        page.goto(report.as_uri())
        assert page.locator("figure.chart").count() == 5
        for figure in page.locator("figure.chart").all():
            box = figure.locator("svg").bounding_box()
            assert box and box["width"] > 200 and box["height"] > 20
        scenarios = page.locator("figure.by-scenario rect.bar")
        assert scenarios.count() == len(result["summary"]["by_scenario"])
        assert all(box and box["width"] > 0 for box in (b.bounding_box() for b in scenarios.all()))
        calls = sum(len(t["tools"]) for c in result["cases"] for t in c["turns"])
        assert page.locator("figure.trajectories rect.chip").count() == calls
        assert page.locator("figure.cost circle.point").count() == len(result["cases"])
        assert page.locator("td.no").count() == result["summary"]["cases"] - result["summary"]["passed"]
        assert "test double" in page.locator(".double").inner_text()
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "eval-report.png"))
        assert page.errors == []
    assert requests and all(url.startswith("file://") for url in requests), requests
