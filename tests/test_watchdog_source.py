"""The ``watchdog`` source on the responses recorded from the real GPU Watchdog backend, and on
variations of them: every field read, odd fields degraded per value with a note that reaches the
tool output, the silent node kept, the newest alert events seen."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from langchain_core.messages import ToolMessage

from gpudoc.tools.cluster_tools import TOOL_NAMES, build_cluster_tools
from gpudoc.tools.compact import OUTPUT_BUDGET_CHARS
from gpudoc.tools.diagnosis.engine import diagnose
from gpudoc.tools.sources.base import SourceProtocolError
from gpudoc.tools.sources.notes import collecting_notes
from gpudoc.tools.sources.watchdog import ALERT_EVENTS_CAP, WatchdogSource
from tests.watchdog_contract import FIXTURES

BASE = "http://watchdog.test"


def recording(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def ms(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1000, tz=UTC)


class RecordedBackend:
    """TEST DOUBLE: answers as the real backend did when recorded; ``overrides`` replace bodies."""

    def __init__(self, **overrides: Any):
        self.bodies: dict[str, Any] = {
            "/api/cluster/status": recording("status.json"),
            "/api/metrics/current": recording("current.json"),
            "/api/metrics/gpu/node-2": recording("gpu-node-2.json"),
            "/api/metrics/slurm": recording("slurm.json"),
            "/api/alerts": recording("alerts.json"),
            "/api/alerts/events/history": recording("events-limit1.json"),
        }
        self.bodies.update({path.replace("_", "/"): body for path, body in overrides.items()})
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if path == "/api/metrics/history/gpu":
            node = request.url.params.get("nodeId")
            if node == "node-2":
                return httpx.Response(200, json=recording("hist-node-2.json"))
            return httpx.Response(200, json={"range": {"start": 1, "end": 2}, "data": []})
        if path in self.bodies:
            return httpx.Response(200, json=self.bodies[path])
        return httpx.Response(404, json={"error": "Node not found"})

    def source(self) -> WatchdogSource:
        return WatchdogSource(BASE, retries=0, transport=httpx.MockTransport(self))


async def test_every_recorded_value_is_read() -> None:
    source = RecordedBackend().source()
    with collecting_notes() as notes:
        status = await source.cluster_status()
        nodes = await source.current_metrics()
        slurm = await source.slurm()
        (series, *_) = await source.gpu_history("node-2", 5)
        rules = await source.alert_rules()
        (event,) = await source.alert_history(10)
    assert (status.node_count, status.gpu_count, status.avg_utilization_pct) == (8, 56, 60.2)
    assert status.last_updated == datetime(2026, 12, 1, 14, 12, 51, 196000, tzinfo=UTC)
    assert status.slurm is not None and (status.slurm.jobs_pending, status.slurm.jobs_running) == (6, 17)
    gpu = nodes[2].gpus[3]
    assert (gpu.model, gpu.temperature_c, gpu.memory_total_mib, gpu.sm_clock_mhz) == (
        "NVIDIA A100-SXM4-80GB", 88, 81920, 795)  # the thermal-throttle GPU of the recording
    assert slurm is not None and slurm.queue.cancelled == 1 and slurm.jobs is None
    assert [(n.name, n.state) for n in slurm.nodes if n.name in ("node-3", "node-6")] == [
        ("node-3", ["MIXED"]), ("node-6", ["DOWN"])]
    assert series.samples[0].timestamp == ms(1796134351080) and series.samples[-1].timestamp == ms(1796134371117)
    assert (rules[1].node_filter, rules[1].enabled, rules[0].duration_seconds) == ("node-.*", False, 60)
    assert rules[0].created_at == ms(1796134359013)
    assert (event.id, event.fired_at, event.resolved_at) == ("1", ms(1796133759322), ms(1796134059322))
    # The only notes: the backend's "healthy" is not gpudoc's; its Slurm metrics have no GPU counts.
    assert len(notes.lines) == 2 and "node-6 known to Slurm but sending no telemetry" in notes.lines[0]
    assert "Slurm GPU counts (gres) are not reported" in notes.lines[1]


async def test_slurm_gpu_counts_are_not_reported_rather_than_taken_from_telemetry() -> None:
    """The backend's Slurm metrics carry no gres: Slurm's GPU counts are unknown, not the GPUs
    telemetry shows (which would give the silent node-6 0 GPUs and the cluster 56, not 64)."""
    tools = {tool.name: tool for tool in build_cluster_tools(RecordedBackend().source())}
    slurm = json.loads((await call(tools, "get_slurm_status", {})).content)
    assert slurm["gpus"] == "GPU counts not reported by this source"
    assert any("gres" in line for line in slurm["source_notes"])
    details = json.loads((await call(tools, "get_node_details", {"node_id": "node-6"})).content)
    assert "gpus_total" not in json.dumps(details) and details["slurm"]["cpus_total"] == 128
    snapshot = await RecordedBackend().source().slurm()
    assert snapshot is not None and {node.gpus_total for node in snapshot.nodes} == {None}


async def test_the_node_the_backend_dropped_is_kept_as_not_reporting() -> None:
    source = RecordedBackend().source()
    nodes = await source.current_metrics()
    assert [(n.node_id, n.reachable, len(n.gpus)) for n in nodes][5:] == [
        ("node-5", True, 8), ("node-6", False, 0), ("node-7", True, 8)]
    status = await source.cluster_status()
    assert (status.healthy, status.node_count) == (False, 8)  # the backend says true and 7
    assert (await source.node_metrics("node 6")).reachable is False
    report = await diagnose(source)
    (down,) = [f for f in report.findings if f.subject == "node-6"]
    assert (down.rule, down.severity) == ("node.host_down", "critical")
    assert "Slurm state DOWN" in " ".join(down.evidence)


async def test_a_gpu_the_collector_read_as_all_zeros_is_stale_not_idle() -> None:
    """The collector writes 0 for every reading of a GPU whose exporter keeps only its XID line
    (fell off the bus, GSP hang): no reading at all, not a GPU at 0 °C and 0 W."""
    recorded = recording("current-stale-gpu.json")
    source = RecordedBackend(**{"/api/metrics/current": recorded}).source()
    with collecting_notes() as notes:
        node = await source.node_metrics("node-3")
    (dead,) = [gpu for gpu in node.gpus if gpu.index == 5]
    assert dead.stale and dead.last_seen is None
    assert not any(gpu.stale for gpu in node.gpus if gpu.index != 5)
    assert any("node-3 gpu-5: every reading is 0" in line for line in notes.lines)
    live = [g for n in recorded["nodes"] for g in n["gpus"] if g["temperatureC"] != 0]
    status = await source.cluster_status()
    assert status.gpu_count == 64 and status.avg_temperature_c == round(
        sum(g["temperatureC"] for g in live) / len(live), 1)
    report = await diagnose(source)
    stale = {f.subject for f in report.findings if f.rule == "gpu.stale_metrics"}
    assert stale == {"node-3/gpu-5", "node-1/gpu-3"}


def event(number: int, fired: datetime, resolved: datetime | None) -> dict[str, Any]:
    return {"id": number, "ruleId": "r1", "ruleName": "GPU temp high", "nodeId": "node-2", "metric": "gpu_temperature",
            "value": 88, "threshold": 85, "condition": "gt", "firedAt": int(fired.timestamp() * 1000),
            "resolvedAt": None if resolved is None else int(resolved.timestamp() * 1000)}


@pytest.mark.parametrize("older", [600, ALERT_EVENTS_CAP + 200])
async def test_alert_history_asks_for_the_most_and_shows_the_newest_first(older: int) -> None:
    now = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)
    stored = [event(n + 1, now - timedelta(hours=older - n), now - timedelta(hours=older - n, minutes=-5))
              for n in range(older)] + [event(older + 1, now, None)]

    recorded = RecordedBackend()

    def oldest_first(request: httpx.Request) -> httpx.Response:  # as the real backend does
        if request.url.path != "/api/alerts/events/history":
            return recorded(request)
        limit = min(int(request.url.params.get("limit") or 100), ALERT_EVENTS_CAP)
        return httpx.Response(200, json=stored[:limit])

    source = WatchdogSource(BASE, retries=0, transport=httpx.MockTransport(oldest_first))
    tools = {tool.name: tool for tool in build_cluster_tools(source)}
    message = await tools["get_alert_history"].ainvoke(
        {"type": "tool_call", "id": "c1", "name": "get_alert_history", "args": {"limit": 5}})
    payload = json.loads(message.content)
    if older < ALERT_EVENTS_CAP:
        assert payload["events"][0]["active"] is True and payload["events"][0]["id"] == str(older + 1)
        assert [e["id"] for e in payload["events"]] == [str(n) for n in range(older + 1, older - 4, -1)]
        assert "source_notes" not in payload
    else:  # the backend's cap hides the newest: say so rather than pretend
        unknown = "unknown: the backend returned only its oldest 1000 events"
        assert payload["active_count"] == unknown
        assert "newer events, including ones firing now, may be missing" in payload["source_notes"][0]
        alerts = json.loads((await call(tools, "get_alerts", {})).content)
        assert alerts["firing_count"] == unknown and not alerts["firing"]
        report = await diagnose(source)
        assert not any(f.rule == "alert.active" for f in report.findings)
        assert any("ones firing now, may be missing" in line for line in report.limitations)


def with_changes(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    current = copy.deepcopy(recording("current.json"))
    change(current)
    return current


def summary_slurm(current: dict[str, Any]) -> None:
    """An older or other backend: the status's Slurm summary where the full object belongs."""
    current["slurm"] = recording("status.json")["slurm"]


