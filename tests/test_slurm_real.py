"""gpudoc against a real Slurm 22.05: slurmrestd with JWT and the Slurm commands, on the same
daemons, in the states ``make_faulty`` produced (running and pending jobs with Slurm's own
reasons, a node drained with a reason, a node whose slurmd was killed), alone and composed with
telemetry: the GPU Watchdog API, and a real Prometheus scraping the simulator's exporters."""

from __future__ import annotations

import json

import pytest

from gpudoc.cli import main
from gpudoc.tools.cluster_tools import build_cluster_tools
from gpudoc.tools.diagnosis.engine import diagnose
from gpudoc.tools.sim.source import SimSource
from gpudoc.tools.sources.base import SourceUnavailableError
from gpudoc.tools.sources.factory import SourceOptions, open_source
from gpudoc.tools.sources.slurm_cli import SlurmCliClient
from gpudoc.tools.sources.slurm_rest import SlurmRestClient, SlurmRestError
from gpudoc.tools.sources.with_slurm import WithSlurmSource
from tests.served_watchdog import serve
from tests.services.prometheus import start_prometheus, start_sim, wait_for_scrapes
from tests.slurm_fixtures import comparable_snapshot


@pytest.fixture(scope="module")
def slurm(slurm_cluster):
    cluster, faults = slurm_cluster
    return cluster, faults, cluster.token()


def by_id(snapshot):
    return {job.job_id: job for job in snapshot.jobs}


async def test_slurmrestd_reports_the_faulty_cluster(slurm):
    cluster, faults, token = slurm
    client = SlurmRestClient(cluster.rest_url, token=token)
    snap = await client.snapshot()
    assert client.version == "v0.0.38"
    nodes = {node.name: node for node in snap.nodes}
    assert (nodes[faults.drained].sinfo_state, nodes[faults.drained].reason) == ("draining", faults.drain_reason)
    assert nodes[faults.dead].state == ["DOWN", "NOT_RESPONDING"] and nodes[faults.dead].reason == "Not responding"
    jobs = by_id(snap)
    ids = faults.jobs
    assert jobs[ids["train"]].state == "RUNNING" and jobs[ids["train"]].gpu_indices == {"node-0": list(range(8))}
    assert jobs[ids["eval"]].gpu_indices == {faults.drained: [0, 1]}
    assert (jobs[ids["big"]].pending_reason, jobs[ids["next"]].pending_reason) == ("Resources", "Priority")
    assert jobs[ids["pinned"]].pending_reason == f"ReqNodeNotAvail, UnavailableNodes:{faults.drained}"
    assert (jobs[ids["multi"]].state, jobs[ids["multi"]].state_reason) == ("NODE_FAIL", "NodeDown")
    assert (jobs[ids["broken"]].state, jobs[ids["broken"]].exit_code) == ("FAILED", 3)
    assert snap.scheduler.responding is True and snap.scheduler.slurm_version.startswith("22.05")
    await client.aclose()


async def test_the_cli_on_the_same_daemons_reports_the_same_facts(slurm, monkeypatch):
    cluster, _, token = slurm
    rest = SlurmRestClient(cluster.rest_url, token=token)
    cli = SlurmCliClient(env={"SLURM_CONF": str(cluster.conf)})
    from_rest, from_cli = await rest.snapshot(), await cli.snapshot()
    assert from_cli.scheduler.api == "Slurm CLI" and from_cli.notes == []
    rest_facts, cli_facts = comparable_snapshot(from_rest), comparable_snapshot(from_cli)
    for volatile in ("scheduler",):  # counters move between the two reads
        rest_facts.pop(volatile), cli_facts.pop(volatile)
    assert cli_facts == rest_facts
    await rest.aclose()


