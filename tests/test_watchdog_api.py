"""The served GPU Watchdog API: exact shapes, and JSON errors for bad ids and bad parameters."""

from __future__ import annotations

import argparse

import httpx
import pytest

from gpudoc.cli import main
from gpudoc.commands.common import listen
from gpudoc.commands import sim as sim_command
from gpudoc.tools.sim.watchdog_api import create_watchdog_app
from gpudoc.tools.sources.base import SourceUnavailableError
from tests.doubles.fake_cluster import FakeClusterSource


def client_for(source: FakeClusterSource) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_watchdog_app(source)), base_url="http://sim"
    )


async def test_bodies_have_exactly_the_original_fields() -> None:
    async with client_for(FakeClusterSource()) as client:
        status = (await client.get("/api/cluster/status")).json()
        current = (await client.get("/api/metrics/current")).json()
        history = (await client.get("/api/metrics/history/gpu", params={"duration": 3})).json()
        rules = (await client.get("/api/alerts")).json()
        events = (await client.get("/api/alerts/events/history", params={"limit": 5})).json()
        slurm = (await client.get("/api/metrics/slurm")).json()
    assert set(status) == {"healthy", "nodeCount", "gpuCount", "avgUtilization", "avgTemperature",
                           "memoryUsedGB", "memoryTotalGB", "slurm", "lastUpdated"}
    assert set(status["slurm"]) == {"cpusTotal", "cpusAlloc", "cpusIdle", "nodesTotal", "jobsPending", "jobsRunning"}
    assert status["lastUpdated"] == "2026-03-02T14:30:00.000Z"
    assert set(current) == {"nodes", "slurm", "lastUpdated"}
    assert set(current["nodes"][0]) == {"nodeId", "hostname", "gpus", "timestamp"}
    assert set(current["nodes"][0]["gpus"][0]) == {
        "gpu", "gpuName", "utilization", "memoryUtilization", "memoryUsedMB", "memoryFreeMB",
        "memoryTotalMB", "temperatureC", "powerUsageW", "smClockMHz", "memClockMHz",
    }
    assert current["nodes"][0]["gpus"][0]["gpu"] == "0"
    assert set(history) == {"range", "data"} and set(history["range"]) == {"start", "end"}
    assert history["range"]["start"] == "2026-03-02T14:27:00.000Z"
    assert set(history["data"][0]) == {"nodeId", "gpuIndex", "data"}
    assert set(history["data"][0]["data"][0]) == {
        "timestamp", "utilization", "memoryUsedMb", "memoryTotalMb", "temperatureC", "powerUsageW",
    }
    assert set(rules[0]) == {"id", "name", "metric", "condition", "threshold", "duration", "nodeFilter",
                             "enabled", "createdAt", "updatedAt"}
    assert set(events[0]) == {"id", "ruleId", "ruleName", "nodeId", "metric", "value", "threshold",
                              "condition", "firedAt", "resolvedAt"}
    assert events[0]["resolvedAt"] is None and events[1]["resolvedAt"].endswith("Z")
    assert set(slurm) == {"nodes", "cpusTotal", "cpusAlloc", "cpusIdle", "nodesTotal", "nodesIdle",
                          "nodesAlloc", "queue"}
    assert set(slurm["nodes"][0]) == {"node", "status", "cpusAlloc", "cpusIdle", "cpusTotal", "memAlloc", "memTotal"}
    assert [node["status"] for node in slurm["nodes"]] == ["mix", "drain", "down"]
    assert (slurm["nodesIdle"], slurm["nodesAlloc"], slurm["cpusIdle"]) == (0, 1, 288)


async def test_unknown_and_silent_nodes_are_404_with_error() -> None:
    async with client_for(FakeClusterSource()) as client:
        unknown = await client.get("/api/metrics/gpu/node-42")
        silent = await client.get("/api/metrics/gpu/node-2")
        history = await client.get("/api/metrics/history/gpu", params={"nodeId": "node-42"})
    assert unknown.status_code == 404
    assert unknown.json() == {"error": "Unknown node 'node-42'. Valid node ids: node-0, node-1, node-2."}
    assert silent.status_code == 404 and "node-2" in silent.json()["error"]
    assert history.status_code == 404 and "node-0, node-1, node-2" in history.json()["error"]


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/api/metrics/history/gpu", {"duration": "an hour"}, "duration"),
        ("/api/metrics/history/gpu", {"duration": "0"}, "duration"),
        ("/api/metrics/history/gpu", {"nodeId": ""}, "nodeId"),
        ("/api/alerts/events/history", {"limit": "-3"}, "limit"),
        ("/api/alerts/events/history", {"limit": "100000"}, "limit"),
    ],
)
async def test_bad_parameters_are_400_with_details(path: str, params: dict[str, str], field: str) -> None:
    async with client_for(FakeClusterSource()) as client:
        response = await client.get(path, params=params)
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "Invalid request parameters"
    assert [detail["field"] for detail in body["details"]] == [field]


async def test_no_slurm_and_unknown_route_and_failing_source() -> None:
    class Failing(FakeClusterSource):
        async def alert_rules(self):  # type: ignore[override]
            raise SourceUnavailableError("Prometheus at http://prom:9090 is down")

    async with client_for(FakeClusterSource(has_slurm=False)) as client:
        slurm = await client.get("/api/metrics/slurm")
        route = await client.get("/api/nothing-here")
    async with client_for(Failing()) as client:
        failing = await client.get("/api/alerts")
    assert slurm.status_code == 404 and "no Slurm" in slurm.json()["error"]
    assert route.status_code == 404 and set(route.json()) == {"error"}
    assert failing.status_code == 503 and "prom:9090" in failing.json()["error"]


def test_sim_command_rejects_the_watchdog_source(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "--source", "watchdog", "--port", "0"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("gpudoc: error: gpudoc sim serves the simulated cluster")


def test_sim_command_reports_a_busy_port(capsys: pytest.CaptureFixture[str]) -> None:
    busy = listen("127.0.0.1", 0)
    try:
        port = busy.getsockname()[1]
        assert main(["sim", "--port", str(port)]) == 2
    finally:
        busy.close()
    error = capsys.readouterr().err
    assert error.startswith(f"gpudoc: error: Cannot listen on 127.0.0.1:{port}: ")
    assert "--port" in error and "Traceback" not in error


@pytest.mark.parametrize("argv", [["--port", "99999"], ["--port", "-1"], ["--nodes", "0"], ["--nodes", "5000"]])
def test_sim_command_rejects_out_of_range_numbers(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["sim", *argv])
    assert exit_info.value.code == 2
    assert "is out of range; use " in capsys.readouterr().err


def test_sim_command_is_registered() -> None:
    from gpudoc.cli import build_parser

    args = build_parser().parse_args(["sim", "--port", "3100", "--scenario", "host-down@node-2"])
    assert isinstance(args, argparse.Namespace)
    assert (args.port, args.host, args.scenarios, args.func) == (3100, "127.0.0.1", ["host-down@node-2"], sim_command.run)
