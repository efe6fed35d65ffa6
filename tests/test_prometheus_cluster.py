"""``--source prometheus`` against a real Prometheus and Alertmanager watching ``gpudoc sim``.

One Prometheus for the whole run (session fixture): it starts on the simulator's last 70 minutes
(backfilled) and scrapes its per-node dcgm-exporter and node_exporter pages every 2 s with
gpudoc's alert rules loaded. The cluster carries every hardware and network fault on a node of
its own, plus an application-XID negative control; the same simulation read directly is the
reference the Prometheus path must agree with.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from gpudoc.tools.cluster_tools import build_cluster_tools
from gpudoc.tools.diagnosis.engine import analyze, diagnose
from gpudoc.tools.diagnosis.facts import gather_facts
from gpudoc.tools.diagnosis.findings import Finding
from gpudoc.tools.sim.scenarios import GroundTruth
from gpudoc.tools.sim.source import SimSource
from gpudoc.tools.sources.prometheus import PrometheusClient, PrometheusSource
from tests.services.prometheus import (
    Daemon,
    SimProcess,
    start_alertmanager,
    start_prometheus,
    start_sim,
    wait_for_scrapes,
)

SEED, NODES = 7, 16
MIX = [
    "xid79-fell-off-bus@node-0/gpu-1", "hbm-uncorrectable@node-1/gpu-2", "row-remap-failure@node-2/gpu-3",
    "ecc-correctable-storm@node-3/gpu-4", "nvlink-degraded@node-4/gpu-5", "thermal-throttle@node-5/gpu-6",
    "power-brake@node-6/gpu-7", "pcie-degraded@node-7/gpu-0", "gsp-hang@node-8/gpu-1", "host-down@node-9",
    "ib-flap@node-10", "app-xid@node-12/gpu-3",
]
#: categories the Prometheus path covers (jobs and scheduling need Slurm, composed separately)
COVERED = ("hardware", "network", "host")
SLURM_ONLY = ("node.drained", "node.gres_count_low", "node.slurm_not_responding", "job.", "sched.")


@dataclass
class Cluster:
    sim: SimProcess
    prometheus: Daemon
    alertmanager: Daemon

    def source(self) -> PrometheusSource:
        return PrometheusSource(PrometheusClient(self.prometheus.url, alertmanager_url=self.alertmanager.url))

    def direct(self, at: float) -> SimSource:
        """The same simulation read without Prometheus, at the instant Prometheus evaluated."""
        source = SimSource.create(seed=SEED, nodes=NODES, scenarios=MIX, realtime=False, now=self.sim.anchor)
        source.advance(max(0.0, at - self.sim.anchor.timestamp()))
        return source


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    work = tmp_path_factory.mktemp("prometheus")
    started: list[Daemon] = []
    try:
        sim = start_sim(work, "--nodes", str(NODES), "--seed", str(SEED), *[a for s in MIX for a in ("--scenario", s)])
        started.append(sim)
        alertmanager = start_alertmanager(work)
        started.append(alertmanager)
        prometheus = start_prometheus(work, sim.feed, alertmanager=alertmanager.url)
        started.append(prometheus)
        wait_for_scrapes(prometheus.url, 2 * NODES)
        yield Cluster(sim, prometheus, alertmanager)
    finally:
        for daemon in reversed(started):
            daemon.stop()


def covered(findings: list[Finding]) -> set[tuple[str, str]]:
    return {(f.subject, f.severity) for f in findings
            if f.severity != "info" and f.category in COVERED and not f.rule.startswith(SLURM_ONLY)}


def found(truth: GroundTruth, findings: list[Finding]) -> bool:
    order = {"critical": 0, "warning": 1, "info": 2}
    return any(f.subject == truth.subject and order[f.severity] <= order[truth.severity or "info"] for f in findings)


async def test_diagnosis_through_prometheus_matches_the_direct_one(cluster: Cluster) -> None:
    source = cluster.source()
    try:
        report = await diagnose(source)
        at = source.client.now()
    finally:
        await source.aclose()
    direct = cluster.direct(at)
    reference = analyze(await gather_facts(direct))
    assert covered(report.findings) == covered(reference), (
        sorted(covered(report.findings)), sorted(covered(reference)))
    for truth in direct.ground_truth:
        if truth.severity is not None:
            assert found(truth, report.findings), (truth, [(f.subject, f.rule) for f in report.findings])
    # the negative control: an application XID is info, never a reason to drain
    about_app_gpu = [f for f in report.findings if f.subject == "node-12/gpu-3"]
    assert about_app_gpu and all(f.severity == "info" and f.category == "application" for f in about_app_gpu)
    assert (report.nodes_examined, report.gpus_examined) == (NODES, (NODES - 1) * 8)


async def test_down_host_comes_from_up(cluster: Cluster) -> None:
    source = cluster.source()
    try:
        node = await source.node_metrics("node-9")
        report = await diagnose(source, "node-9")
        up = await source.client.query('up{instance=~"node-9:.*"}')
    finally:
        await source.aclose()
    assert not node.reachable and node.gpus == []
    assert {row["metric"]["job"]: row["value"][1] for row in up} == {"dcgm": "0", "node": "0"}
    [finding] = report.findings
    assert (finding.rule, finding.severity, report.scope) == ("node.host_down", "critical", "node-9")


async def test_node_readings_follow_the_exporters(cluster: Cluster) -> None:
    source = cluster.source()
    try:
        fallen, nvlink, ib = await asyncio.gather(
            source.node_metrics("node-0"), source.node_metrics("node-4"), source.node_metrics("node-10"))
        at = source.client.now()
    finally:
        await source.aclose()
    reference = {n.node_id: n for n in await cluster.direct(at).current_metrics()}
    gpu1 = fallen.gpus[1]
    assert gpu1.stale and gpu1.last_xid == 79 and [e.xid for e in gpu1.xid_events or []] == [79]
    assert gpu1.last_seen is not None and gpu1.last_seen < datetime.fromtimestamp(at, UTC) - timedelta(minutes=20)
    live = nvlink.gpus[5]
    expected = reference["node-4"].gpus[5]
    assert live.nvlink_crc_flit_errors and live.nvlink_recovery_errors
    assert live.nvlink_error_count == pytest.approx(expected.nvlink_error_count, rel=0.05)
    assert {e.xid for e in live.xid_events or []} == {74}
    assert live.remap_pending is False and live.pcie_link_width == 16 and live.model == expected.model
    assert live.memory_total_mib == expected.memory_total_mib and live.memory_reserved_mib == 565
    flapping = {p.device: p for p in ib.network or []}["mlx5_1"]
    assert flapping.link_downed_last_hour is not None and flapping.link_downed_last_hour >= 3


async def test_dcgm_series_join_on_instance_and_gpu(cluster: Cluster) -> None:
    """One exporter per node: NVIDIA's dashboards' ``on(instance, gpu)`` joins find one match each."""
    client = PrometheusClient(cluster.prometheus.url)
    try:
        ratio = await client.query("DCGM_FI_DEV_FB_USED / on (instance, gpu) DCGM_FI_DEV_FB_TOTAL")
    finally:
        await client.aclose()
    assert len(ratio) == (NODES - 1) * 8 - 2  # host-down node; the fallen and the hung GPU
    assert all(0 <= float(row["value"][1]) < 1 for row in ratio)


async def test_diagnose_cluster_queries_stay_few_and_cached(cluster: Cluster) -> None:
    source = cluster.source()
    try:
        await diagnose(source)
        first = source.client.stats.requests
        await diagnose(source)  # the same snapshot: nothing fetched twice
        assert source.client.stats.requests == first and source.client.stats.cache_hits > 0
        source.client.new_snapshot()
        source.client.stats.reset()
        await diagnose(source, "node-5")
        node_question = source.client.stats.requests
    finally:
        await source.aclose()
    assert first <= 20 and node_question <= first


async def test_every_tool_answers_through_prometheus(cluster: Cluster) -> None:
    source = cluster.source()
    try:
        tools = {tool.name: tool for tool in build_cluster_tools(source)}
        calls = {
            "get_cluster_status": {}, "get_current_metrics": {}, "get_node_details": {"node_id": "node 5"},
            "get_gpu_history": {"node_id": "node-3", "duration_minutes": 45}, "get_alerts": {},
            "get_alert_history": {"limit": 5}, "get_slurm_status": {}, "get_slurm_jobs": {},
            "diagnose_cluster": {"node": "node-10"},
        }
        results = {name: json.loads(await tools[name].ainvoke(args)) for name, args in calls.items()}
        everything = json.loads(await tools["get_gpu_history"].ainvoke({}))
    finally:
        await source.aclose()
    status = results["get_cluster_status"]
    assert status["healthy"] is False and status["nodes"] == NODES and status["gpus"] == (NODES - 1) * 8
    per_node = {entry["node"]: entry for entry in results["get_current_metrics"]["per_node"]}
    assert per_node["node-9"]["anomalies"] == ["node unreachable: its exporters stopped answering"]
    assert results["get_node_details"]["node"] == "node-5" and len(results["get_node_details"]["gpus"]) == 8
    history = results["get_gpu_history"]
    storm = next(g for g in history["gpus"] if g["gpu"] == 4)
    assert storm["counters"]["corr_remapped_rows"]["delta"] >= 2  # the correctable-error storm, from PromQL history
    assert len(everything["per_node"]) >= NODES - 1
    assert results["get_slurm_status"]["note"] == "this cluster reports no Slurm scheduler"
    assert results["diagnose_cluster"]["findings"][0]["rule"] in ("net.ib_port_down", "net.ib_link_flapping")


def test_gpudoc_diagnose_command_against_prometheus(cluster: Cluster) -> None:
    command = [sys.executable, "-m", "gpudoc", "diagnose", "--source", "prometheus",
               "--prometheus-url", cluster.prometheus.url, "--json", "--fail-on", "critical"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120,
                            cwd=Path(__file__).resolve().parents[1])
    assert result.returncode == 1, result.stderr  # critical findings exist
    report = json.loads(result.stdout)
    assert report["source"] == "prometheus" and report["nodes_examined"] == NODES
    rules = {(f["subject"], f["rule"]) for f in report["findings"]}
    assert ("node-9", "node.host_down") in rules and ("node-0/gpu-1", "gpu.xid79_fell_off_bus") in rules


async def _alerts(url: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient() as client:
        return (await client.get(f"{url}/api/v1/alerts")).json()["data"]["alerts"]


EXPECTED_ALERTS = {
    ("GpuXidCritical", "node-0", "1"), ("GpuStoppedReporting", "node-0", "1"),
    ("GpuXidCritical", "node-1", "2"), ("GpuUncorrectableEccError", "node-1", "2"),
    ("GpuRowRemapFailure", "node-2", "3"), ("GpuNvlinkDown", "node-4", "5"), ("GpuNvlinkErrors", "node-4", "5"),
    ("GpuXidCritical", "node-4", "5"), ("GpuThermalSlowdown", "node-5", "6"), ("GpuPowerBrake", "node-6", "7"),
    ("GpuPcieReplaysRising", "node-7", "0"), ("GpuXidCritical", "node-8", "1"), ("HostDown", "node-9", None),
    ("InfinibandLinkFlapping", "node-10", None),
}


def _key(alert: dict[str, Any]) -> tuple[str, str, str | None]:
    labels = alert["labels"]
    host = labels.get("Hostname") or labels.get("instance", "").split(":")[0]
    return labels["alertname"], host, labels.get("gpu")


async def test_shipped_rules_fire_for_the_injected_faults(cluster: Cluster) -> None:
    deadline = time.monotonic() + 100  # the slowest rules hold for a minute
    firing: set[tuple[str, str, str | None]] = set()
    while time.monotonic() < deadline:
        firing = {_key(a) for a in await _alerts(cluster.prometheus.url) if a["state"] == "firing"}
        if EXPECTED_ALERTS <= firing:
            break
        await asyncio.sleep(2)
    assert EXPECTED_ALERTS <= firing, sorted(EXPECTED_ALERTS - firing)
    assert not any(host == "node-12" for _, host, _ in firing)  # the application XID pages nobody

    source = cluster.source()
    try:
        tools = {tool.name: tool for tool in build_cluster_tools(source)}
        alerts = json.loads(await tools["get_alerts"].ainvoke({}))
        history = json.loads(await tools["get_alert_history"].ainvoke({"limit": 200}))
    finally:
        await source.aclose()
    assert alerts["rules_count"] == 15
    shown = {(a["name"], a["node"], None if a.get("gpu") is None else str(a["gpu"])) for a in alerts["firing"]}
    assert EXPECTED_ALERTS <= shown, sorted(EXPECTED_ALERTS - shown)
    xid79 = next(a for a in alerts["firing"] if (a["name"], a["node"]) == ("GpuXidCritical", "node-0"))
    assert xid79["severity"] == "critical" and "XID 79" in xid79["summary"]
    in_history = {(e["name"], e["node"]) for e in history["events"]}
    assert {("GpuXidCritical", "node-0"), ("HostDown", "node-9")} <= in_history


async def test_alertmanager_silences_are_shown_on_the_alerts_they_mute(cluster: Cluster) -> None:
    now = datetime.now(UTC)
    silence = {
        "matchers": [{"name": "alertname", "value": "GpuRowRemapFailure", "isRegex": False, "isEqual": True}],
        "startsAt": now.isoformat(), "endsAt": (now + timedelta(hours=2)).isoformat(),
        "createdBy": "ops", "comment": "RMA ticket OPS-4821 open",
    }
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{cluster.alertmanager.url}/api/v2/silences", json=silence)
        assert response.status_code == 200, response.text
        silence_id = response.json()["silenceID"]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # until Prometheus has sent the alert and it is muted
            alerts = (await client.get(f"{cluster.alertmanager.url}/api/v2/alerts")).json()
            if any(silence_id in (a["status"].get("silencedBy") or []) for a in alerts):
                break
            await asyncio.sleep(1)
    source = cluster.source()
    try:
        silences = await source.silences()
        events = await source.alert_history(200)
    finally:
        await source.aclose()
    assert silences is not None
    [mine] = [s for s in silences if s.id == silence_id]
    assert mine.state == "active" and mine.matchers == ["alertname=GpuRowRemapFailure"]
    assert mine.comment == "RMA ticket OPS-4821 open"
    muted = [e for e in events if e.rule_name == "GpuRowRemapFailure" and e.active]
    assert muted and all(e.silenced_by == [silence_id] for e in muted)


async def test_the_recorded_screen_and_the_one_evaluated_per_call_pick_the_same_nodes(cluster: Cluster) -> None:
    """gpudoc's ``gpudoc:screen`` rule keeps the screen; with a selector the source evaluates it itself."""
    recorded_source = cluster.source()
    live_source = PrometheusSource(PrometheusClient(cluster.prometheus.url), selector='job=~"dcgm|node"')
    try:
        deadline = time.monotonic() + 90  # the rule group runs once a minute
        while not await recorded_source.client.query('gpudoc:screen{gpudoc="evaluated"}'):
            assert time.monotonic() < deadline, "gpudoc:screen was never evaluated"
            await asyncio.sleep(3)
            recorded_source.client.new_snapshot()
        recorded, live = await asyncio.gather(recorded_source.diagnosis_scope(60), live_source.diagnosis_scope(60))
        report = await diagnose(live_source)
    finally:
        await recorded_source.aclose()
        await live_source.aclose()
    faulty = {f"node-{n}" for n in (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12)}
    assert faulty <= set(recorded.focus) and set(recorded.focus) == set(live.focus)
    assert "host_down" in recorded.reasons["node-9"] and "xid" in recorded.reasons["node-0"]
    assert ("node-9", "critical") in covered(report.findings)
