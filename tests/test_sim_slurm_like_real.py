"""The simulator's Slurm facts look like what real Slurm 22.05 reported for the same situations
(``tests/fixtures/slurm/v0.0.38``): state lists, the reasons Slurm writes, GRES notation, and
what an ended job still carries."""

from __future__ import annotations

import asyncio
import re

import pytest

from gpudoc.tools.sim.source import SimSource
from tests.slurm_fixtures import job_id, scenario, snapshot

GRES_USED = re.compile(r"^gpu:[^:()]+:\d+\(IDX:(N/A|[\d,-]+)\)$")


@pytest.fixture(scope="module")
def sim():
    source = SimSource.create(seed=3, nodes=8, realtime=False,
                              scenarios=["host-down@node-2", "app-xid@node-5/gpu-1", "xid79-fell-off-bus@node-6/gpu-2"])
    return asyncio.run(source.slurm())


def real_node(name: str):
    return next(n for n in snapshot().nodes if n.name == name)


def real_job(role: str):
    return next(j for j in snapshot().jobs if j.job_id == job_id(role))


def test_a_dead_slurmd_reads_as_real_slurm_writes_it(sim):
    real = real_node(scenario()["dead"])
    simulated = next(n for n in sim.nodes if n.name == "node-2")
    assert simulated.state == real.state == ["DOWN", "NOT_RESPONDING"]
    assert simulated.reason == real.reason == "Not responding"
    assert simulated.sinfo_state == real.sinfo_state == "down*"
    # slurmctld writes that reason as its own user (root on the test cluster, "slurm" on a site)
    assert real.reason_set_by == "root" and simulated.reason_set_by == "slurm"
    assert simulated.gpus_alloc == real.gpus_alloc == 0


def test_gres_notation_is_slurms(sim):
    for node in [*sim.nodes, *snapshot().nodes]:
        assert GRES_USED.match(node.gres_used), node.gres_used
        assert node.gres.startswith("gpu:a100:8")
        if node.gpus_alloc:
            assert len(node.gpu_indices_used) == node.gpus_alloc
        else:
            assert node.gpu_indices_used is None and node.gres_used.endswith("(IDX:N/A)")


def test_ended_jobs_carry_what_real_slurm_keeps(sim):
    node_fail = [j for j in sim.jobs if j.state == "NODE_FAIL"]
    failed = [j for j in sim.jobs if j.state == "FAILED"]
    assert node_fail and failed
    real_nf, real_failed = real_job("multi"), real_job("broken")
    for job in node_fail:
        assert job.state_reason == real_nf.state_reason == "NodeDown"
        assert job.gpu_indices == real_nf.gpu_indices == {}  # Slurm forgets an ended job's GPU indices
        assert job.nodes and job.end_time is not None
    for job in failed:
        assert job.state_reason == real_failed.state_reason == "NonZeroExitCode"
        assert job.exit_code not in (None, 0) and real_failed.exit_code == 3


def test_pending_and_running_jobs_match_real_shapes(sim):
    for job in sim.jobs:
        if job.state == "PENDING":
            assert job.nodes == [] and job.start_time is None and job.gpu_indices == {} and job.pending_reason
            assert job.state_reason is None and job.exit_code is None
        if job.state == "RUNNING":
            assert job.gpu_indices and job.exit_code is None and job.end_time is None
    real_pending = {real_job(role).pending_reason.split(",")[0] for role in ("big", "next", "pinned", "held", "after")}
    simulated = {j.pending_reason.split(",")[0] for j in sim.jobs if j.state == "PENDING"}
    # the sim's everyday reasons are Slurm's own words; QOS limits need slurmdbd, absent here
    assert simulated - {"QOSMaxGRESPerUser"} <= real_pending
