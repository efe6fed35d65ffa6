"""``gpudoc eval --langsmith``: the suite as a dataset, the run as an experiment, one traced run per
case linked to its example (with the agent's runs nested and thread id, source and scenario as
metadata), and gpudoc's scores as feedback - sent by the langsmith SDK to a recording double."""

from __future__ import annotations

import pytest

from gpudoc.evals.cases import load_suite
from gpudoc.evals.langsmith_experiment import example_id
from tests.doubles.langsmith_recorder import LangSmithRecorder
from tests.eval_runs import run_eval
from tests.services import free_port

CASES = ["thermal-node2-hot", "followup-hot-then-what-to-do"]


@pytest.fixture
def langsmith_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LANGSMITH_TRACING", "LANGCHAIN_TRACING_V2", "LANGSMITH_PROJECT", "LANGSMITH_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LANGSMITH_API_KEY", "test-key")


def test_a_run_becomes_an_experiment_with_scores_as_feedback(capsys, tmp_path, langsmith_env):
    cases = [arg for case in CASES for arg in ("--case", case)]
    with LangSmithRecorder() as recorder:
        call = run_eval(capsys, tmp_path, "--langsmith", "--langsmith-endpoint", recorder.url, *cases)
        again = run_eval(capsys, tmp_path, "--langsmith", "--langsmith-endpoint", recorder.url, "--case", CASES[0])
    assert call.code == 0 and call.result["summary"]["passed"] == 2  # replay is untouched by the tracing traffic
    assert recorder.unanswered() == []
    multipart = [r for r in recorder.state.requests if r.path == "/runs/multipart"]
    assert multipart and all(r.headers.get("content-encoding") == "zstd" for r in multipart)  # the SDK's default

    # the suite as one dataset, uploaded once
    (dataset,) = recorder.datasets.values()
    assert dataset["name"] == "gpudoc-eval"
    suite = load_suite()
    assert len(recorder.examples) == len(suite)
    example = recorder.examples[str(example_id(dataset["id"], CASES[1]))]
    assert example["inputs"]["questions"] == ["Is node-2 running hot?", "What should I do about it?"]
    assert example["metadata"]["case"] == CASES[1]

    # one experiment per run, tied to the dataset and closed with the summary
    first, second = sorted(recorder.sessions.values(), key=lambda s: s["start_time"])
    assert first["reference_dataset_id"] == dataset["id"] == second["reference_dataset_id"]
    assert first["name"].startswith("gpudoc-eval-") and first["name"] == call.result["run"]["langsmith_experiment"]
    assert first["end_time"] and first["extra"]["metadata"]["pass_rate"] == 1.0

    # one root run per case, linked to its example, with the agent's runs nested under it
    roots = {r["name"]: r for r in recorder.runs.values() if not r.get("parent_run_id") and r["session_name"] == first["name"]}
    assert set(roots) == set(CASES)
    for case_id, root in roots.items():
        assert root["reference_example_id"] == str(example_id(dataset["id"], case_id))
        metadata = root["extra"]["metadata"]
        assert metadata["thread_id"] == f"eval-{case_id}" and metadata["source"] == "sim"
        assert metadata["scenario"] == "thermal-throttle@node-2/gpu-3"
        assert root["outputs"]["passed"] is True and root["end_time"]
        nested = [r for r in recorder.runs.values() if r.get("trace_id") == root["id"] and r["id"] != root["id"]]
        llm_runs = [r for r in nested if r["run_type"] == "llm"]
        assert len(llm_runs) == 2 * len(next(c for c in call.result["cases"] if c["id"] == case_id)["turns"])
        assert all(r["extra"]["metadata"]["scenario"] == "thermal-throttle@node-2/gpu-3" for r in llm_runs)
        assert all(r["extra"]["metadata"]["thread_id"] == f"eval-{case_id}" for r in llm_runs)

    # gpudoc's scores as feedback on each case's run
    for case in call.result["cases"]:
        feedback = {f["key"]: f for f in recorder.feedback if f["run_id"] == roots[case["id"]]["id"]}
        assert feedback["gpudoc.passed"]["score"] == 1.0 and feedback["gpudoc.score"]["score"] == case["score"]
        applicable = {f"gpudoc.{k}" for k, v in case["scores"].items() if v is not None}
        assert applicable <= set(feedback) and "gpudoc.latency" not in feedback  # not measured in a replay
        assert "judge.score" not in feedback  # no judge unless asked


def test_an_unreachable_langsmith_fails_before_the_run(capsys, tmp_path, langsmith_env):
    call = run_eval(capsys, tmp_path, "--langsmith", "--langsmith-endpoint", f"http://127.0.0.1:{free_port()}",
                    "--case", CASES[0])
    assert call.code == 2 and call.result is None
    assert "gpudoc: error: LangSmith at http://127.0.0.1:" in call.err


def test_without_the_flag_a_run_is_not_traced_even_when_tracing_is_on(capsys, tmp_path, langsmith_env, monkeypatch):
    with LangSmithRecorder() as recorder:
        monkeypatch.setenv("LANGSMITH_TRACING", "true")
        monkeypatch.setenv("LANGSMITH_ENDPOINT", recorder.url)
        call = run_eval(capsys, tmp_path, "--live", "--stub", "--case", CASES[0])
    assert call.code == 0 and call.case(CASES[0])["passed"]
    assert recorder.state.requests == []  # nothing sent (nor, in a replay or a recording, put on a cassette)
