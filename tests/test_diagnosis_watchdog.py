"""Diagnosis through the GPU Watchdog API: the backend's clock, not ours, decides what is stale."""

from __future__ import annotations

import httpx

from gpudoc.tools.diagnosis.engine import diagnose
from gpudoc.tools.sim.source import SimSource
from gpudoc.tools.sim.watchdog_api import create_watchdog_app
from gpudoc.tools.sources.watchdog import WatchdogSource


async def test_frozen_backend_is_not_mistaken_for_stale_gpus() -> None:
    # The simulator is frozen hours before the wall clock; the Slurm endpoint carries no time.
    sim = SimSource.create(nodes=8, realtime=False, scenarios=["host-down@node-6"])
    source = WatchdogSource("http://watchdog.test", transport=httpx.ASGITransport(app=create_watchdog_app(sim)))
    try:
        report = await diagnose(source)
    finally:
        await source.aclose()
    serious = [(f.subject, f.rule) for f in report.findings if f.severity != "info"]
    assert serious == [("node-6", "node.host_down")]
    # What the API cannot show is listed as not examined, not reported as healthy.
    assert any("XID" in line for line in report.limitations)
