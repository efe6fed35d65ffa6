"""The Prometheus source's HTTP side and its gaps: auth, TLS, errors, the snapshot cache, and a
default dcgm-exporter whose missing fields the diagnosis must name."""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import HTTPServer, SimpleHTTPRequestHandler
from pathlib import Path

import httpx
import pytest
import yaml

from gpudoc.tools.cluster_tools import build_cluster_tools
from gpudoc.tools.diagnosis.engine import diagnose
from gpudoc.tools.sources.base import SourceError, SourceProtocolError, SourceUnavailableError
from gpudoc.tools.sources.prometheus import PrometheusClient, PrometheusSource
from gpudoc.tools.sources.prometheus.inventory import host_part
from gpudoc.tools.sources.prometheus.promql import SCREEN_RECORD, SCREEN_WINDOWS, PromQL, instance_regex
from tests.doubles.recording_prometheus import RecordingPrometheus
from tests.services import free_port, require_binary
from tests.services.prometheus import RULES, Daemon, start_prometheus, start_sim, wait_for_scrapes

REPO = Path(__file__).resolve().parents[1]
USER, PASSWORD = "gpudoc", "gpudoc-test"
#: bcrypt of PASSWORD (cost 10), as Prometheus's web config wants it
PASSWORD_HASH = "$2b$10$7phM0SyixmVgZ.PbFDJzwe.fcYW/oYUXoE.V1jUZWR2H4zed1qWoC"


def test_shipped_rules_pass_promtool_check_and_unit_tests() -> None:
    promtool = require_binary("promtool", package="prometheus")
    checked = subprocess.run([str(promtool), "check", "rules", str(RULES)], capture_output=True, text=True)
    assert checked.returncode == 0 and "SUCCESS: 16 rules found" in checked.stdout, checked.stdout + checked.stderr
    tests = REPO / "infra" / "prometheus" / "tests" / "gpudoc-rules.test.yml"
    tested = subprocess.run([str(promtool), "test", "rules", str(tests)], capture_output=True, text=True)
    assert tested.returncode == 0 and "SUCCESS" in tested.stdout, tested.stdout + tested.stderr


def test_shipped_screen_rule_is_the_expression_the_source_evaluates() -> None:
    rules = yaml.safe_load(RULES.read_text())
    [screen] = [r for g in rules["groups"] for r in g["rules"] if r.get("record") == SCREEN_RECORD]
    assert " ".join(screen["expr"].split()) == " ".join(PromQL().triage(*SCREEN_WINDOWS).split())


def test_instances_are_escaped_for_promql_and_hosts_named_from_them() -> None:
    assert instance_regex(["gpu-01:9400", "10.0.0.5:9100"]) == "10\\\\.0\\\\.0\\\\.5:9100|gpu\\\\-01:9400"
    assert host_part("gpu001:9400") == "gpu001" and host_part("[fd00::1]:9400") == "fd00::1"
    assert host_part("gpu001") == "gpu001"


