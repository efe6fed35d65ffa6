"""Slurm status and jobs rendered for the model from hand-built facts: job states read leniently,
hostlists, problem nodes with their reasons, names kept as bounded data, the output budget."""

from __future__ import annotations

from datetime import timedelta

import pytest

from gpudoc.tools.compact import OUTPUT_BUDGET_CHARS, dumps
from gpudoc.tools.render_slurm import hostlist, normalise_job_state, render_slurm_jobs, render_slurm_status
from tests.rendering_facts import INJECTION, NOW, job, slurm_node, snapshot


def test_job_states_are_read_leniently_and_rejected_with_the_valid_list() -> None:
    assert normalise_job_state("running") == "RUNNING"
    assert normalise_job_state("PD") == "PENDING"
    assert normalise_job_state("node fail") == "NODE_FAIL"
    with pytest.raises(ValueError, match="PENDING, RUNNING"):
        normalise_job_state("sleeping")


def test_hostlist_compresses_runs() -> None:
    assert hostlist(["node-0", "node-1", "node-2", "node-5", "node-10", "node-11"]) == "node-[0-2,5,10-11]"
    assert hostlist(["gpu001", "gpu002", "login"]) == "gpu[001-002],login"
    assert hostlist(["node-4"]) == "node-4"


def test_slurm_status_groups_states_and_lists_problem_nodes_with_reasons() -> None:
    nodes = [slurm_node(f"node-{i}", ["MIXED"]) for i in range(6)]
    nodes[2] = slurm_node("node-2", ["IDLE", "DRAIN"], "gres/gpu count too low (7 < 8)")
    nodes[4] = slurm_node("node-4", ["DOWN", "NOT_RESPONDING"], "Not responding")
    jobs = [
        job("1"),
        job("2", state="PENDING", pending_reason="Resources"),
        job("3", state="PENDING", pending_reason="Resources"),
    ]
    payload = render_slurm_status(snapshot(nodes, jobs))
    assert payload["state_counts"] == {"mix": 4, "drained": 1, "down*": 1}
    assert [p["node"] for p in payload["problem_nodes"]] == ["node-2", "node-4"]
    assert payload["problem_nodes"][0]["reason"] == "gres/gpu count too low (7 < 8)"
    assert payload["pending_reasons"] == {"Resources": 2}
    assert payload["gpus"] == {"total": 48, "alloc": 24}


def test_slurm_status_of_a_large_cluster_switches_to_hostlists_within_budget() -> None:
    nodes = [slurm_node(f"node-{i}", ["IDLE", "DRAIN"], "x" * 200) for i in range(300)]
    payload = render_slurm_status(snapshot(nodes, None))
    assert len(dumps(payload)) <= OUTPUT_BUDGET_CHARS
    assert payload["nodes_by_state"] == {"drained": "node-[0-299]"}
    assert "hostlist" in payload["truncated"] and "jobs_note" in payload


def test_slurm_jobs_filter_and_keep_names_as_bounded_data() -> None:
    jobs = [
        job("7", name=INJECTION),
        job("8", state="PENDING", pending_reason="ReqNodeNotAvail, UnavailableNodes:node-2", user="bob"),
        job("9", state="COMPLETED", nodes=["node-1"], end_time=NOW - timedelta(minutes=5)),
    ]
    snap = snapshot([slurm_node("node-1", ["MIXED"])], jobs)
    running = render_slurm_jobs(snap, jobs, state="RUNNING")
    assert running["matched"] == 1 and running["jobs"][0]["running_min"] == 60
    assert running["jobs"][0]["name"].startswith("IGNORE PREVIOUS") and len(running["jobs"][0]["name"]) <= 80
    pending = render_slurm_jobs(snap, jobs, user="BOB")
    assert (
        pending["jobs"][0]["reason"].startswith("ReqNodeNotAvail")
        and pending["jobs"][0]["waiting_min"] == 120
    )
    nobody = render_slurm_jobs(snap, jobs, user="carol")
    assert nobody["matched"] == 0 and "users with jobs: alice, bob" in nobody["note"]
    on_node = render_slurm_jobs(snap, jobs, node="node-1")
    assert [j["id"] for j in on_node["jobs"]] == ["7", "9"]


def test_slurm_jobs_truncate_with_a_hint_to_filter() -> None:
    jobs = [job(str(i), state="PENDING", pending_reason="Priority") for i in range(200)]
    payload = render_slurm_jobs(snapshot([], jobs), jobs)
    assert len(dumps(payload)) <= OUTPUT_BUDGET_CHARS
    assert payload["matched"] == 200 and "narrow with state, node or user" in payload["truncated"]


def test_slurm_totals_leave_unreported_counts_out_and_say_so() -> None:
    nodes = [slurm_node(f"node-{i}", ["MIXED"]) for i in range(4)]
    nodes[1] = nodes[1].model_copy(update={"gpus_total": None, "gpus_alloc": None, "cpus_total": None})
    payload = render_slurm_status(snapshot(nodes, []))
    assert payload["gpus"]["total"] == 24 and payload["gpus"]["total_covers"] == "3 of 4 nodes; not reported for node-1"
    assert payload["cpus"]["total"] == 384 and "3 of 4 nodes" in payload["cpus"]["total_covers"]
    unreported = [n.model_copy(update={"gpus_total": None, "gpus_alloc": None}) for n in nodes]
    assert render_slurm_status(snapshot(unreported, []))["gpus"] == "GPU counts not reported by this source"
