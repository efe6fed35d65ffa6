"""Diagnosis through the GPU Watchdog API: the backend's clock, not ours, decides what is stale."""

from __future__ import annotations

import json

import httpx
import pytest

from gpudoc.cli import main
from gpudoc.tools.diagnosis.engine import diagnose
from gpudoc.tools.sim.source import SimSource
from gpudoc.tools.sim.watchdog_api import create_watchdog_app
from gpudoc.tools.sources.watchdog import WatchdogSource
from tests.served_watchdog import serve


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


def test_gpudoc_diagnose_on_the_watchdog_api_reports_the_faults_and_the_down_node(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The scenario of the recordings, through the CLI: exit 0, both faults, nothing unknown."""
    sim = SimSource.create(nodes=8, realtime=False, scenarios=["thermal-throttle@node-2/gpu-3", "host-down@node-6"])
    with serve(sim) as url:
        code = main(["diagnose", "--source", "watchdog", "--backend-url", url, "--json"])
        node = main(["diagnose", "--source", "watchdog", "--backend-url", url, "--node", "node 6"])
    out = capsys.readouterr().out
    report = json.loads(out[: out.index("\n}\n") + 2])
    assert (code, node) == (0, 0)
    found = {(f["subject"], f["rule"]) for f in report["findings"] if f["severity"] == "critical"}
    assert found == {("node-2/gpu-3", "gpu.thermal_slowdown"), ("node-6", "node.host_down")}
    assert report["nodes_examined"] == 8
    assert "node-6" in out.split("\n}\n", 1)[1] and "Unknown node" not in out