def gpu_without_temperature(current: dict[str, Any]) -> None:
    del current["nodes"][2]["gpus"][3]["temperatureC"]


def unreadable_values(current: dict[str, Any]) -> None:
    """Single values the backend could not make: each costs that value, not its GPU or node."""
    gpus = current["nodes"][2]["gpus"]
    gpus[3]["utilization"], gpus[4]["temperatureC"], gpus[5]["powerUsageW"] = "N/A", None, "[Not Supported]"
    silent = current["slurm"]["nodes"][6]  # node-6: no telemetry, so Slurm is all that names it
    silent["cpusTotal"], silent["memAlloc"] = "128 (of 256)", None
    del current["slurm"]["queue"]["pending"]


def exporter_without_name_and_total(current: dict[str, Any]) -> None:
    """What the collector makes of NVIDIA's dcgm-exporter: no gpu_name label, no FB_TOTAL."""
    for node in current["nodes"]:
        for gpu in node["gpus"]:
            gpu["gpuName"], gpu["memoryTotalMB"] = "Unknown", 0


def long_slurm_states(current: dict[str, Any]) -> None:
    """prometheus-slurm-exporter's own status labels: sinfo's long names."""
    statuses = ["allocated", "allocated", "allocated", "mixed", "drained", "mixed", "down*", "gone fishing"]
    for node, status in zip(current["slurm"]["nodes"], statuses):
        node["status"] = status


