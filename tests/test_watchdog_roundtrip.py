"""The ``watchdog`` source reads back, over real HTTP, what the served GPU Watchdog API renders.

A ``ClusterSource`` is served by ``create_watchdog_app`` under uvicorn on an ephemeral localhost
port; ``WatchdogSource`` reads it; every fact must equal what the source returns directly, as far
as the API carries it, and everything the API lacks must come back ``None``.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import datetime

import pytest

from gpudoc.tools.models import GpuMetrics, NodeMetrics
from gpudoc.tools.sim.source import SimSource
from gpudoc.tools.sim.slurm_exporter import slurm_status
from gpudoc.tools.sources.base import ClusterSource, UnknownNodeError
from gpudoc.tools.sources.watchdog import WatchdogSource
from gpudoc.tools.sources.watchdog_shapes import WATCHDOG_ALERT_METRICS
from gpudoc.tools.sources.watchdog_mapping import SLURM_STATUS_TO_STATE
from tests.doubles.fake_cluster import FakeClusterSource
from tests.served_watchdog import serve

#: what GET /api/metrics/current carries per GPU; every other optional field must come back None
API_GPU_FIELDS = (
    "index", "model", "utilization_pct", "memory_used_mib", "memory_total_mib", "temperature_c",
    "power_w", "memory_util_pct", "sm_clock_mhz", "mem_clock_mhz",
)



def _make_source(kind: str) -> ClusterSource:
    if kind == "fake":
        return FakeClusterSource()
    return SimSource.create(
        seed=7,
        nodes=4,
        gpu_model="a100",
        scenarios=["xid79-fell-off-bus@node-1/gpu-2", "host-down@node-3", "thermal-throttle@node-0"],
        realtime=False,
    )


@pytest.fixture(
    scope="module",
    params=[
        "fake",
        "sim",
    ],
)
def served(request: pytest.FixtureRequest) -> Iterator[tuple[ClusterSource, str]]:
    source = _make_source(request.param)
    with serve(source) as base_url:
        yield source, base_url


@pytest.fixture
def direct(served: tuple[ClusterSource, str]) -> ClusterSource:
    return served[0]


@pytest.fixture
async def via_api(served: tuple[ClusterSource, str]) -> AsyncIterator[WatchdogSource]:
    source = WatchdogSource(served[1], timeout_s=10, retries=0)
    yield source
    await source.aclose()


def ms(value: datetime) -> datetime:
    """The API's timestamps carry milliseconds (``toISOString``)."""
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def is_silent(node: NodeMetrics) -> bool:
    """A node whose exporter does not answer: the backend drops it (one with only stale GPUs
    still answers, with no GPU series)."""
    return not node.reachable


def listed(gpu: GpuMetrics) -> bool:
    """A GPU the collector lists: a live one, or a stale one whose exporter still writes its XID."""
    return not gpu.stale or gpu.last_xid is not None


def api_view(node: NodeMetrics) -> NodeMetrics:
    """What the API can tell about a live node: its live GPUs' API fields, its stale GPUs as stale
    (every reading 0 on the wire: no readings, None), nothing else."""
    return NodeMetrics(
        node_id=node.node_id,
        hostname=node.hostname,
        timestamp=ms(node.timestamp),
        gpus=[
            GpuMetrics(
                node_id=node.node_id,
                last_seen=ms(node.timestamp),
                **{field: getattr(gpu, field) for field in API_GPU_FIELDS},
            )
            if not gpu.stale else
            GpuMetrics(
                node_id=node.node_id, index=gpu.index, model=gpu.model, utilization_pct=None, memory_used_mib=None,
                memory_total_mib=None, temperature_c=None, power_w=None, stale=True,
            )
            for gpu in node.gpus
            if listed(gpu)
        ],
    )


