"""The cluster tools on the simulated cluster: every tool runs, stays within budget, finds the fault."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from langchain_core.messages import ToolMessage
from langchain_core.tools import BaseTool

from gpudoc.tools.cluster_tools import TOOL_NAMES, build_cluster_tools
from gpudoc.tools.compact import OUTPUT_BUDGET_CHARS
from gpudoc.tools.sim.source import SimSource
from gpudoc.tools.sim.watchdog_api import create_watchdog_app
from gpudoc.tools.sources.watchdog import WatchdogSource

THERMAL = "thermal-throttle@node-2/gpu-3"


@pytest.fixture(scope="module")
def eight_nodes() -> dict[str, BaseTool]:
    source = SimSource.create(seed=42, nodes=8, gpu_model="a100", scenarios=[THERMAL], realtime=False)
    return {tool.name: tool for tool in build_cluster_tools(source)}


@pytest.fixture(scope="module")
def sixty_four_nodes() -> dict[str, BaseTool]:
    source = SimSource.create(
        seed=7,
        nodes=64,
        gpu_model="h100",
        scenarios=[
            "xid79-fell-off-bus@node-5/gpu-1",
            "host-down@node-40",
            "ecc-correctable-storm@node-63/gpu-7",
            "pending-on-drained",
            THERMAL,
        ],
        realtime=False,
    )
    return {tool.name: tool for tool in build_cluster_tools(source)}


async def call(tool: BaseTool, args: dict[str, Any]) -> ToolMessage:
    message = await tool.ainvoke({"type": "tool_call", "id": "call-1", "name": tool.name, "args": args})
    assert isinstance(message, ToolMessage)
    return message


ARGUMENTS: dict[str, list[dict[str, Any]]] = {
    "get_cluster_status": [{}],
    "get_current_metrics": [{}],
    "get_node_details": [{"node_id": "node-2"}, {"node_id": "node-5"}],
    "get_gpu_history": [{}, {"node_id": "node-2"}, {"node_id": "node-5", "duration_minutes": 1440}],
    "get_alerts": [{}],
    "get_alert_history": [{"limit": 200}],
    "get_slurm_status": [{}],
    "get_slurm_jobs": [{}, {"state": "pending"}, {"node": "node-2"}],
    "diagnose_cluster": [{}, {"node": "node-2"}],
}


@pytest.mark.parametrize("name", TOOL_NAMES)
async def test_every_tool_runs_on_the_default_cluster(eight_nodes: dict[str, BaseTool], name: str) -> None:
    for args in ARGUMENTS[name]:
        message = await call(eight_nodes[name], args)
        assert message.status == "success", (args, message.content)
        assert len(message.content) <= OUTPUT_BUDGET_CHARS, (args, len(message.content))
        json.loads(message.content)


@pytest.mark.parametrize("name", TOOL_NAMES)
async def test_every_tool_stays_within_budget_on_64_nodes(
    sixty_four_nodes: dict[str, BaseTool], name: str
) -> None:
    for args in ARGUMENTS[name]:
        message = await call(sixty_four_nodes[name], args)
        assert message.status == "success", (args, message.content)
        assert len(message.content) <= OUTPUT_BUDGET_CHARS, (args, len(message.content))


async def test_thermal_fault_shows_in_metrics_history_and_diagnosis(eight_nodes: dict[str, BaseTool]) -> None:
    current = json.loads((await call(eight_nodes["get_current_metrics"], {})).content)
    node2 = next(entry for entry in current["per_node"] if entry["node"] == "node-2")
    assert node2["hottest"]["gpu"] == 3
    assert any(item.startswith("gpu-3 ") for item in node2["anomalies"])

    history = json.loads((await call(eight_nodes["get_gpu_history"], {"node_id": "Node 2"})).content)
    gpu3 = next(g for g in history["gpus"] if g["gpu"] == 3)
    peers = [g["temp_c"]["max"] for g in history["gpus"] if g["gpu"] != 3]
    assert gpu3["temp_c"]["max"] > max(peers)
    assert gpu3["temp_c"]["trend"] == "rising" and gpu3["temp_c"]["per_10min"] > 0
    assert any(flag.startswith("temp >= 89.0 °C (slowdown)") for flag in gpu3["flags"])
    assert history["point_fields"] == ["time", "temp_c", "util_pct", "power_w"]
    assert all(len(row) == 4 for row in gpu3["points"])

    report = json.loads((await call(eight_nodes["diagnose_cluster"], {"node": "node 2"})).content)
    first = report["findings"][0]
    assert (first["severity"], first["subject"], first["rule"]) == ("critical", "node-2/gpu-3", "gpu.thermal_slowdown")


async def test_node_details_list_every_gpu_with_named_clock_events(eight_nodes: dict[str, BaseTool]) -> None:
    details = json.loads((await call(eight_nodes["get_node_details"], {"node_id": "node2"})).content)
    assert [g["gpu"] for g in details["gpus"]] == list(range(8))
    gpu3 = details["gpus"][3]
    assert set(gpu3["clock_events"]) & {"sw_thermal", "hw_thermal", "hw_slowdown"}
    assert "slurm" in details


async def test_unknown_node_on_the_simulator_lists_the_valid_ids(eight_nodes: dict[str, BaseTool]) -> None:
    message = await call(eight_nodes["get_node_details"], {"node_id": "node-8"})
    assert message.status == "error"
    assert "Valid node ids: " + ", ".join(f"node-{i}" for i in range(8)) in message.content


async def test_large_cluster_views_say_how_to_narrow(sixty_four_nodes: dict[str, BaseTool]) -> None:
    current = json.loads((await call(sixty_four_nodes["get_current_metrics"], {})).content)
    assert "get_node_details" in current["truncated"]  # 64 nodes never fit the budget
    shown = {entry["node"] for entry in current["per_node"]}
    assert len(shown) < 64 and {"node-5", "node-40"} <= shown  # anomalous nodes are never left out first
    history = json.loads((await call(sixty_four_nodes["get_gpu_history"], {})).content)
    assert "node_id" in history["truncated"] and len(history["per_node"]) < 64


async def test_tools_over_the_watchdog_api_report_what_that_api_lacks() -> None:
    """The same tools on the GPU Watchdog source (served in process from the simulator)."""
    simulated = SimSource.create(seed=42, nodes=8, gpu_model="a100", scenarios=[THERMAL], realtime=False)
    transport = httpx.ASGITransport(app=create_watchdog_app(simulated))
    source = WatchdogSource("http://watchdog.test", retries=0, transport=transport)
    tools = {tool.name: tool for tool in build_cluster_tools(source)}
    try:
        for name in TOOL_NAMES:
            for args in ARGUMENTS[name]:
                message = await call(tools[name], args)
                assert message.status == "success", (name, args, message.content)
                assert len(message.content) <= OUTPUT_BUDGET_CHARS
        jobs = json.loads((await call(tools["get_slurm_jobs"], {"state": "PENDING"})).content)
        assert jobs["jobs"] is None and "does not provide a Slurm job list" in jobs["note"]
        details = json.loads((await call(tools["get_node_details"], {"node_id": "node-2"})).content)
        listed = {key for gpu in details["gpus"] for key in gpu} | set(details.get("same_for_all_gpus", {}))
        assert not listed & {"last_xid", "xids", "corr_remapped_rows", "nvlink_errors"}  # absent, not zero
    finally:
        await source.aclose()


async def test_unreachable_backend_is_a_clean_message_naming_the_url() -> None:
    source = WatchdogSource("http://127.0.0.1:9", retries=0, timeout_s=2)
    try:
        message = await call(build_cluster_tools(source)[0], {})
    finally:
        await source.aclose()
    assert message.status == "error"
    assert message.content.startswith("get_cluster_status could not get data from the cluster source:")
    assert "http://127.0.0.1:9" in message.content and "Traceback" not in message.content
