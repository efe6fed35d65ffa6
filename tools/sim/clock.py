"""The simulated cluster's clock: frozen at a scenario's "now" for tests, or following wall time.

Why its own object: every fact (current readings, history windows, Slurm times, alert events)
is a function of this clock, so freezing it makes the whole cluster reproducible, and
``advance`` lets tests walk time forward without sleeping.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

#: The fixed "now" of a frozen simulation: deterministic for tests and evals.
DEFAULT_NOW = datetime(2026, 11, 2, 12, 0, 0, tzinfo=timezone.utc)


class SimClock:
    """A clock anchored at ``anchor``; with ``realtime`` it moves on with the wall clock."""

    def __init__(self, anchor: datetime, *, realtime: bool):
        if anchor.tzinfo is None:
            raise ValueError("the simulation clock needs a timezone-aware datetime")
        self.anchor = anchor.astimezone(timezone.utc)
        self.realtime = realtime
        self._wall_at_anchor = time.monotonic()
        self._offset_s = 0.0

    def now(self) -> datetime:
        return self.anchor + timedelta(seconds=self.elapsed_s())

    def elapsed_s(self) -> float:
        """Seconds since the anchor (the scenario's "now" at creation)."""
        wall = time.monotonic() - self._wall_at_anchor if self.realtime else 0.0
        return wall + self._offset_s

    def advance(self, seconds: float) -> None:
        """Move the clock forward (tests; also works on a realtime clock)."""
        if seconds < 0:
            raise ValueError("the simulation clock cannot go backwards")
        self._offset_s += seconds