async def test_cluster_status(direct: ClusterSource, via_api: WatchdogSource) -> None:
    expected = await direct.cluster_status()
    nodes = await direct.current_metrics()
    live = [gpu for node in nodes if node.reachable for gpu in node.gpus if not gpu.stale]
    shown = [gpu for node in nodes if node.reachable for gpu in node.gpus if listed(gpu)]
    got = await via_api.cluster_status()
    assert len(shown) > len(live)  # a stale GPU is counted, its zeros are not averaged
    assert (got.healthy, got.node_count, got.gpu_count) == (False, len(nodes), len(shown))  # both have a node down
    assert got.avg_temperature_c == round(sum(g.temperature_c for g in live) / len(live), 1)
    assert got.memory_used_gb == round(sum(g.memory_used_mib for g in live) / 1024, 1)
    assert got.last_updated == ms(expected.last_updated)
    assert got.slurm is not None and expected.slurm is not None
    same = ("cpus_total", "cpus_alloc", "nodes_total", "jobs_pending", "jobs_running")
    assert got.slurm.model_dump(include=set(same)) == expected.slurm.model_dump(include=set(same))


async def test_current_metrics_carry_api_fields_and_nothing_else(
    direct: ClusterSource, via_api: WatchdogSource
) -> None:
    expected_nodes = await direct.current_metrics()
    got = {node.node_id: node for node in await via_api.current_metrics()}
    assert list(got) == [node.node_id for node in expected_nodes]
    for node in expected_nodes:
        if is_silent(node):
            assert got[node.node_id].reachable is False
            assert got[node.node_id].gpus == []
        else:
            assert got[node.node_id] == api_view(node)
    some_gpu = next(gpu for node in got.values() for gpu in node.gpus)
    for absent in ("uuid", "pci_bus_id", "last_xid", "xid_events", "clock_event_reasons",
                   "correctable_remapped_rows", "uncorrectable_remapped_rows", "remap_failure",
                   "ecc_dbe_volatile", "pcie_link_width", "nvlink_error_count", "job_id",
                   "power_limit_w", "memory_temperature_c"):
        assert getattr(some_gpu, absent) is None, absent
    assert all(node.network is None and node.driver_version is None for node in got.values())


async def test_one_node_exact_loose_silent_and_unknown(
    direct: ClusterSource, via_api: WatchdogSource
) -> None:
    nodes = await direct.current_metrics()
    live = next(node for node in nodes if not is_silent(node))
    assert await via_api.node_metrics(live.node_id) == api_view(live)
    number = live.node_id.rsplit("-", 1)[-1]
    assert (await via_api.node_metrics(f"Node {number}")).node_id == live.node_id

    silent = next(node for node in nodes if is_silent(node))
    got = await via_api.node_metrics(silent.node_id)
    assert (got.node_id, got.reachable, got.gpus) == (silent.node_id, False, [])

    with pytest.raises(UnknownNodeError) as caught:
        await via_api.node_metrics("node-99")
    assert caught.value.valid_ids == [node.node_id for node in nodes]
    assert all(node.node_id in str(caught.value) for node in nodes)


async def test_gpu_history(direct: ClusterSource, via_api: WatchdogSource) -> None:
    node_id = (await direct.node_ids())[0]
    for wanted in (node_id, None):
        expected = await direct.gpu_history(wanted, 30)
        got = await via_api.gpu_history(wanted, 30)
        assert [(s.node_id, s.gpu_index) for s in got] == [(s.node_id, s.gpu_index) for s in expected]
        for got_series, series in zip(got, expected, strict=True):
            # The backend's window includes the scrape at its start: one sample more, at most.
            assert len(got_series.samples) - len(series.samples) in (0, 1)
            newest = got_series.samples[len(got_series.samples) - len(series.samples):]
            for got_sample, sample in zip(newest, series.samples, strict=True):
                assert got_sample == sample.model_copy(
                    update={
                        "timestamp": ms(sample.timestamp),
                        "sm_clock_mhz": None,
                        "correctable_remapped_rows": None,
                        "nvlink_error_count": None,
                        "pcie_replay_count": None,
                    }
                )
    with pytest.raises(UnknownNodeError):
        await via_api.gpu_history("node-99", 30)