async def test_slurmrestd_refusals_are_clear(slurm):
    cluster, _, _ = slurm
    with pytest.raises(SlurmRestError, match="HTTP 401.*SLURM_JWT is not set"):
        await SlurmRestClient(cluster.rest_url).snapshot()
    with pytest.raises(SourceUnavailableError, match="HTTP 500.*invalid token"):
        await SlurmRestClient(cluster.rest_url, token="not.a.token", user=cluster.user, retries=0).snapshot()
    with pytest.raises(SlurmRestError, match="does not serve /slurm/v0.0.41"):
        await SlurmRestClient(cluster.rest_url, token=cluster.token(), version="v0.0.41").snapshot()


async def test_cli_without_a_reachable_controller_says_so(slurm, tmp_path):
    cluster, _, _ = slurm
    broken = tmp_path / "slurm.conf"
    broken.write_text(cluster.conf.read_text().replace(f"SlurmctldPort={cluster.ctld_port}", "SlurmctldPort=9"))
    # sinfo --json exits 0 with an empty node list and an error when slurmctld does not answer
    with pytest.raises(SourceUnavailableError, match="sinfo --json gave no node list.*Slurm answered with errors"):
        await SlurmCliClient(env={"SLURM_CONF": str(broken)}, timeout_s=20).snapshot()


# ---- composed with telemetry: the tools and the diagnosis ---------------------------------------


@pytest.fixture(scope="module")
def watchdog_url():
    """A GPU Watchdog API (the simulator's, over real HTTP) for the same four node names."""
    with serve(SimSource.create(seed=5, nodes=4, realtime=False)) as url:
        yield url


def composed(slurm, watchdog_url, mode: str = "rest"):
    cluster, _, token = slurm
    return open_source(SourceOptions(
        source="watchdog", backend_base_url=watchdog_url, slurm=mode,
        slurmrestd_url=cluster.rest_url if mode == "rest" else None, slurm_jwt=token,
    ))


def tool(source, name):
    return next(t for t in build_cluster_tools(source) if t.name == name)


@pytest.mark.parametrize("mode", ["rest", "cli"])
async def test_tools_show_real_slurm_next_to_telemetry(slurm, watchdog_url, mode, monkeypatch):
    cluster, faults, _ = slurm
    monkeypatch.setenv("SLURM_CONF", str(cluster.conf))
    source = composed(slurm, watchdog_url, mode)
    assert isinstance(source, WithSlurmSource)
    status = json.loads(await tool(source, "get_slurm_status").ainvoke({}))
    problems = {p["node"]: p for p in status["problem_nodes"]}
    assert problems[faults.drained]["reason"] == faults.drain_reason and problems[faults.drained]["by"] == cluster.user
    assert problems[faults.dead]["state"] == ["DOWN", "NOT_RESPONDING"]
    assert status["state_counts"][ "down*"] == 1 and status["state_counts"]["draining"] == 1
    assert status["pending_reasons"]["Resources"] == 1 and status["pending_reasons"]["Priority"] == 1
    assert status["scheduler"]["responding"] is True
    pending = json.loads(await tool(source, "get_slurm_jobs").ainvoke({"state": "PENDING"}))
    reasons = {job["id"]: job["reason"] for job in pending["jobs"]}
    assert reasons[faults.jobs["big"]] == "Resources" and reasons[faults.jobs["held"]] == "JobHeldUser"
    on_node = json.loads(await tool(source, "get_slurm_jobs").ainvoke({"node": "node 0"}))
    assert [job["gpu_idx"] for job in on_node["jobs"] if job["state"] == "RUNNING"] == [{"node-0": list(range(8))}]
    await source.aclose()


async def test_diagnosis_reports_the_node_whose_slurmd_died(slurm, watchdog_url):
    _, faults, _ = slurm
    source = composed(slurm, watchdog_url)
    report = await diagnose(source)
    dead = [f for f in report.findings if f.subject == faults.dead]
    assert dead and dead[0].rule == "node.slurm_not_responding" and dead[0].severity == "warning"
    assert "slurmd" in dead[0].cause and any("Not responding" in line for line in dead[0].evidence)
    drained = next(f for f in report.findings if f.subject == faults.drained)
    # GPU Watchdog reports no XIDs: the reason alone names XID 79, to be confirmed on the node
    assert (drained.rule, drained.severity, drained.gpus) == ("node.drained_for_xid", "warning", ["node-3/gpu-5"])
    # the jobs waiting on the drained node fold into its finding, with the job that asks for it by name
    assert any(f"jobs {faults.jobs['pinned']} ask for {faults.drained} by name" in line for line in drained.evidence)
    await source.aclose()


