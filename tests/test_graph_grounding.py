"""Grounding: numbers of an answer checked against the turn's evidence."""

from __future__ import annotations

from gpudoc.graph.grounding import unverified_numbers

EVIDENCE = ['{"node":"node-2","gpus":[{"gpu":3,"temp_c":88.63,"util":0.85,"mem_used_mib":81920,'
            '"power_w":412.5}],"time":"2026-11-02T12:00:00Z"}']


def test_rounded_quotes_are_verified():
    answer = "node-2/gpu-3 runs at 88.6 °C (about 89 °C; 88.63 °C exactly), 85% busy, 81,920 MiB used, 412.5 W."
    assert unverified_numbers(answer, EVIDENCE) == []


def test_invented_and_over_precise_numbers_are_reported_once():
    answer = "GPU 3 is at 91 °C and 88.64 °C; power 500 W, then 500 W again."
    assert unverified_numbers(answer, EVIDENCE) == ["91", "88.64", "500"]


def test_identifiers_ordinals_dates_and_times_are_not_quantities():
    answer = "1. node-2/gpu-3 on A100 x16 since 2026-11-02 at 11:53Z\n2) XID79 on gpu_7\n- 3. item"
    assert unverified_numbers(answer, EVIDENCE) == []


# ------------------------------------------------------------------------------------------------
# Against real tool results: unit, subject and precision
# ------------------------------------------------------------------------------------------------

import random  # noqa: E402

import pytest  # noqa: E402

from gpudoc.graph.grounding import check_answer  # noqa: E402
from tests.grounding_statements import (  # noqa: E402
    bare_numbers,
    evidence_texts,
    honest_statements,
    random_statements,
)


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return evidence_texts()


def pass_rate(statements: list[str], texts: list[str]) -> float:
    return sum(not unverified_numbers(s, texts) for s in statements) / len(statements)


def test_random_numbers_rarely_pass_and_honest_ones_always_do(texts):
    rng = random.Random(11)
    assert pass_rate(honest_statements(texts, 300, rng), texts) == 1.0
    assert pass_rate(random_statements(texts, 600, rng), texts) < 0.05
    assert pass_rate(bare_numbers(), texts) < 0.05  # integers 0-100 and 30.0-89.9 stated without a unit


def test_one_node_details_result_no_longer_verifies_most_numbers(texts):
    node_details = texts[0]
    assert '"node":"node-2"' in node_details
    verified = sum(not unverified_numbers(str(n), [node_details]) for n in range(101))
    assert verified <= 10  # the textual check verified 52 of them


def test_the_unit_must_match():
    evidence = ['{"node":"node-2","gpus":[{"gpu":3,"temp_c":88.63,"power_w":412.5}]}']
    assert unverified_numbers("GPU 3 of node-2 is at 88.6 °C and draws 412 W.", evidence) == []
    assert unverified_numbers("GPU 3 of node-2 draws 88.6 W.", evidence) == ["88.6"]


def test_the_subject_must_match():
    evidence = ['{"per_node":[{"node":"node-1","temp_c":{"max":62.0}},{"node":"node-2","temp_c":{"max":90.0}}]}']
    assert unverified_numbers("node-2 peaks at 90 °C.", evidence) == []
    report = check_answer("node-1 peaks at 90 °C.", evidence)
    assert [(n.text, n.unit, n.subject) for n in report.unverified] == [("90", "temperature", "node-1")]
    assert (report.checked, report.verified) == (1, 0)


def test_a_reading_is_not_verified_by_a_limit_of_the_same_value():
    evidence = ['{"node":"node-2","limits":{"slowdown_c":89.0},"gpus":[{"gpu":3,"temp_c":90.0}]}']
    assert unverified_numbers("GPU 3 of node-2 reads 90 °C, above the slowdown limit of 89 °C.", evidence) == []
    assert unverified_numbers("GPU 3 of node-2 reads 89 °C.", evidence) == ["89"]


def test_table_columns_give_units_and_subjects():
    evidence = ['{"node":"node-2","gpus":[{"gpu":3,"temp_c":88.63,"util_pct":79.0},{"gpu":4,"temp_c":51.0}]}']
    table = "node-2:\n\n| GPU | temp °C | util % |\n|---|---|---|\n| 3 | 88.6 | 79 |\n| 4 | 88.6 | 12 |\n"
    assert unverified_numbers(table, evidence) == ["88.6", "12"]  # GPU 4 reads 51.0, not GPU 3's 88.6
    assert [n.subject for n in check_answer(table, evidence).unverified] == ["node-2/gpu-4", "node-2/gpu-4"]