def odd_values(current: dict[str, Any]) -> None:
    del current["lastUpdated"]
    current["nodes"][0]["gpus"][0]["smClockMHz"] = "fast"
    current["nodes"][1] = "node-1"
    del current["slurm"]["queue"]["cancelled"]


async def test_a_summary_where_slurm_belongs_costs_slurm_nodes_not_the_cluster() -> None:
    source = RecordedBackend(**{"/api/metrics/current": with_changes(summary_slurm)}).source()
    with collecting_notes() as notes:
        nodes = await source.current_metrics()
        status = await source.cluster_status()
        slurm = await source.slurm()
    assert len(nodes) == 7 and all(node.reachable for node in nodes)
    assert status.slurm is not None and (status.slurm.cpus_total, status.slurm.jobs_pending) == (1024, None)
    assert slurm is not None and slurm.nodes == []
    assert any("slurm.nodes not reported by this backend" in line for line in notes.lines)
    assert any("slurm.queue not reported by this backend" in line for line in notes.lines)


async def test_odd_values_degrade_one_by_one() -> None:
    source = RecordedBackend(**{"/api/metrics/current": with_changes(odd_values)}).source()
    with collecting_notes() as notes:
        nodes = await source.current_metrics()
        slurm = await source.slurm()
    assert [node.node_id for node in nodes if node.reachable] == ["node-0", "node-2", "node-3", "node-4", "node-5",
                                                                   "node-7"]
    assert nodes[0].gpus[0].sm_clock_mhz is None and nodes[0].gpus[1].sm_clock_mhz == 1395
    assert slurm is not None and slurm.queue.pending == 6
    text = " | ".join(notes.lines)
    assert "GET /api/metrics/current: lastUpdated not reported by this backend" in text
    assert "nodes[node-0].gpus[0].smClockMHz unusable" in text
    assert "nodes[1] left out" in text
    assert "Slurm queue counts not reported by this backend: cancelled; shown as unknown (null)" in text
    assert slurm.queue.cancelled is None


