"""A run's record states the sampling the model was actually asked for.

Why: ``recording.json`` and ``--json``'s ``run`` are how two runs (two models, two settings) are
compared later; a field that reads null while the requests carried the model card's value
misleads whoever compares them.
"""

from __future__ import annotations

from gpudoc.config import Settings
from gpudoc.evals.agent_turns import Sampling


def test_the_recorded_sampling_is_what_the_requests_carry():
    settings = Settings()
    described = Sampling().describe(settings)
    assert described["top_p"] == settings.llm_top_p == 0.95
    assert described["temperature"] == settings.llm_temperature
    assert Sampling(top_p=0.5, temperature=1.0).describe(settings) == {
        **described, "top_p": 0.5, "temperature": 1.0}