# ---- a Prometheus behind TLS and basic auth -------------------------------------------------------


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    openssl = require_binary("openssl", package="openssl")
    work = tmp_path_factory.mktemp("secured")
    subprocess.run([str(openssl), "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-keyout", str(work / "key.pem"), "-out", str(work / "cert.pem"), "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    web = {"tls_server_config": {"cert_file": str(work / "cert.pem"), "key_file": str(work / "key.pem")},
           "basic_auth_users": {USER: PASSWORD_HASH}}
    daemon = start_prometheus(work, None, web_config=web, auth=httpx.BasicAuth(USER, PASSWORD))
    yield daemon
    daemon.stop()


async def test_basic_auth_over_tls_with_verification_switched_off(secured: Daemon) -> None:
    source = PrometheusSource(PrometheusClient(secured.url, username=USER, password=PASSWORD, verify_tls=False))
    try:
        rules = await source.alert_rules()
    finally:
        await source.aclose()
    assert len(rules) == 15 and {r.severity for r in rules} == {"critical", "warning"}


async def test_wrong_credentials_and_an_untrusted_certificate_say_what_to_set(secured: Daemon) -> None:
    wrong = PrometheusClient(secured.url, username=USER, password="nope", verify_tls=False, retries=0)
    with pytest.raises(SourceUnavailableError, match=r"refused the credentials \(401\).*PROMETHEUS_USERNAME"):
        await wrong.query("up")
    await wrong.aclose()
    strict = PrometheusClient(secured.url, username=USER, password=PASSWORD, retries=0)
    with pytest.raises(SourceUnavailableError, match="PROMETHEUS_TLS_VERIFY=false"):
        await strict.query("up")
    await strict.aclose()


# ---- errors -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def not_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real HTTP server that is not Prometheus (a static file server)."""
    directory = tmp_path_factory.mktemp("static")
    (directory / "index.html").write_text("<html>Grafana, perhaps</html>")

    class Quiet(SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            super().__init__(*args, directory=str(directory), **kwargs)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


async def test_unreachable_not_prometheus_and_bad_queries_are_clear_errors(not_prometheus: str,
                                                                         secured: Daemon) -> None:
    closed = PrometheusClient(f"http://127.0.0.1:{free_port()}", retries=0)
    with pytest.raises(SourceUnavailableError, match=r"unreachable \(connection refused\).*PROMETHEUS_URL"):
        await closed.query("up")
    await closed.aclose()
    other = PrometheusClient(not_prometheus, retries=0)
    with pytest.raises(SourceProtocolError, match="not JSON; is the URL the Prometheus API's base"):
        await other.query("up")
    await other.aclose()
    real = PrometheusClient(secured.url, username=USER, password=PASSWORD, verify_tls=False)
    with pytest.raises(SourceProtocolError, match=r"rejected the request for query sum\(: .*parse error"):
        await real.query("sum(")
    await real.aclose()
    with pytest.raises(SourceError, match="either a bearer token or a username"):
        PrometheusClient("http://p:9090", bearer_token="t", username="u", password="p")
    with pytest.raises(SourceError, match="must be an http:// or https:// URL"):
        PrometheusClient("prometheus:9090")


# ---- the snapshot cache -------------------------------------------------------------------------------


async def test_one_snapshot_sends_each_query_once_at_one_instant_with_the_bearer_token() -> None:
    recorder = RecordingPrometheus(delay_s=0.05)
    client = PrometheusClient("http://prometheus.test:9090", bearer_token="s3cret", transport=recorder)
    await asyncio.gather(client.query("up"), client.query("up"), client.query("DCGM_FI_DEV_GPU_TEMP"))
    await client.query("up")
    assert [path for path, _, _ in recorder.requests] == ["/api/v1/query", "/api/v1/query"]
    assert {form["time"] for _, form, _ in recorder.requests} == {f"{client.now():.3f}"}
    assert all(headers["authorization"] == "Bearer s3cret" for _, _, headers in recorder.requests)
    assert client.stats.requests == 2 and client.stats.cache_hits == 2
    client.new_snapshot()
    await client.query("up")
    assert len(recorder.requests) == 3
    await client.aclose()


# ---- a default dcgm-exporter ---------------------------------------------------------------------------


@dataclass
class DefaultCluster:
    sim: Daemon
    prometheus: Daemon


@pytest.fixture(scope="module")
def default_exporter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DefaultCluster]:
    work = tmp_path_factory.mktemp("default-counters")
    sim = start_sim(work, "--nodes", "3", "--seed", "4", "--dcgm-counters", "default", "--scenario",
                    "hbm-uncorrectable@node-1/gpu-2", "--scenario", "thermal-throttle@node-2/gpu-0",
                    history_minutes=25)
    try:
        prometheus = start_prometheus(work, sim.feed)
    except BaseException:
        sim.stop()
        raise
    try:
        wait_for_scrapes(prometheus.url, 6)
        yield DefaultCluster(sim, prometheus)
    finally:
        prometheus.stop()
        sim.stop()


async def test_a_default_exporter_is_diagnosed_and_its_missing_fields_are_named(default_exporter: DefaultCluster) -> None:
    source = PrometheusSource(PrometheusClient(default_exporter.prometheus.url))
    try:
        report = await diagnose(source)
        tools = {tool.name: tool for tool in build_cluster_tools(source)}
        details = json.loads(await tools["get_node_details"].ainvoke({"node_id": "node-1"}))
    finally:
        await source.aclose()
    enable = "add it to the exporter's counters file, e.g. run dcgm-exporter -f infra/dcgm-exporter/gpudoc-counters.csv"
    pending = next(line for line in report.limitations if line.startswith("row remap pending"))
    assert "DCGM_FI_DEV_ROW_REMAP_PENDING" in pending and "off in dcgm-exporter's default counters" in pending
    assert pending.endswith(enable)
    for signal in ("clock-event reasons", "ECC error counts", "PCIe link generation", "NVLink error counters"):
        assert any(line.startswith(signal) for line in report.limitations), signal
    # the faults are still found from what a default exporter does export
    by_subject = {f.subject: f for f in report.findings}
    hbm = by_subject["node-1/gpu-2"]
    assert hbm.severity == "critical" and any("XID 95" in line for line in hbm.evidence)
    assert not any("(applied)" in f.title for f in report.findings)
    assert by_subject["node-2/gpu-0"].rule == "gpu.thermal_slowdown"
    assert any("ROW_REMAP_PENDING" in line for line in details["source_notes"])


async def test_a_url_without_the_api_says_which_base_to_use() -> None:
    """A JSON 404 (another web app, Mimir's root without its Prometheus path) names the missing
    path and what the base URL must be."""
    transport = httpx.MockTransport(lambda request: httpx.Response(404, json={"detail": "Not Found"}))
    client = PrometheusClient("http://mimir.test", retries=0, transport=transport)
    with pytest.raises(SourceProtocolError, match=r"has no /api/v1/query \(404\); is the URL the Prometheus API's "
                                                  r"base\?.*Mimir: its Prometheus path"):
        await client.query("up")
    await client.aclose()
