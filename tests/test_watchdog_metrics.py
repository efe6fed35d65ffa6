"""``/metrics`` speaks the DCGM exporter's Prometheus text format with its metric and label names."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gpudoc.tools.models import GpuMetrics, NodeMetrics
from gpudoc.tools.sim.dcgm_exporter import render_dcgm_metrics
from gpudoc.tools.sim.source import SimSource
from gpudoc.tools.sim.watchdog_api import create_watchdog_app
from tests.doubles.fake_cluster import NOW, FakeClusterSource

DCGM_LABELS = ["gpu", "UUID", "pci_bus_id", "device", "modelName", "Hostname", "DCGM_FI_DRIVER_VERSION"]


async def scrape() -> httpx.Response:
    app = create_watchdog_app(FakeClusterSource())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sim") as client:
        return await client.get("/metrics")


def samples_by_name(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((sample.labels, sample.value))
    return found


async def test_exposition_parses_with_dcgm_names_types_and_labels() -> None:
    response = await scrape()
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    families = {family.name: family for family in text_string_to_metric_families(response.text)}
    assert families["DCGM_FI_DEV_GPU_TEMP"].type == "gauge"
    assert families["DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS"].type == "counter"
    assert families["node_infiniband_link_downed"].type == "counter"

    samples = samples_by_name(response.text)
    temps = {(labels["Hostname"], labels["gpu"]): value for labels, value in samples["DCGM_FI_DEV_GPU_TEMP"]}
    # node-0: 4 live GPUs; node-1: GPU 1 is stale, so only 0 and 2; node-2 is unreachable
    assert sorted(temps) == [("node-0", "0"), ("node-0", "1"), ("node-0", "2"), ("node-0", "3"),
                             ("node-1", "0"), ("node-1", "2")]
    assert temps[("node-0", "2")] == 63.0

    labels, _ = samples["DCGM_FI_DEV_GPU_UTIL"][0]
    assert list(labels) == [*DCGM_LABELS, "hpc_job", "gpu_name"]  # gpu_name: for GPU Watchdog's collector
    assert labels["gpu_name"] == "NVIDIA_A100-SXM4-80GB"
    assert labels["device"] == "nvidia0" and labels["modelName"] == "NVIDIA A100-SXM4-80GB"
    assert labels["UUID"].startswith("GPU-") and labels["hpc_job"] == "41873"
    assert labels["DCGM_FI_DRIVER_VERSION"] == "550.54.15"
    without_job = [labels for labels, _ in samples["DCGM_FI_DEV_GPU_UTIL"] if labels["gpu"] == "3"]
    assert "hpc_job" not in without_job[0]


async def test_absent_values_give_no_sample() -> None:
    samples = samples_by_name((await scrape()).text)
    # node-1 reports no clocks, no memory temperature and no driver version
    for name in ("DCGM_FI_DEV_SM_CLOCK", "DCGM_FI_DEV_MEM_CLOCK", "DCGM_FI_DEV_MEMORY_TEMP"):
        assert {labels["Hostname"] for labels, _ in samples[name]} == {"node-0"}
    node1 = [labels for labels, _ in samples["DCGM_FI_DEV_GPU_TEMP"] if labels["Hostname"] == "node-1"]
    assert all("DCGM_FI_DRIVER_VERSION" not in labels for labels in node1)
    # the stale GPU reads nothing any more, but the exporter keeps its last XID (79)
    xids = {(labels["Hostname"], labels["gpu"]): (labels["err_code"], value)
            for labels, value in samples["DCGM_FI_DEV_XID_ERRORS"]}
    assert xids == {("node-1", "1"): ("79", 79.0)}
    assert "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL" not in samples


async def test_values_and_infiniband() -> None:
    samples = samples_by_name((await scrape()).text)
    fb = {labels["gpu"]: value for labels, value in samples["DCGM_FI_DEV_FB_FREE"] if labels["Hostname"] == "node-0"}
    assert fb["1"] == 81920 - 61568  # the fake reports no reserved memory
    failures = [value for labels, value in samples["DCGM_FI_DEV_ROW_REMAP_FAILURE"]]
    assert failures and set(failures) == {0.0}
    assert samples["node_infiniband_state_id"] == [({"device": "mlx5_0", "port": "1", "Hostname": "node-0"}, 4.0)]
    assert samples["node_infiniband_link_downed_total"] == [
        ({"device": "mlx5_0", "port": "1", "Hostname": "node-0"}, 0.0)
    ]


def test_exposition_line_format_and_escaping() -> None:
    gpu = GpuMetrics(
        node_id="n", index=0, uuid="GPU-b42d", model="NVIDIA H100 80GB HBM3", pci_bus_id="00000000:18:00.0",
        utilization_pct=0, memory_used_mib=0.5, memory_total_mib=81559, temperature_c=30, power_w=71.25,
        last_xid=79,
    )
    node = NodeMetrics(node_id="n", hostname='gpu"001\\', timestamp=NOW, gpus=[gpu])
    text = render_dcgm_metrics([node])
    assert (
        'DCGM_FI_DEV_GPU_TEMP{gpu="0",UUID="GPU-b42d",pci_bus_id="00000000:18:00.0",device="nvidia0",'
        'modelName="NVIDIA H100 80GB HBM3",Hostname="gpu\\"001\\\\",gpu_name="NVIDIA_H100_80GB_HBM3"} 30\n'
    ) in text
    assert 'DCGM_FI_DEV_POWER_USAGE{' in text and "} 71.250000\n" in text  # DCGM doubles print with %f
    assert "# TYPE DCGM_FI_DEV_XID_ERRORS gauge\n" in text
    parsed = samples_by_name(text)
    assert parsed["DCGM_FI_DEV_XID_ERRORS"][0][1] == 79
    assert parsed["DCGM_FI_DEV_FB_USED"][0][0]["Hostname"] == 'gpu"001\\'
    assert parsed["DCGM_FI_DEV_FB_TOTAL"][0][1] == 81559


def test_nothing_live_renders_empty() -> None:
    node = NodeMetrics(node_id="n", hostname="n", timestamp=NOW, reachable=False)
    assert render_dcgm_metrics([node]) == ""
    assert render_dcgm_metrics([]) == ""


async def test_simulated_cluster_metrics_follow_its_faults() -> None:
    source = SimSource.create(
        seed=3, nodes=3, scenarios=["xid79-fell-off-bus@node-1/gpu-2", "host-down@node-2", "ib-flap@node-0"],
        realtime=False,
    )
    app = create_watchdog_app(source)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sim") as client:
        text = (await client.get("/metrics")).text
    samples = samples_by_name(text)
    gpus = {(labels["Hostname"], labels["gpu"]) for labels, _ in samples["DCGM_FI_DEV_GPU_TEMP"]}
    nodes = await source.current_metrics()
    expected = {
        (node.hostname, str(gpu.index))
        for node in nodes
        if node.reachable
        for gpu in node.gpus
        if not gpu.stale
    }
    assert gpus == expected
    assert ("node-1", "2") not in gpus and not any(host == "node-2" for host, _ in gpus)
    states = {labels["Hostname"]: value for labels, value in samples["node_infiniband_state_id"]}
    ports = {node.hostname: node.network for node in nodes if node.reachable and node.network}
    assert set(states) == set(ports)
    assert states["node-0"] == ports["node-0"][0].state_id
    for labels, _ in samples["DCGM_FI_DEV_GPU_UTIL"]:
        assert list(labels)[:7] == DCGM_LABELS
    # the fallen GPU's XID 79 stays visible after its readings stopped
    assert [value for labels, value in samples["DCGM_FI_DEV_XID_ERRORS"]
            if (labels["Hostname"], labels["gpu"]) == ("node-1", "2")] == [79.0]
