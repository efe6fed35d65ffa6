"""Grounding: numbers of an answer checked against the turn's evidence."""

from __future__ import annotations

from gpudoc.graph.grounding import unverified_numbers

EVIDENCE = ['{"node":"node-2","gpus":[{"gpu":3,"temp_c":88.63,"util":0.85,"mem_used_mib":81920,'
            '"power_w":412.5}],"time":"2026-11-02T12:00:00Z"}']


def test_rounded_quotes_are_verified():
    answer = "node-2/gpu-3 runs at 88.6 °C (about 89 °C), 88.63 exactly, 85% busy, 81,920 MiB used, 412.5 W."
    assert unverified_numbers(answer, EVIDENCE) == []


def test_invented_and_over_precise_numbers_are_reported_once():
    answer = "GPU 3 is at 91 °C and 88.64 °C; power 500 W, then 500 W again."
    assert unverified_numbers(answer, EVIDENCE) == ["91", "88.64", "500"]


def test_identifiers_ordinals_dates_and_times_are_not_quantities():
    answer = "1. node-2/gpu-3 on A100 x16 since 2026-11-02 at 11:53Z\n2) XID79 on gpu_7\n- 3. item"
    assert unverified_numbers(answer, EVIDENCE) == []