async def test_a_gpu_without_a_reading_keeps_its_others_and_it_is_said() -> None:
    source = RecordedBackend(**{"/api/metrics/current": with_changes(gpu_without_temperature)}).source()
    with collecting_notes() as notes:
        nodes = await source.current_metrics()
    assert [gpu.index for gpu in nodes[2].gpus] == list(range(8))
    assert (nodes[2].gpus[3].temperature_c, nodes[2].gpus[3].sm_clock_mhz) == (None, 795)
    assert any("nodes[node-2].gpus[3].temperatureC not reported by this backend" in line for line in notes.lines)


async def test_an_unreadable_value_costs_that_value_not_its_gpu_or_slurm_node() -> None:
    source = RecordedBackend(**{"/api/metrics/current": with_changes(unreadable_values)}).source()
    with collecting_notes() as notes:
        nodes = await source.current_metrics()
        slurm = await source.slurm()
        status = await source.cluster_status()
    gpus = nodes[2].gpus
    assert [gpu.index for gpu in gpus] == list(range(8)) and not any(gpu.stale for gpu in gpus)
    assert (gpus[3].utilization_pct, gpus[3].temperature_c) == (None, 88)
    assert (gpus[4].temperature_c, gpus[5].power_w) == (None, None) and gpus[4].utilization_pct is not None
    assert slurm is not None and len(slurm.nodes) == 8
    down = slurm.nodes[6]
    assert (down.name, down.state, down.cpus_total, down.cpus_alloc, down.memory_alloc_mb) == (
        "node-6", ["DOWN"], None, 0, None)
    assert slurm.queue.pending is None and slurm.queue.running == 17
    assert nodes[6].node_id == "node-6" and nodes[6].reachable is False  # still named by Slurm, not unknown
    assert status.gpu_count == 56
    text = " | ".join(notes.lines)
    assert "nodes[node-2].gpus[3].utilization unusable" in text and "received 'N/A'" in text
    assert "nodes[node-2].gpus[4].temperatureC unusable (received null)" in text
    assert "received '[Not Supported]'" in text
    assert "slurm.nodes[node-6].cpusTotal unusable" in text and "received '128 (of 256)'" in text
    assert "slurm.nodes[node-6].memAlloc unusable (received null)" in text
    assert "Slurm queue counts not reported by this backend: pending; shown as unknown" in text
    report = await diagnose(source)
    assert any(f.rule == "node.host_down" and f.subject == "node-6" for f in report.findings)
    (hot,) = [f for f in report.findings if f.subject == "node-2/gpu-3" and f.rule == "gpu.thermal_slowdown"]
    assert "utilization not reported" in hot.evidence[0]  # the temperature still tells


async def test_nvidia_exporter_values_are_derived_or_marked_unknown() -> None:
    source = RecordedBackend(**{"/api/metrics/current": with_changes(exporter_without_name_and_total)}).source()
    with collecting_notes() as notes:
        nodes = await source.current_metrics()
    gpu = nodes[0].gpus[0]
    assert gpu.model == "unknown" and gpu.memory_total_mib == 46151 + 35769
    assert len(notes.lines) == 2  # one line per kind, not one per GPU
    assert "DCGM_FI_DEV_FB_TOTAL" in " ".join(notes.lines) and "gpu_name" in " ".join(notes.lines)


