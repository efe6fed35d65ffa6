"""What every way of reading Slurm shares: one snapshot at a time, shared by concurrent callers.

Why share: one agent round calls ``get_slurm_status``, ``get_slurm_jobs``, ``get_node_details``
and ``diagnose_cluster`` in parallel, and each wants the scheduler's view. Fetching it once and
handing the same snapshot to every caller of that moment costs slurmctld one set of RPCs instead
of four, and the answers agree with each other. A snapshot is reused for ``max_age_s`` (a few
seconds: fresh enough for "is node-3 drained now?"); a failure is never cached.

What the snapshot could not read (``SlurmSnapshot.notes``) is noted (``sources.notes``) in every
caller's own context, also when the snapshot came from another caller's fetch or the cache, so
each tool output and each diagnosis says what is missing.
"""

from __future__ import annotations

import abc
import asyncio
import time

from gpudoc.tools.models import SlurmSnapshot
from gpudoc.tools.sources.notes import note

#: how long one snapshot answers later calls
SNAPSHOT_MAX_AGE_S = 5.0


class SlurmClient(abc.ABC):
    """Reads the scheduler's view from one Slurm cluster (slurmrestd or the CLI)."""

    #: how the facts are read, for messages and ``SchedulerHealth.api``: "slurmrestd", "Slurm CLI"
    kind: str = "slurm"

    def __init__(self, *, max_age_s: float = SNAPSHOT_MAX_AGE_S):
        self.max_age_s = max_age_s
        self._cached: tuple[float, SlurmSnapshot] | None = None
        self._inflight: asyncio.Task[SlurmSnapshot] | None = None
        self._inflight_loop: asyncio.AbstractEventLoop | None = None

    @abc.abstractmethod
    async def _fetch(self) -> SlurmSnapshot:
        """Read a fresh snapshot; raise ``SourceError`` subclasses with actionable messages."""

    async def snapshot(self) -> SlurmSnapshot:
        """The scheduler's view: a recent one if there is, else one fetch shared by all callers."""
        if self._cached is not None and time.monotonic() - self._cached[0] < self.max_age_s:
            snapshot = self._cached[1]
        else:
            loop = asyncio.get_running_loop()
            if self._inflight is None or self._inflight_loop is not loop or self._inflight.done():
                self._inflight = loop.create_task(self._fetch_and_keep())
                self._inflight_loop = loop
            # shield: one caller cancelled (a tool timeout) must not cancel the fetch the others await
            snapshot = await asyncio.shield(self._inflight)
        for line in snapshot.notes:
            note(line)
        return snapshot

    async def _fetch_and_keep(self) -> SlurmSnapshot:
        snapshot = await self._fetch()
        self._cached = (time.monotonic(), snapshot)
        return snapshot

    def forget(self) -> None:
        """Drop the kept snapshot so the next call reads Slurm again (tests, after a change)."""
        self._cached = None

    async def aclose(self) -> None:
        """Release connections. Safe to call more than once."""
