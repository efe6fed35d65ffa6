"""``gpudoc eval`` on the command line: listing, filters, errors a user can fix, the optional judge,
and the comparison notebook over two result files."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from gpudoc.evals.judge import parse_verdict
from gpudoc.evals.progress import ProgressBar
from tests.doubles.eval_policies import fixed_tool_policy
from tests.doubles.stub_vllm import StubReply, StubVllmServer
from tests.eval_runs import run_eval, stub_model
from tests.services import free_port
from tests.test_notebooks import NOTEBOOKS, run_notebook


def test_list_shows_the_selected_cases(capsys, tmp_path):
    call = run_eval(capsys, tmp_path, "--list", "--tag", "follow-up")
    assert call.code == 0 and call.result is None
    lines = call.out.strip().splitlines()
    assert len(lines) == 6 and all(line.startswith("followup-") for line in lines)
    assert "What should I do about it?" in call.out


@pytest.mark.parametrize("args, message", [
    (["--case", "no-such-case"], "no case matches no-such-case"),
    (["--case", "healthy-overview", "--tag", "slurm"], "no case matches healthy-overview and is tagged slurm"),
    (["--tag", "no-such-tag"], "no case is tagged no-such-tag"),
    (["--temperature", "0.6"], "apply to --live and --record"),
    (["--recording", "/nonexistent/recording"], "holds no recording (recording.json missing)"),
    (["--min-pass-rate", "2"], "--min-pass-rate must be between 0 and 1"),
    (["--concurrency", "4"], "--concurrency applies to --live"),
    (["--live", "--stub", "--llm-base-url", "http://x/v1"], "leave out --llm-base-url"),
    (["--suite", "/nonexistent"], "no suite files"),
])
def test_mistakes_are_one_clear_line(capsys, tmp_path, args, message):
    call = run_eval(capsys, tmp_path, *args)
    assert call.code == 2 and message in call.err and "Traceback" not in call.err


def test_out_of_range_sampling_is_refused_by_the_parser(capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_:
        run_eval(capsys, tmp_path, "--live", "--temperature", "7")
    assert exit_.value.code == 2 and "7 is out of range; use 0..2" in capsys.readouterr().err


def test_the_progress_bar_draws_one_line_in_place():
    stream = io.StringIO()
    bar = ProgressBar(2, stream=stream, enabled=True, width=10)
    bar.advance("first-case", True)
    bar.advance("second-case", False)
    bar.close()
    drawn = stream.getvalue()
    assert "\r[#####.....] 1/2 1 passed" in drawn and "\r[##########] 2/2 1 passed" in drawn and "\n" not in drawn
    silent = io.StringIO()
    ProgressBar(2, stream=silent).advance("x", True)  # not a terminal: nothing
    assert silent.getvalue() == ""


def test_live_without_a_model_says_so_before_running(capsys, tmp_path):
    call = run_eval(capsys, tmp_path, "--live", "--llm-base-url", f"http://127.0.0.1:{free_port()}/v1")
    assert call.code == 2 and "no model to evaluate: LLM endpoint" in call.err and call.result is None


def test_exit_code_follows_the_pass_rate(capsys, tmp_path):
    with stub_model(fixed_tool_policy, "fixed-tool") as live:
        failing = run_eval(capsys, tmp_path, *live, "--case", "healthy-overview")
        tolerated = run_eval(capsys, tmp_path, *live, "--case", "healthy-overview", "--min-pass-rate", "0")
    assert failing.result["summary"]["passed"] == 0 and failing.code == 1 and tolerated.code == 0


# ---------------------------------------------------------------------------------------------
# The optional judge
# ---------------------------------------------------------------------------------------------


def judge_policy(reply: str):
    def policy(body: dict[str, Any]) -> StubReply:
        prompt = body["messages"][-1]["content"]
        assert "Tool results:" in prompt and "Answer:" in prompt and "tools" not in body
        return StubReply(content=reply)
    return policy


@pytest.mark.parametrize("reply, verdict", [
    ('{"score": 5, "verdict": "pass", "reason": "right GPU, right cause"}', (5, "pass", None)),
    ('<think>hmm</think>Here: {"score": "2", "reason": "vague"}', (2, "fail", None)),
    ("</think>{\"score\": 4}", (4, "pass", None)),
    ("I think it is fine.", (None, None, "holds no JSON object")),
    ('{"score": 9}', (None, None, "no score from 1 to 5")),
    ("{score: 3}", (None, None, "not valid JSON")),
])
def test_judge_replies_are_read_or_reported_as_unreadable(reply, verdict):
    parsed = parse_verdict(reply)
    assert (parsed.score, parsed.verdict) == verdict[:2]
    assert (parsed.error is None) if verdict[2] is None else verdict[2] in parsed.error


def test_the_judge_is_off_by_default_and_reported_apart_from_the_scores(capsys, tmp_path):
    plain = run_eval(capsys, tmp_path, "--case", "thermal-node2-hot")
    assert plain.result["summary"]["judge"] is None and plain.case("thermal-node2-hot")["turns"][0]["judge"] is None
    with StubVllmServer(policy=judge_policy('{"score": 2, "verdict": "fail", "reason": "too long"}')) as url:
        judged = run_eval(capsys, tmp_path, "--case", "thermal-node2-hot", "--judge", "--judge-base-url", url)
    case = judged.case("thermal-node2-hot")
    assert case["turns"][0]["judge"] == {"score": 2, "verdict": "fail", "reason": "too long", "error": None}
    assert case["passed"] and judged.code == 0  # the judge never changes a score
    assert judged.result["summary"]["judge"] == {"graded": 1, "errors": 0, "mean_score": 2.0, "pass_rate": 0.0}
    assert judged.result["run"]["judge_model"] and "judge (" in judged.out


def test_an_unreadable_judge_is_an_error_on_the_verdict_not_a_failed_run(capsys, tmp_path):
    with StubVllmServer(policy=judge_policy("no idea")) as url:
        judged = run_eval(capsys, tmp_path, "--case", "thermal-node2-hot", "--judge", "--judge-base-url", url)
    assert judged.code == 0
    verdict = judged.case("thermal-node2-hot")["turns"][0]["judge"]
    assert verdict["score"] is None and "holds no JSON object" in verdict["error"]
    assert judged.result["summary"]["judge"]["errors"] == 1


# ---------------------------------------------------------------------------------------------
# Comparing two result files
# ---------------------------------------------------------------------------------------------


def test_the_comparison_notebook_runs_on_two_result_files(capsys, tmp_path, monkeypatch):
    a = run_eval(capsys, tmp_path, "--tag", "nonexistent")
    with stub_model(fixed_tool_policy, "fixed-tool") as live:
        b = run_eval(capsys, tmp_path, *live, "--tag", "nonexistent", "--tag", "alerts")
    files = sorted(tmp_path.glob("result-*.json"))
    monkeypatch.setenv("GPUDOC_EVAL_A", str(files[0]))
    monkeypatch.setenv("GPUDOC_EVAL_B", str(files[1]))
    namespace = run_notebook(NOTEBOOKS / "eval_report.ipynb")
    comparison = namespace["comparison"]
    regressed = {c.id for c in comparison.regressions}
    assert regressed == {c["id"] for c in a.result["cases"] if c["passed"]} - {
        c["id"] for c in b.result["cases"] if c["passed"]}
    assert comparison.only_in_b == [c["id"] for c in b.result["cases"] if "alerts" in c["tags"]]
    assert comparison.only_in_a == [] and regressed
    assert comparison.metrics[0].metric == "pass rate" and comparison.metrics[0].delta < 0
    assert "test double" in comparison.a_label
    assert set(namespace["charts"]) == {"A", "B"} and all("<svg" in svg for svg in namespace["charts"].values())
    printed = capsys.readouterr().out
    assert "regression(s): passed in A, failed in B" in printed


# ---------------------------------------------------------------------------------------------
# Recording, and live runs in parallel
# ---------------------------------------------------------------------------------------------


def test_record_writes_labelled_cassettes_that_replay(capsys, tmp_path):
    directory = tmp_path / "my-recording"
    healthy_cluster = ["--case", "followup-overview-then-node4", "--case", "missing-node*"]  # one cluster, cheap
    recorded = run_eval(capsys, tmp_path, "--record", "--stub", "--recording", str(directory), *healthy_cluster)
    assert recorded.code == 0 and recorded.result["run"]["mode"] == "record"
    manifest = json.loads((directory / "recording.json").read_text())
    assert manifest["test_double"] is True and "test double" in manifest["answers_from"]
    assert sorted(manifest["cases"]) == sorted(c["id"] for c in recorded.result["cases"])
    assert sorted(p.stem for p in directory.glob("*.yaml")) == sorted(manifest["cases"])
    assert "authorization" not in (directory / "followup-overview-then-node4.yaml").read_text().lower()
    again = run_eval(capsys, tmp_path, "--record", "--stub", "--recording", str(directory), "--case", "alerts-firing-healthy")
    assert again.code == 0
    merged = json.loads((directory / "recording.json").read_text())["cases"]
    assert "alerts-firing-healthy" in merged and set(manifest["cases"]) <= set(merged)  # a partial re-record adds
    replayed = run_eval(capsys, tmp_path, "--recording", str(directory), *healthy_cluster)
    assert replayed.result["summary"]["passed"] == replayed.result["summary"]["cases"] == len(manifest["cases"]) == 3
    assert "replay of 'my-recording'" in replayed.result["run"]["answers_from"]


def test_live_cases_can_run_in_parallel_with_the_same_scores(capsys, tmp_path):
    serial = run_eval(capsys, tmp_path, "--live", "--stub", "--tag", "nonexistent")
    parallel = run_eval(capsys, tmp_path, "--live", "--stub", "--tag", "nonexistent", "--concurrency", "4")
    assert [c["id"] for c in parallel.result["cases"]] == [c["id"] for c in serial.result["cases"]]
    assert [c["scores"] for c in parallel.result["cases"]] == [c["scores"] for c in serial.result["cases"]]


def test_a_live_run_against_a_stub_started_by_hand_is_recorded_as_a_test_double(capsys, tmp_path):
    report = tmp_path / "report.html"
    with StubVllmServer() as url:  # serves the Nemotron model id gpudoc asks for, as a hand-started stub does
        call = run_eval(capsys, tmp_path, "--live", "--llm-base-url", url, "--case", "healthy-overview",
                        "--report", str(report))
    run = call.result["run"]
    assert run["test_double"] is True
    assert run["model"] == "stub vLLM, keyword policy (test double)" and "Nemotron" not in run["model"]
    assert run["answers_from"] == f"stub vLLM, keyword policy at {url} (a test double, not a model)"
    assert "Answers from a test double, not a model" in report.read_text()