async def test_slurm_states_in_long_form_are_read_and_unknown_ones_said() -> None:
    source = RecordedBackend(**{"/api/metrics/current": with_changes(long_slurm_states)}).source()
    with collecting_notes() as notes:
        slurm = await source.slurm()
    assert slurm is not None
    assert [node.state for node in slurm.nodes] == [
        ["ALLOCATED"], ["ALLOCATED"], ["ALLOCATED"], ["MIXED"], ["IDLE", "DRAIN"], ["MIXED"],
        ["DOWN", "NOT_RESPONDING"], ["UNKNOWN"]]
    assert notes.lines[-1] == "Slurm node node-7: status 'gone fishing' not understood; its state is shown as UNKNOWN"
    assert len(notes.lines) == 2  # and that Slurm's GPU counts are not reported


async def call(tools: dict[str, Any], name: str, args: dict[str, Any]) -> ToolMessage:
    return await tools[name].ainvoke({"type": "tool_call", "id": "c1", "name": name, "args": args})


ARGS = {"get_node_details": {"node_id": "node-6"}, "get_gpu_history": {"node_id": "node-2", "duration_minutes": 5},
        "get_slurm_jobs": {"state": "PENDING"}, "diagnose_cluster": {}}


@pytest.mark.parametrize("change", [None, summary_slurm, odd_values, exporter_without_name_and_total,
                                    unreadable_values])
async def test_every_tool_returns_data_and_the_notes_reach_the_output(change: Any) -> None:
    overrides = {} if change is None else {"/api/metrics/current": with_changes(change)}
    tools = {tool.name: tool for tool in build_cluster_tools(RecordedBackend(**overrides).source())}
    # Without Slurm's node list nothing names the silent node-6: ask about a reporting one.
    args = {**ARGS, "get_node_details": {"node_id": "node-2" if change is summary_slurm else "node-6"}}
    outputs = {name: await call(tools, name, args.get(name, {})) for name in TOOL_NAMES}
    assert {name: message.status for name, message in outputs.items()} == dict.fromkeys(TOOL_NAMES, "success")
    payloads = {name: json.loads(message.content) for name, message in outputs.items()}
    assert all(len(message.content) <= OUTPUT_BUDGET_CHARS for message in outputs.values())
    assert args["get_node_details"]["node_id"] in json.dumps(payloads["get_node_details"])
    status_notes = " ".join(payloads["get_cluster_status"].get("source_notes", []))
    if change is summary_slurm:
        assert "slurm.queue not reported by this backend" in status_notes
    elif change is None:
        assert "healthy is false" in status_notes
    diagnosis = json.dumps(payloads["diagnose_cluster"])
    if change is not summary_slurm:  # without Slurm's node list, the silent node is not known
        assert "node.host_down" in diagnosis and "node-6" in diagnosis


async def test_the_calls_of_one_round_share_one_reading_and_each_gets_the_notes() -> None:
    backend = RecordedBackend(**{"/api/metrics/current": with_changes(odd_values)})
    tools = {tool.name: tool for tool in build_cluster_tools(backend.source())}
    names = ("get_cluster_status", "get_current_metrics", "get_slurm_status", "get_node_details")
    messages = await asyncio.gather(*(call(tools, name, {"node_id": "node-6"} if name == "get_node_details" else {})
                                      for name in names))
    assert [r.url.path for r in backend.requests].count("/api/metrics/current") == 1
    for message in messages:
        assert "nodes[1] left out" in " ".join(json.loads(message.content)["source_notes"]), message.name

    unshared = RecordedBackend()
    source = WatchdogSource(BASE, retries=0, transport=httpx.MockTransport(unshared), state_reuse_s=0)
    await asyncio.gather(source.current_metrics(), source.slurm())
    assert [r.url.path for r in unshared.requests].count("/api/metrics/current") == 2


async def test_a_failed_reading_is_not_shared_with_later_calls() -> None:
    answers = iter([httpx.Response(404, json={"error": "Not found"}), httpx.Response(200, json=recording("current.json"))])
    source = WatchdogSource(BASE, retries=0, transport=httpx.MockTransport(lambda request: next(answers)))
    with pytest.raises(SourceProtocolError):
        await source.current_metrics()
    assert len(await source.current_metrics()) == 8
