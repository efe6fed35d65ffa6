"""The evaluation suite: what it covers, and that a broken case file fails at load time, clearly."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from gpudoc.evals.cases import SuiteError, load_suite, select
from gpudoc.tools.sim.scenarios import SCENARIOS
from gpudoc.tools.sim.source import SimSource

SUITE = load_suite()


def test_the_suite_covers_every_scenario_several_ways():
    assert len(SUITE) >= 60
    per_scenario = Counter(name for case in SUITE for name in set(case.scenario_names))
    # hostile-names comes with its own cases when the simulator has it
    assert set(SCENARIOS) - {"hostile-names"} <= set(per_scenario), set(SCENARIOS) - set(per_scenario)
    assert min(per_scenario[name] for name in SCENARIOS if name != "hostile-names") >= 3, per_scenario
    tags = Counter(tag for case in SUITE for tag in case.tags)
    for kind in ("negative", "follow-up", "nonexistent", "slurm", "combo"):
        assert tags[kind] >= 4, (kind, tags)
    assert any(len(case.turns) >= 3 for case in SUITE)
    assert any(case.gpu_model == "h100" for case in SUITE) and any(case.nodes == 16 for case in SUITE)


def test_expected_subjects_are_what_the_simulator_injected():
    """A typo in a subject would make a case unpassable; every named GPU must be a ground truth."""
    for case in SUITE:
        source = SimSource.create(seed=case.seed, nodes=case.nodes, gpu_model=case.gpu_model,
                                  scenarios=case.scenarios, realtime=False)
        truths = {t.subject for t in source.ground_truth}
        nodes = {t.split("/", 1)[0] for t in truths} | {f"node-{p.node}" for p in source.placements if p.node is not None}
        asked = " ".join(case.questions).lower()
        for turn in case.turns:
            for subject in turn.expect.subjects:
                if subject == "truth" or subject in truths:
                    continue
                assert "/" not in subject and (subject in nodes or subject in asked), (case.id, subject, truths)


def write(tmp_path: Path, text: str, name: str = "cases.yaml") -> Path:
    (tmp_path / name).write_text(text)
    return tmp_path


@pytest.mark.parametrize("body, message", [
    ("cases:\n  - id: a\n    question: q\n    expect: {tools: [get_nothing]}\n", "unknown tool"),
    ("cases:\n  - id: a\n    question: q\n    expect: {cause: {rules: [gpu.melted]}}\n", "unknown rule id"),
    ("cases:\n  - id: a\n    scenarios: [meltdown]\n    question: q\n", "Unknown scenario 'meltdown'"),
    ("cases:\n  - id: a\n    scenarios: [host-down@node-9]\n    question: q\n", "outside the simulated cluster"),
    ("cases:\n  - id: a\n    question: q\n    expect: {number: {quantity: happiness}}\n", "unknown quantity"),
    ("cases:\n  - id: a\n    question: q\n    expect: {says: ['(']}\n", "bad regex"),
    ("cases:\n  - id: a\n    question: q\n    expect: {subjects: [gpu-3]}\n", "subjects look like"),
    ("cases:\n  - id: a\n    question: q\n    turns: [{question: r}]\n", "either question"),
    ("cases:\n  - id: a\n    question: q\n    expect: {tools: [get_alerts], tool: x}\n", "Extra inputs"),
    ("cases:\n  - id: a\n    question: q\n  - id: a\n    question: r\n", "already used"),
    ("cases: [\n", "not valid YAML"),
    ("defaults: {}\n", "'cases' list"),
])
def test_a_broken_case_fails_at_load_time_naming_file_and_case(tmp_path, body, message):
    with pytest.raises(SuiteError) as error:
        load_suite(write(tmp_path, body))
    assert message in str(error.value) and "cases.yaml" in str(error.value)


def test_defaults_merge_tags_and_budgets_into_every_turn(tmp_path):
    suite = load_suite(write(tmp_path, (
        "defaults: {tags: [slurm], budget: {round_trips: 3}}\n"
        "cases:\n"
        "  - id: a\n    tags: [jobs]\n    question: q\n"
        "  - id: b\n    turns: [{question: q}, {question: r, expect: {budget: {round_trips: 5}}}]\n")))
    assert suite[0].tags == ["slurm", "jobs"] and suite[0].turns[0].expect.budget.round_trips == 3
    assert suite[0].turns[0].expect.budget.tokens == 40_000  # the suite-wide default
    assert [t.expect.budget.round_trips for t in suite[1].turns] == [3, 5]


def test_selection_by_id_pattern_and_tag_and_clear_errors():
    assert {c.id for c in select(SUITE, ids=["followup-*"])} == {c.id for c in SUITE if c.id.startswith("followup-")}
    assert all("negative" in c.tags for c in select(SUITE, tags=["negative"]))
    with pytest.raises(SuiteError, match="no case matches nope"):
        select(SUITE, ids=["nope"])
    with pytest.raises(SuiteError, match="no case is tagged nope; tags: "):
        select(SUITE, tags=["nope"])
