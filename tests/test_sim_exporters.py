"""The simulator's per-node exporters against NVIDIA's dcgm-exporter 4.x and node_exporter."""

from __future__ import annotations

import asyncio
import re
import subprocess
from pathlib import Path

import httpx
import pytest

from gpudoc.tools.sim.dcgm_exporter import DcgmExporter
from gpudoc.tools.sim.dcgm_fields import (
    COUNTER_PROFILES,
    GPUDOC_EXTRA_FIELDS,
    NVIDIA_DEFAULT_FIELDS,
    CountersError,
    load_counters,
    parse_counters_csv,
)
from gpudoc.tools.sim.exposition import go_float
from gpudoc.tools.sim.node_exporter import render_node_exporter
from gpudoc.tools.sim.prometheus_feed import history_openmetrics
from gpudoc.tools.sim.source import SimSource
from gpudoc.tools.sim.watchdog_api import create_watchdog_app
from tests.services import require_binary

REPO = Path(__file__).resolve().parents[1]
COUNTERS_CSV = REPO / "infra" / "dcgm-exporter" / "gpudoc-counters.csv"
LABELS = ["gpu", "UUID", "pci_bus_id", "device", "modelName", "Hostname", "DCGM_FI_DRIVER_VERSION"]
#: what promtool says about the real dcgm-exporter's own naming (camelCase labels, counters
#: without _total): the only complaints the simulated page may draw
EXPORTER_LINT = ("label names should be written in 'snake_case' not 'camelCase'",
                 'counter metrics should have "_total" suffix', "metric name should not include type 'counter'")


def frozen(*scenarios: str, nodes: int = 4) -> SimSource:
    return SimSource.create(seed=9, nodes=nodes, scenarios=list(scenarios), realtime=False)


_LINE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})? (\S+)$")
_LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')