def test_gpudoc_diagnose_with_slurmrestd_from_the_command_line(slurm, watchdog_url, monkeypatch, capsys):
    cluster, faults, token = slurm
    monkeypatch.setenv("SLURM_JWT", token)
    code = main(["diagnose", "--source", "watchdog", "--backend-url", watchdog_url, "--slurm", "rest",
                 "--slurmrestd-url", cluster.rest_url, "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code in (0, 1, 2) and report["source"] == "watchdog+slurm"
    assert {f["subject"] for f in report["findings"]} >= {faults.dead, faults.drained}


# ---- composed with a real Prometheus: --source prometheus with slurmrestd -----------------------


@pytest.fixture(scope="module")
def prometheus_url(tmp_path_factory):
    """A real Prometheus scraping ``gpudoc sim``'s dcgm-exporter and node_exporter pages for the
    same four node names (a short history: only current readings and recent XIDs matter here)."""
    work = tmp_path_factory.mktemp("prometheus-slurm")
    sim = start_sim(work, "--nodes", "4", "--seed", "5", history_minutes=10)
    prometheus = None
    try:
        prometheus = start_prometheus(work, sim.feed)
        wait_for_scrapes(prometheus.url, 2 * 4)
        yield prometheus.url
    finally:
        if prometheus is not None:
            prometheus.stop()
        sim.stop()


async def test_prometheus_composed_with_real_slurmrestd(slurm, prometheus_url):
    cluster, faults, token = slurm
    source = open_source(SourceOptions(source="prometheus", prometheus_url=prometheus_url, slurm="rest",
                                       slurmrestd_url=cluster.rest_url, slurm_jwt=token))
    assert isinstance(source, WithSlurmSource)
    try:
        status = json.loads(await tool(source, "get_slurm_status").ainvoke({}))
        pending = json.loads(await tool(source, "get_slurm_jobs").ainvoke({"state": "PENDING"}))
        report = await diagnose(source)
    finally:
        await source.aclose()
    problems = {p["node"]: p for p in status["problem_nodes"]}
    assert problems[faults.drained]["reason"] == faults.drain_reason and problems[faults.drained]["by"] == cluster.user
    assert problems[faults.dead]["state"] == ["DOWN", "NOT_RESPONDING"]
    # the reasons that hold while the faults last (``next`` may start on the node the failed job freed)
    reasons = {job["id"]: job["reason"] for job in pending["jobs"]}
    assert reasons[faults.jobs["big"]] == "Resources"
    assert reasons[faults.jobs["pinned"]] == f"ReqNodeNotAvail, UnavailableNodes:{faults.drained}"
    assert reasons[faults.jobs["held"]] == "JobHeldUser" and reasons[faults.jobs["after"]] == "Dependency"
    # Prometheus still scrapes the dead node's exporters: the host is up and its slurmd is not
    dead = next(f for f in report.findings if f.subject == faults.dead)
    assert (dead.rule, dead.severity) == ("node.slurm_not_responding", "warning")
    assert "slurmd" in dead.cause and any("Not responding" in line for line in dead.evidence)
    # the drain reason names XID 79 on gpu-5; dcgm-exporter's XID series show none there: to confirm
    drained = next(f for f in report.findings if f.subject == faults.drained)
    assert (drained.rule, drained.severity, drained.gpus) == ("node.drained_for_xid", "warning", ["node-3/gpu-5"])
    assert "telemetry shows no XID 79 on GPU 5 in the last 24 h" in drained.evidence
