"""The evaluation cases replayed from their committed cassettes (recorded from the stub vLLM server)."""

from __future__ import annotations

import pytest

from evals.run import CASES, cassette_recorder, run_all


async def test_every_case_replays_and_passes():
    scores = await run_all(CASES, record=False, base_url=None)
    assert [s.id for s in scores] == [c.id for c in CASES]
    for s in scores:
        assert s.passed, s
        assert s.llm_round_trips == 2 and s.unverified_numbers == []


async def test_a_missing_cassette_fails_instead_of_calling_out(tmp_path):
    recorder = cassette_recorder(record=False)
    recorder.cassette_library_dir = str(tmp_path)
    from evals.run import REPLAY_BASE_URL, run_case

    with pytest.raises(Exception, match="Can.t play back"):
        await run_case(CASES[0], base_url=REPLAY_BASE_URL, recorder=recorder)