async def test_alert_rules(direct: ClusterSource, via_api: WatchdogSource) -> None:
    """Only rules in the backend's metric vocabulary exist for its API."""
    expected = [rule for rule in await direct.alert_rules() if rule.metric in WATCHDOG_ALERT_METRICS]
    got = await via_api.alert_rules()
    assert got and got == [
        rule.model_copy(update={"created_at": ms(rule.created_at), "updated_at": ms(rule.updated_at)})
        for rule in expected
    ]


async def test_alert_history_without_gpu_index(direct: ClusterSource, via_api: WatchdogSource) -> None:
    served = {rule.id for rule in await direct.alert_rules() if rule.metric in WATCHDOG_ALERT_METRICS}
    expected = [event for event in await direct.alert_history(limit=10_000) if event.rule_id in served][:20]
    got = await via_api.alert_history(limit=20)
    assert got == [
        event.model_copy(
            update={
                "gpu_index": None,
                "fired_at": ms(event.fired_at),
                "resolved_at": event.resolved_at and ms(event.resolved_at),
            }
        )
        for event in expected
    ]
    assert len(await via_api.alert_history(limit=1)) == min(1, len(expected))


async def test_slurm_states_and_counts(direct: ClusterSource, via_api: WatchdogSource) -> None:
    expected = await direct.slurm()
    assert expected is not None
    got = await via_api.slurm()
    assert got is not None
    assert got.jobs is None and got.partitions is None
    assert got.queue == expected.queue
    for got_node, node in zip(got.nodes, expected.nodes, strict=True):
        assert got_node.name == node.name
        assert got_node.state == SLURM_STATUS_TO_STATE[slurm_status(node)]
        assert (got_node.cpus_total, got_node.cpus_alloc) == (node.cpus_total, node.cpus_alloc)
        assert (got_node.memory_total_mb, got_node.memory_alloc_mb) == (
            node.memory_total_mb, node.memory_alloc_mb
        )
        # The API's Slurm nodes carry no gres: Slurm's GPU counts are unknown, not telemetry's.
        assert got_node.gpus_total is None and got_node.reason is None and got_node.gpus_alloc is None


async def test_fake_cluster_states_map_as_documented() -> None:
    """drain -> ["IDLE","DRAIN"], down -> ["DOWN"], mix -> ["MIXED"] on a known cluster."""
    with serve(FakeClusterSource()) as base_url:
        source = WatchdogSource(base_url, retries=0)
        try:
            snapshot = await source.slurm()
        finally:
            await source.aclose()
    assert snapshot is not None
    assert [node.state for node in snapshot.nodes] == [["MIXED"], ["IDLE", "DRAIN"], ["DOWN"]]
    assert [node.gpus_total for node in snapshot.nodes] == [None, None, None]


async def test_cluster_without_slurm() -> None:
    with serve(FakeClusterSource(has_slurm=False)) as base_url:
        source = WatchdogSource(base_url, retries=0)
        try:
            assert await source.slurm() is None
            assert (await source.cluster_status()).slurm is None
            nodes = await source.current_metrics()
        finally:
            await source.aclose()
    # without Slurm nothing names the silent node, so only live nodes are listed
    assert [node.node_id for node in nodes] == ["node-0", "node-1"]


async def test_gpudoc_sim_command_serves_the_simulator() -> None:
    """`gpudoc sim` as a process: its one start-up line names the URL and the placed scenarios."""
    command = [sys.executable, "-m", "gpudoc", "sim", "--port", "0", "--nodes", "3", "--seed", "11",
               "--scenario", "host-down@node-2"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.search(r"on (http://127\.0\.0\.1:\d+) ", line)
        assert match, (line, process.stderr.read() if process.poll() is not None else "")
        assert "scenarios: host-down@node-2" in line
        source = WatchdogSource(match[1], retries=0)
        try:
            status = await source.cluster_status()
            nodes = await source.current_metrics()
        finally:
            await source.aclose()
        assert status.node_count == 3
        assert [(node.node_id, node.reachable) for node in nodes] == [
            ("node-0", True), ("node-1", True), ("node-2", False)
        ]
    finally:
        process.terminate()
        process.wait(timeout=30)
