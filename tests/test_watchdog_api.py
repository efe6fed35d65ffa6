"""``gpudoc sim`` as GPU Watchdog's backend: what its collector would have seen, its alert routes,
and the exporter pages a real backend scrapes. (Shapes and types: ``test_watchdog_contract``.)"""

from __future__ import annotations

import argparse
import re
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gpudoc.cli import main
from gpudoc.commands import sim as sim_command
from gpudoc.commands.common import listen
from gpudoc.tools.sim.source import SimSource
from gpudoc.tools.sim.watchdog_api import create_watchdog_app
from gpudoc.tools.sources.base import ClusterSource, SourceUnavailableError
from gpudoc.tools.sources.watchdog_shapes import WATCHDOG_ALERT_METRICS
from tests.doubles.fake_cluster import FakeClusterSource

# GPU Watchdog's collector (backend/src/lib/prometheus-parser.ts) reads a sample with these two
# expressions and nothing else; every line of an exporter page it scrapes must match one.
COLLECTOR_LABELLED = re.compile(r"^(\w+)\{([^}]+)\}\s+(.+)$")
COLLECTOR_PLAIN = re.compile(r"^(\w+)\s+(\d+\.?\d*)$")


def client_for(source: ClusterSource) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=create_watchdog_app(source)), base_url="http://sim")


@pytest.fixture
async def sim() -> AsyncIterator[tuple[SimSource, httpx.AsyncClient]]:
    source = SimSource.create(realtime=False, scenarios=["thermal-throttle@node-2/gpu-3", "host-down@node-6",
                                                         "xid79-fell-off-bus@node-1/gpu-5"])
    async with client_for(source) as client:
        yield source, client


# ---- what the collector would have seen ---------------------------------------------------------


async def test_down_host_is_absent_stale_gpu_reads_zero_and_counted_as_the_backend_counts(
    sim: tuple[SimSource, httpx.AsyncClient],
) -> None:
    _, client = sim
    status = (await client.get("/api/cluster/status")).json()
    current = (await client.get("/api/metrics/current")).json()
    nodes = {node["nodeId"]: node for node in current["nodes"]}
    assert "node-6" not in nodes and len(nodes) == 7
    # The stale GPU keeps only its XID line on the exporter page; the real collector makes that a
    # GPU with its name and every reading 0 (its parser's default), recorded from GPU Watchdog.
    assert [gpu["gpu"] for gpu in nodes["node-1"]["gpus"]] == [str(index) for index in range(8)]
    stale = nodes["node-1"]["gpus"][5]
    assert stale["gpuName"] == "NVIDIA_A100-SXM4-80GB"
    assert {key: value for key, value in stale.items() if key not in ("gpu", "gpuName")} == dict.fromkeys(
        ("utilization", "memoryUtilization", "memoryUsedMB", "memoryFreeMB", "memoryTotalMB", "temperatureC",
         "powerUsageW", "smClockMHz", "memClockMHz"), 0)
    # The backend's own arithmetic: reporting nodes only, healthy while any node reports.
    assert (status["healthy"], status["nodeCount"], status["gpuCount"]) == (True, 7, 56)
    assert nodes["node-2"]["gpus"][3]["gpuName"] == "NVIDIA_A100-SXM4-80GB"
    assert (await client.get("/api/metrics/gpu/node-6")).json() == {"error": "Node not found"}
    assert (await client.get("/api/metrics/gpu/node 2")).status_code == 404  # ids match exactly
    slurm = current["slurm"]
    node6 = next(node for node in slurm["nodes"] if node["node"] == "node-6")
    assert (node6["status"], node6["cpusIdle"]) == ("down", 0)
    assert slurm == (await client.get("/api/metrics/slurm")).json()


