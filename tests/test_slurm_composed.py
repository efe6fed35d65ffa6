"""A telemetry source with Slurm's facts from Slurm itself (``WithSlurmSource``), and the
options that build it. Telemetry is the fixed test double (nodes 0-2); Slurm is the real 22.05
recording (nodes 0-3) served by a scripted slurmrestd."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from gpudoc.cli import main
from gpudoc.tools.sim.source import SimSource
from gpudoc.tools.sources.base import SourceUnavailableError, UnknownNodeError
from gpudoc.tools.sources.factory import SourceOptions, open_source
from gpudoc.tools.sources.slurm_cli import SlurmCliClient
from gpudoc.tools.sources.slurm_rest import SlurmRestClient
from gpudoc.tools.sources.watchdog import WatchdogSource
from gpudoc.tools.sources.with_slurm import WithSlurmSource
from tests.doubles.fake_cluster import FakeClusterSource
from tests.doubles.fake_slurmrestd import FakeSlurmrestd


def composed(server: FakeSlurmrestd | None = None) -> WithSlurmSource:
    server = server or FakeSlurmrestd(offers=("v0.0.38",))
    return WithSlurmSource(FakeClusterSource(), server.client())


async def test_slurm_facts_come_from_slurm_not_from_telemetry():
    source = composed()
    snap = await source.slurm()
    assert [n.name for n in snap.nodes] == ["node-0", "node-1", "node-2", "node-3"]  # the double has node-0..2
    assert snap.jobs is not None and len(snap.jobs) == 10
    status = await source.cluster_status()
    assert (status.slurm.jobs_pending, status.slurm.jobs_running, status.slurm.nodes_total) == (5, 2, 4)
    assert status.node_count == 3  # telemetry's own figures stay
    assert source.name == "fake+slurm"


async def test_a_node_only_slurm_knows_is_listed_as_not_reporting():
    source = composed()
    nodes = await source.current_metrics()
    assert [n.node_id for n in nodes] == ["node-0", "node-1", "node-2", "node-3"]
    silent = nodes[-1]
    assert (silent.reachable, silent.gpus) == (False, [])
    assert (await source.node_metrics("Node 3")).node_id == "node-3"
    assert await source.gpu_history("node-3") == []
    assert (await source.node_metrics("node 1")).node_id == "node-1"  # loose spelling of a telemetry node
    with pytest.raises(UnknownNodeError) as caught:
        await source.node_metrics("node-9")
    assert caught.value.valid_ids == ["node-0", "node-1", "node-2", "node-3"]


async def test_a_failing_slurm_never_hides_the_metrics():
    server = FakeSlurmrestd(offers=("v0.0.38",))
    server.override = {"/slurm/v0.0.38/nodes": lambda r: httpx.Response(502, text="bad gateway")}
    source = composed(server)
    assert [n.node_id for n in await source.current_metrics()] == ["node-0", "node-1", "node-2"]
    assert (await source.cluster_status()).slurm.nodes_total == 3  # telemetry's own summary
    with pytest.raises(SourceUnavailableError, match="slurmrestd at .* HTTP 502"):
        await source.slurm()


def test_slurm_hostnames_match_telemetry_hostnames_only_when_unique():
    from datetime import UTC, datetime

    from gpudoc.tools.models import NodeMetrics, SlurmNode
    from gpudoc.tools.sources.with_slurm import with_silent_nodes

    def slurm_node(name, hostname):
        return SlurmNode(name=name, hostname=hostname, state=["IDLE"], cpus_total=1, cpus_alloc=0,
                         memory_total_mb=1, memory_alloc_mb=0, gpus_total=8)

    now = datetime(2026, 1, 1, tzinfo=UTC)
    telemetry = [NodeMetrics(node_id="gpu001", hostname="gpu001", timestamp=now)]
    # NodeName n0 on host gpu001: the same machine; n1 and n2 share host "vm": unknown to telemetry
    login = slurm_node("login1", None).model_copy(update={"gpus_total": 0})  # no GPUs: no GPU telemetry expected
    merged = with_silent_nodes(telemetry, [slurm_node("n0", "gpu001"), slurm_node("n1", "vm"), slurm_node("n2", "vm"), login], now)
    assert [(n.node_id, n.reachable) for n in merged] == [("gpu001", True), ("n1", False), ("n2", False)]


# ---- options ----------------------------------------------------------------------------------------


def test_slurmrestd_url_composes_slurm_with_watchdog():
    source = open_source(SourceOptions(source="watchdog", slurmrestd_url="http://head:6820", slurm_jwt="t"))
    assert isinstance(source, WithSlurmSource) and isinstance(source.telemetry, WatchdogSource)
    assert isinstance(source.scheduler, SlurmRestClient) and source.scheduler.base_url == "http://head:6820"
    cli = open_source(SourceOptions(source="watchdog", slurm="cli"))
    assert isinstance(cli.scheduler, SlurmCliClient)
    assert isinstance(open_source(SourceOptions(source="watchdog")), WatchdogSource)


def test_the_simulator_keeps_its_own_slurm():
    assert isinstance(open_source(SourceOptions(source="sim", slurmrestd_url="http://head:6820")), SimSource)
    with pytest.raises(ValueError, match="the simulator has its own Slurm"):
        open_source(SourceOptions(source="sim", slurm="rest", slurmrestd_url="http://head:6820"))


def test_slurm_rest_needs_a_url():
    with pytest.raises(ValueError, match="SLURMRESTD_URL"):
        open_source(SourceOptions(source="watchdog", slurm="rest"))
    with pytest.raises(ValueError, match="must start with http"):
        open_source(SourceOptions(source="watchdog", slurmrestd_url="head:6820"))


def test_command_line_errors_name_the_variable(monkeypatch, capsys):
    monkeypatch.delenv("SLURMRESTD_URL", raising=False)
    assert main(["diagnose", "--source", "watchdog", "--slurm", "rest"]) != 0
    error = capsys.readouterr().err
    assert "SLURMRESTD_URL" in error and "Traceback" not in error


def test_slurm_nodename_and_telemetry_hostname_are_matched_through_nodehostname():
    from datetime import UTC, datetime

    from gpudoc.tools.diagnosis.facts import ClusterFacts
    from gpudoc.tools.models import NodeMetrics, QueueCounts, SlurmNode, SlurmSnapshot
    from gpudoc.tools.render_node_details import slurm_node_for

    now = datetime(2026, 1, 1, tzinfo=UTC)
    telemetry = NodeMetrics(node_id="gpu001", hostname="gpu001", timestamp=now)
    named = SlurmNode(name="node-0", hostname="gpu001", state=["IDLE", "DRAIN"], reason="fan", cpus_total=1,
                      cpus_alloc=0, memory_total_mb=1, memory_alloc_mb=0, gpus_total=8)
    facts = ClusterFacts(source="t", collected_at=now, nodes=[telemetry],
                         slurm=SlurmSnapshot(nodes=[named], queue=QueueCounts(), timestamp=now))
    assert slurm_node_for(telemetry, [named]) is named and facts.slurm_node("gpu001", "gpu001") is named
    assert facts.node_id_for_slurm_name("node-0") == "gpu001"
    twin = named.model_copy(update={"name": "node-1"})  # two slurmd on one host: no guess
    assert slurm_node_for(telemetry, [named, twin]) is None


async def test_what_slurm_could_not_give_reaches_every_tool_and_the_diagnosis():
    import json

    from gpudoc.tools.cluster_tools import build_cluster_tools
    from gpudoc.tools.diagnosis.facts import gather_facts

    server = FakeSlurmrestd(offers=("v0.0.38",))
    server.override = {"/slurm/v0.0.38/jobs": lambda r: httpx.Response(500, json={"errors": [{"description": "Socket timed out"}]})}
    source = composed(server)
    tools = {t.name: t for t in build_cluster_tools(source)}
    status, jobs = await asyncio.gather(tools["get_slurm_status"].ainvoke({}), tools["get_slurm_jobs"].ainvoke({}))
    for output in (json.loads(status), json.loads(jobs)):  # both read the one shared fetch
        assert any("Slurm jobs unavailable" in line and "Socket timed out" in line for line in output["source_notes"])
    assert json.loads(jobs)["note"] == "Slurm's job list could not be read just now"
    facts = await gather_facts(source)
    assert any("Slurm jobs unavailable" in line for line in facts.limitations)
    assert server.seen["/slurm/v0.0.38/jobs"] == 1