def families(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Samples by metric name as written (a client library's parser would rename counters)."""
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for line in text.splitlines():
        match = _LINE.match(line)
        if match is None:
            continue
        name, labels, value = match.groups()
        parsed = {k: v.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")
                  for k, v in _LABEL.findall(labels or "")}
        out.setdefault(name, []).append((parsed, float(value)))
    return out


async def page(source: SimSource, path: str, exporter: DcgmExporter | None = None) -> httpx.Response:
    app = create_watchdog_app(source, exporter)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sim") as client:
        return await client.get(path)


async def test_gpu_page_is_one_node_with_the_exporters_labels_and_default_on_fields() -> None:
    source = frozen("nvlink-degraded@node-1/gpu-3")
    response = await page(source, "/metrics/gpu/node-1/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain; version=0.0.4")
    found = families(response.text)
    assert {labels["Hostname"] for samples in found.values() for labels, _ in samples} == {"node-1"}
    for name in NVIDIA_DEFAULT_FIELDS:
        if name not in ("DCGM_FI_DEV_VGPU_LICENSE_STATUS", "DCGM_FI_DRIVER_VERSION"):  # blank / a label
            assert name in found, name
    labels, _ = found["DCGM_FI_DEV_GPU_TEMP"][0]
    assert list(labels)[:7] == LABELS and labels["gpu_name"] == labels["modelName"].replace(" ", "_")
    # dcgm-exporter >= 4.0 names the XID on its gauge
    xids = {labels["gpu"]: (labels["err_code"], labels["err_msg"], value) for labels, value in found["DCGM_FI_DEV_XID_ERRORS"]}
    assert xids["3"] == ("74", "NVLINK Error", 74.0) and xids["0"] == ("0", "No Error", 0.0)
    # NVLink errors by kind, adding up to the total the simulator tracks
    node = await source.node_metrics("node-1")
    kinds = [f"DCGM_FI_DEV_NVLINK_{k}_ERROR_COUNT_TOTAL" for k in ("CRC_FLIT", "CRC_DATA", "REPLAY", "RECOVERY")]
    per_kind = [dict((l["gpu"], v) for l, v in found[k])["3"] for k in kinds]
    assert all(v > 0 for v in per_kind) and sum(per_kind) == node.gpus[3].nvlink_error_count


async def test_doubles_are_printed_as_dcgm_does_and_free_memory_leaves_out_the_reserved() -> None:
    source = frozen()
    text = (await page(source, "/metrics/gpu/node-0/metrics")).text
    power_line = next(line for line in text.splitlines() if line.startswith("DCGM_FI_DEV_POWER_USAGE{"))
    assert power_line.rsplit(" ", 1)[1].count(".") == 1 and len(power_line.rsplit(".", 1)[1]) == 6  # %f
    found = families(text)
    by_gpu = {name: {labels["gpu"]: value for labels, value in found[name]}
              for name in ("DCGM_FI_DEV_FB_FREE", "DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_FB_RESERVED", "DCGM_FI_DEV_FB_TOTAL")}
    for gpu in by_gpu["DCGM_FI_DEV_FB_USED"]:
        assert by_gpu["DCGM_FI_DEV_FB_RESERVED"][gpu] == 565  # A100 80GB
        assert by_gpu["DCGM_FI_DEV_FB_FREE"][gpu] == (
            by_gpu["DCGM_FI_DEV_FB_TOTAL"][gpu] - by_gpu["DCGM_FI_DEV_FB_USED"][gpu] - 565)


async def test_nvidias_default_counters_leave_out_what_the_default_file_comments_out() -> None:
    source = frozen("hbm-uncorrectable@node-2/gpu-1")
    default = DcgmExporter(load_counters("default")[0])
    found = families((await page(source, "/metrics/gpu/node-2/metrics", default)).text)
    for name in GPUDOC_EXTRA_FIELDS:
        assert name not in found, name
    assert "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS" in found and "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE" in found


def test_shipped_counters_file_is_nvidias_defaults_plus_gpudocs_fields() -> None:
    counters, unsupported = load_counters(str(COUNTERS_CSV))
    assert unsupported == []
    assert [c.name for c in counters] == [c.name for c in COUNTER_PROFILES["gpudoc"]]
    assert {c.name: c.kind for c in counters} == {c.name: c.kind for c in COUNTER_PROFILES["gpudoc"]}


def test_counters_file_errors_name_the_line() -> None:
    counters, unsupported = parse_counters_csv("# comment\nDCGM_FI_DEV_GPU_TEMP, gauge, t\nDCGM_FI_DEV_FAN_SPEED, gauge, f\n")
    assert [c.name for c in counters] == ["DCGM_FI_DEV_GPU_TEMP"] and unsupported == ["DCGM_FI_DEV_FAN_SPEED"]
    with pytest.raises(CountersError, match="line 2: type must be gauge, counter or label"):
        parse_counters_csv("\nDCGM_FI_DEV_GPU_TEMP, histogram, t\n", "f.csv")
    with pytest.raises(CountersError, match="Cannot read the dcgm-exporter counters file"):
        load_counters("/nonexistent/counters.csv")


async def test_a_fallen_gpu_keeps_only_its_xid_and_the_xid_count_window_counts_every_code() -> None:
    source = frozen("hbm-uncorrectable@node-0/gpu-2", "xid79-fell-off-bus@node-1/gpu-5")
    fallen = families((await page(source, "/metrics/gpu/node-1/metrics")).text)
    series_of_gpu5 = {name for name, samples in fallen.items() for labels, _ in samples if labels.get("gpu") == "5"}
    assert series_of_gpu5 == {"DCGM_FI_DEV_XID_ERRORS", "DCGM_EXP_XID_ERRORS_COUNT"}
    # hbm-uncorrectable logs XID 48 then 95 a second apart: the gauge keeps 95, the count field both.
    # The page as it was scraped two minutes after them (all faults begin before the sim's now):
    hbm = await source.node_metrics("node-0")
    onset = min(e.timestamp for e in hbm.gpus[2].xid_events or [])
    telemetry = source.telemetry
    bucket = int(onset.timestamp() // 15) + 8
    found = families(DcgmExporter().render_node(telemetry.node_metrics(0, bucket, telemetry.stamp(bucket))))
    counts = {(l["gpu"], l.get("xid")): v for l, v in found["DCGM_EXP_XID_ERRORS_COUNT"]}
    assert counts[("2", "48")] == 1 and counts[("2", "95")] == 1
    assert counts[("0", None)] == 0  # a GPU without XIDs in the window: one 0 without an xid label
    assert {l["window_size_in_ms"] for l, _ in found["DCGM_EXP_XID_ERRORS_COUNT"]} == {"300000"}
    gauge = {l["gpu"]: l["err_code"] for l, _ in found["DCGM_FI_DEV_XID_ERRORS"]}
    assert gauge["2"] == "95"


async def test_down_host_fails_like_a_down_host_and_unknown_nodes_are_404() -> None:
    source = frozen("host-down@node-3")
    for kind in ("gpu", "node"):
        response = await page(source, f"/metrics/{kind}/node-3/metrics")
        assert response.status_code == 502 and "node-3" in response.text
    assert (await page(source, "/metrics/gpu/node-42/metrics")).status_code == 404
    whole = families((await page(source, "/metrics")).text)
    assert "node-3" not in {labels["Hostname"] for labels, _ in whole["DCGM_FI_DEV_GPU_TEMP"]}


async def test_node_exporter_page_has_infiniband_and_the_host_name() -> None:
    source = frozen("ib-flap@node-2")
    found = families((await page(source, "/metrics/node/node-2/metrics")).text)
    states = {labels["device"]: value for labels, value in found["node_infiniband_state_id"]}
    node = await source.node_metrics("node-2")
    assert states == {p.device: float(p.state_id) for p in node.network or []}
    assert found["node_uname_info"][0][0]["nodename"] == "node-2"
    rates = {value for _, value in found["node_infiniband_rate_bytes_per_second"]}
    assert rates == {25e9}  # 200 Gb/s HDR
    assert go_float(25e9) == "2.5e+10" and go_float(1234567) == "1.234567e+06" and go_float(0.5) == "0.5"
    assert render_node_exporter(node).count("node_infiniband_link_downed_total{") == 4


async def test_energy_counter_integrates_the_power_readings() -> None:
    source = frozen()
    before = (await source.node_metrics("node-0")).gpus[0]
    powers = []
    for _ in range(40):
        source.advance(15)
        powers.append((await source.node_metrics("node-0")).gpus[0].power_w)
    after = (await source.node_metrics("node-0")).gpus[0]
    assert after.energy_mj is not None and before.energy_mj is not None
    assert after.energy_mj - before.energy_mj == pytest.approx(sum(powers) * 15 * 1000, rel=1e-6)


async def test_simulated_pages_draw_only_the_real_exporters_naming_lint() -> None:
    promtool = require_binary("promtool", package="prometheus")
    source = frozen("nvlink-degraded@node-1/gpu-3", "ib-flap@node-1", "xid79-fell-off-bus@node-1/gpu-6")
    for path in ("/metrics/gpu/node-1/metrics", "/metrics/node/node-1/metrics"):
        text = (await page(source, path)).text
        result = await asyncio.to_thread(subprocess.run, [str(promtool), "check", "metrics"], input=text,
                                         capture_output=True, text=True)
        complaints = {line.split(" ", 1)[1] for line in (result.stdout + result.stderr).splitlines() if line.strip()}
        assert complaints <= set(EXPORTER_LINT), complaints


def test_history_is_openmetrics_with_the_scrape_labels_in_time_order() -> None:
    source = SimSource.create(seed=9, nodes=2, scenarios=["host-down@node-1"], realtime=False)
    lines = history_openmetrics(source, DcgmExporter(), minutes=20, step_s=60)
    assert lines[-1] == "# EOF"
    ups = [line for line in lines if line.startswith("up{")]
    assert any(line.startswith('up{instance="node-0:9400",job="dcgm"} 1 ') for line in ups)
    down = [line for line in ups if 'instance="node-1:9100"' in line]
    assert down[0].split(" ")[1] == "1" and down[-1].split(" ")[1] == "0"  # host-down 12 min ago
    temps = [line for line in lines if line.startswith("DCGM_FI_DEV_GPU_TEMP{") and 'gpu="0"' in line
             and 'Hostname="node-0"' in line]
    stamps = [float(line.rsplit(" ", 1)[1]) for line in temps]
    assert stamps == sorted(stamps) and 'instance="node-0:9400",job="dcgm"' in temps[0]