async def test_history_windows_follow_the_backend_parameters(sim: tuple[SimSource, httpx.AsyncClient]) -> None:
    source, client = sim
    now_ms = int(source.clock.now().timestamp() * 1000)
    default = (await client.get("/api/metrics/history/gpu", params={"nodeId": "node-2", "duration": 0})).json()
    assert default["range"] == {"start": now_ms - 3_600_000, "end": now_ms}  # 0 means the default hour
    window = {"nodeId": "node-2", "start": now_ms - 600_000, "end": now_ms - 300_000}
    ranged = (await client.get("/api/metrics/history/gpu", params=window)).json()
    stamps = [point["timestamp"] for point in ranged["data"][0]["data"]]
    assert len(ranged["data"]) == 8 and len(stamps) == 21
    assert stamps[0] == now_ms - 300_000 and stamps[-1] == now_ms - 600_000
    silent = (await client.get("/api/metrics/history/gpu", params={"nodeId": "node-6", "duration": 5})).json()
    assert silent["data"] == []  # down for longer than five minutes: no rows
    for bad in ({"duration": "an hour"}, {"start": "yesterday"}, {"duration": "1_000"}, {"duration": "Infinity"},
                {"duration": "1e300"}):
        response = await client.get("/api/metrics/history/gpu", params=bad)
        assert (response.status_code, response.json()) == (400, {"error": "Invalid query parameters"})
    hexadecimal = (await client.get("/api/metrics/history/gpu", params={"nodeId": "node-2", "duration": "0x5"})).json()
    assert hexadecimal["range"] == {"start": now_ms - 300_000, "end": now_ms}  # JavaScript's Number reads 0x5 as 5
    slurm = (await client.get("/api/metrics/history/slurm", params={"duration": 2})).json()
    assert [p["timestamp"] for p in slurm["data"]["data"]] == [now_ms - k * 15_000 for k in range(9)]
    assert {p["nodesTotal"] for p in slurm["data"]["data"]} == {8}


# ---- alert rules and events ----------------------------------------------------------------------


async def test_only_rules_in_the_backend_vocabulary_are_served(sim: tuple[SimSource, httpx.AsyncClient]) -> None:
    source, client = sim
    served = (await client.get("/api/alerts")).json()
    assert {rule["metric"] for rule in served} <= set(WATCHDOG_ALERT_METRICS)
    assert {rule["id"] for rule in served} == {"gpu-temp-high", "gpu-power-near-limit"}
    assert len(await source.alert_rules()) > len(served)  # XID, staleness... stay internal
    events = (await client.get("/api/alerts/events/history", params={"limit": 1000})).json()
    assert events and {event["ruleId"] for event in events} <= {"gpu-temp-high", "gpu-power-near-limit"}
    assert any(e["nodeId"] == "node-2" and e["resolvedAt"] is None for e in events)
    assert (await client.get("/api/alerts/gpu-xid")).status_code == 404


async def test_a_created_rule_fires_from_its_creation_on_and_edits_resolve_it(
    sim: tuple[SimSource, httpx.AsyncClient],
) -> None:
    source, client = sim
    rule = {"name": "Warm GPU", "metric": "gpu_temperature", "condition": "gt", "threshold": 80,
            "nodeFilter": "^node-2$", "extra": "dropped"}
    created = await client.post("/api/alerts", json=rule)
    assert created.status_code == 201
    body = created.json()
    assert "extra" not in body and (body["nodeFilter"], body["duration"], body["enabled"]) == ("^node-2$", 0, True)
    source.advance(30)
    fired = [e for e in (await client.get("/api/alerts/events/history?limit=-1")).json() if e["ruleId"] == body["id"]]
    assert [(e["nodeId"], e["resolvedAt"]) for e in fired] == [("node-2", None)]
    assert fired[0]["firedAt"] >= body["createdAt"] and fired[0]["value"] > 80  # never for the past

    disabled = await client.put(f"/api/alerts/{body['id']}", json={"enabled": False})
    assert disabled.status_code == 200 and disabled.json()["enabled"] is False
    assert disabled.json()["updatedAt"] >= body["updatedAt"] and disabled.json()["createdAt"] == body["createdAt"]
    source.advance(60)
    after = [e for e in (await client.get("/api/alerts/events/history?limit=-1")).json() if e["ruleId"] == body["id"]]
    assert len(after) == 1 and after[0]["resolvedAt"] is not None

    assert (await client.delete(f"/api/alerts/{body['id']}")).status_code == 204
    remaining = (await client.get("/api/alerts/events/history?limit=-1")).json()
    assert not [e for e in remaining if e["ruleId"] == body["id"]]
    assert (await client.delete(f"/api/alerts/{body['id']}")).json() == {"error": "Alert rule not found"}


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x", "metric": "temperature_c", "condition": "gt", "threshold": 1},  # not a backend metric
        {"name": "x", "metric": "gpu_power", "condition": "above", "threshold": 1},
        {"name": "x", "metric": "gpu_power", "condition": "gt", "threshold": "1"},  # zod does not coerce
        {"name": "", "metric": "gpu_power", "condition": "gt", "threshold": 1},
        {"name": "x" * 101, "metric": "gpu_power", "condition": "gt", "threshold": 1},
        {"name": "x", "metric": "gpu_power", "condition": "gt", "threshold": 1, "duration": -5},
        {"name": "x", "metric": "gpu_power", "condition": "gt", "threshold": 1, "nodeFilter": None},
        {"metric": "gpu_power", "condition": "gt", "threshold": 1},
        ["not", "an", "object"],
    ],
)
async def test_invalid_rules_are_rejected_as_the_backend_rejects_them(
    sim: tuple[SimSource, httpx.AsyncClient], body: object
) -> None:
    _, client = sim
    response = await client.post("/api/alerts", json=body)
    assert (response.status_code, response.json()) == (400, {"error": "Invalid alert rule data"})
    update = await client.put("/api/alerts/gpu-temp-high", json={"threshold": "hot"})
    assert (update.status_code, update.json()) == (400, {"error": "Invalid alert rule data"})


