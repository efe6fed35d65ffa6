"""The whole suite, end to end through ``gpudoc eval``: the committed replay, and scripted policies
(test doubles in tests/doubles/eval_policies.py) on the stub vLLM server through ``--live``.

These are the scorer's own tests: a correct policy must pass, a policy that always calls one tool
and quotes a number must fail, a policy that invents numbers must fail grounding.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from gpudoc.evals import runner
from gpudoc.evals.cases import load_suite
from gpudoc.tools.sim.scenarios import SCENARIOS
from tests.doubles.eval_policies import fixed_tool_policy, inventing_policy, reference_policy
from tests.eval_runs import run_eval, stub_model


@pytest.fixture(scope="module", autouse=True)
def shared_clusters() -> Iterator[None]:
    """Let the four suite runs of this module share the simulated clusters (built once each)."""
    size = runner.SOURCES.size
    runner.SOURCES.size = 64
    yield
    runner.SOURCES.size = size
    runner.SOURCES.clear()


def test_replay_of_the_committed_recording_passes_at_least_90_percent(capsys, tmp_path: Path) -> None:
    call = run_eval(capsys, tmp_path)
    assert call.code == 0, call.out[-3000:]
    result = call.result
    assert result["run"]["mode"] == "replay" and result["run"]["test_double"] is True
    assert "test double" in result["run"]["answers_from"]
    summary = result["summary"]
    assert summary["cases"] >= 60 and summary["cases"] == len(load_suite())
    assert summary["pass_rate"] >= 0.9, [c["id"] for c in result["cases"] if not c["passed"]]
    assert summary["errors"] == 0
    assert set(summary["by_scenario"]) >= set(SCENARIOS)
    for case in result["cases"]:
        assert {"id", "scenarios", "passed", "scores", "score", "turns"} <= set(case)
        for turn in case["turns"]:
            assert turn["round_trips"] >= 1 and turn["tokens"] > 0
            latency = next(c for c in turn["checks"] if c["name"] == "latency")
            assert latency["passed"] is None  # replayed time is not the model's
    assert f"{summary['passed']}/{summary['cases']} cases passed" in call.out


def test_a_correct_policy_scores_at_least_90_percent_live(capsys, tmp_path: Path) -> None:
    with stub_model(reference_policy, "reference") as live:
        call = run_eval(capsys, tmp_path, *live)
    run = call.result["run"]
    assert run["mode"] == "live" and run["model"] == "stub vLLM, reference policy (test double)"
    assert run["test_double"] is True
    assert call.result["summary"]["pass_rate"] >= 0.9, call.out[-3000:]
    assert call.code == 0


def test_a_dumb_policy_scores_at_most_20_percent_live(capsys, tmp_path: Path) -> None:
    """Always get_cluster_status, then quote one number from it: grounded, and useless."""
    with stub_model(fixed_tool_policy, "fixed-tool") as live:
        call = run_eval(capsys, tmp_path, *live)
    summary = call.result["summary"]
    assert summary["cases"] >= 60
    assert summary["pass_rate"] <= 0.2, summary
    assert call.code == 1  # below --min-pass-rate
    turns = [t for c in call.result["cases"] for t in c["turns"]]
    assert all(t["unverified_numbers"] == [] for t in turns)  # it fails on substance, not on grounding
    assert summary["by_check"]["subjects"]["failed"] > 0 and summary["by_check"]["cause"]["failed"] > 0


def test_a_policy_that_invents_numbers_fails_grounding(capsys, tmp_path: Path) -> None:
    with stub_model(inventing_policy, "inventing") as live:
        call = run_eval(capsys, tmp_path, *live)
    cases = call.result["cases"]
    assert all(c["scores"]["grounding"] is False for c in cases), [c["id"] for c in cases if c["scores"]["grounding"]]
    assert call.result["summary"]["passed"] == 0
    assert any("17.5" in t["unverified_numbers"] for c in cases for t in c["turns"])