async def test_events_come_oldest_first_with_the_backend_limits(sim: tuple[SimSource, httpx.AsyncClient]) -> None:
    source, client = sim
    await client.post("/api/alerts", json={"name": "Busy", "metric": "gpu_utilization", "condition": "gt",
                                           "threshold": 50})
    source.advance(20 * 60)
    everything = (await client.get("/api/alerts/events/history", params={"limit": -1})).json()
    assert len(everything) > 150
    fired = [event["firedAt"] for event in everything]
    assert fired == sorted(fired) and [e["id"] for e in everything] == sorted(e["id"] for e in everything)
    for limit, expected in (("1", 1), ("0", 100), ("abc", 100), (None, 100), ("150", 150)):
        params = {} if limit is None else {"limit": limit}
        shown = (await client.get("/api/alerts/events/history", params=params)).json()
        assert shown == everything[:expected]


async def test_rules_cannot_be_edited_on_a_source_without_a_rule_book() -> None:
    async with client_for(FakeClusterSource()) as client:
        response = await client.post("/api/alerts", json={"name": "x", "metric": "gpu_power", "condition": "gt",
                                                          "threshold": 1})
    assert response.status_code == 501 and "does not let alert rules be edited" in response.json()["error"]


# ---- exporter pages --------------------------------------------------------------------------------


async def test_node_pages_are_what_dcgm_exporter_serves_and_the_collector_reads(
    sim: tuple[SimSource, httpx.AsyncClient],
) -> None:
    _, client = sim
    page = await client.get("/metrics/gpu/node-2/metrics")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/plain; version=0.0.4")
    families = {family.name: family for family in text_string_to_metric_families(page.text)}
    assert {"DCGM_FI_DEV_FB_TOTAL", "DCGM_FI_DEV_GPU_TEMP", "DCGM_FI_DEV_GPU_UTIL"} <= set(families)
    assert not [name for name in families if name.startswith("node_")]  # node_exporter's, not this page's
    temps = {s.labels["gpu"]: s for s in families["DCGM_FI_DEV_GPU_TEMP"].samples}
    assert len(temps) == 8 and temps["3"].value >= 85
    assert {s.labels["gpu_name"] for s in temps.values()} == {"NVIDIA_A100-SXM4-80GB"}
    assert {s.labels["modelName"] for s in temps.values()} == {"NVIDIA A100-SXM4-80GB"}
    assert {s.value for s in families["DCGM_FI_DEV_FB_TOTAL"].samples} == {81920}
    lines = [line for line in page.text.splitlines() if line and not line.startswith("#")]
    assert all(COLLECTOR_LABELLED.match(line) for line in lines)

    down = await client.get("/metrics/gpu/node-6/metrics")
    assert down.status_code == 502  # a gateway in front of a dead host; the collector drops the node
    assert (await client.get("/metrics/gpu/node-99/metrics")).status_code == 404
    stale = await client.get("/metrics/gpu/node-1/metrics")
    by_family = {f.name: {s.labels["gpu"] for s in f.samples} for f in text_string_to_metric_families(stale.text)}
    assert "5" not in by_family["DCGM_FI_DEV_GPU_TEMP"] and len(by_family["DCGM_FI_DEV_GPU_TEMP"]) == 7
    # the fallen GPU reads nothing; only the exporter's own XID fields still name it (its XID 79)
    assert {name for name, gpus in by_family.items() if "5" in gpus} == {
        "DCGM_FI_DEV_XID_ERRORS", "DCGM_EXP_XID_ERRORS_COUNT"}


async def test_slurm_page_is_what_the_slurm_exporter_serves_and_the_collector_reads(
    sim: tuple[SimSource, httpx.AsyncClient],
) -> None:
    _, client = sim
    page = (await client.get("/metrics/slurm/metrics")).text
    families = {family.name: family for family in text_string_to_metric_families(page)}
    value = {name: family.samples[0].value for name, family in families.items() if len(family.samples) == 1}
    current = (await client.get("/api/metrics/slurm")).json()
    assert (value["slurm_cpus_total"], value["slurm_cpus_alloc"], value["slurm_cpus_idle"]) == (
        current["cpusTotal"], current["cpusAlloc"], current["cpusIdle"])
    assert value["slurm_cpus_alloc"] + value["slurm_cpus_idle"] + value["slurm_cpus_other"] == value["slurm_cpus_total"]
    assert (value["slurm_nodes_alloc"], value["slurm_nodes_idle"]) == (current["nodesAlloc"], current["nodesIdle"])
    assert value["slurm_queue_pending"] == current["queue"]["pending"]
    statuses = {s.labels["node"]: s.labels["status"] for s in families["slurm_node_cpu_total"].samples}
    assert statuses == {n["node"]: n["status"] for n in current["nodes"]} and statuses["node-6"] == "down"
    lines = [line for line in page.splitlines() if line and not line.startswith("#")]
    assert all(COLLECTOR_PLAIN.match(line) or COLLECTOR_LABELLED.match(line) for line in lines)


async def test_no_slurm_and_failing_source() -> None:
    class Failing(FakeClusterSource):
        async def alert_rules(self):  # type: ignore[override]
            raise SourceUnavailableError("Prometheus at http://prom:9090 is down")

    async with client_for(FakeClusterSource(has_slurm=False)) as client:
        slurm = await client.get("/api/metrics/slurm")
        page = await client.get("/metrics/slurm/metrics")
        current = (await client.get("/api/metrics/current")).json()
        status = (await client.get("/api/cluster/status")).json()
    async with client_for(Failing()) as client:
        failing = await client.get("/api/alerts")
    assert (slurm.status_code, slurm.json()) == (404, {"error": "Slurm metrics not available"})
    assert page.status_code == 404 and current["slurm"] is None and status["slurm"] is None
    assert failing.status_code == 503 and "prom:9090" in failing.json()["error"]


async def test_health(sim: tuple[SimSource, httpx.AsyncClient]) -> None:
    _, client = sim
    body = (await client.get("/health")).json()
    assert body["status"] == "ok" and body["timestamp"].endswith("Z")


async def test_history_of_a_silent_node_ends_when_it_went_down(sim: tuple[SimSource, httpx.AsyncClient]) -> None:
    source, client = sim
    hour = (await client.get("/api/metrics/history/gpu", params={"nodeId": "node-6", "duration": 60})).json()
    last = max(point["timestamp"] for series in hour["data"] for point in series["data"])
    now_ms = int(source.clock.now().timestamp() * 1000)
    assert now_ms - last > timedelta(minutes=5).total_seconds() * 1000


# ---- the command ---------------------------------------------------------------------------------


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
