"""The judge-free scorer, check by check, on hand-written answers and tool results."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from gpudoc.evals.agent_turns import Observation
from gpudoc.evals.answer_text import (
    claims_fault,
    claims_healthy,
    hardware_actions,
    mentions,
    names_cause,
    segments,
    stated_with_unit,
    xids_in,
)
from gpudoc.evals.cases import Expectations
from gpudoc.evals.evidence import candidates, readings
from gpudoc.evals.scoring import Truth, check_budgets, check_forbidden, check_number, check_tools, score_turn
from gpudoc.graph.contracts import ToolCallRecord

XID79 = [Truth("xid79-fell-off-bus", "node-3/gpu-5", "critical", True)]
HEALTHY = [Truth("healthy", "cluster", None, False)]


def observation(answer: str = "", calls: list[ToolCallRecord] | None = None, **fields) -> Observation:
    values = dict(question="q", answer=answer, tool_calls=calls or [], unverified_numbers=[], round_trips=2,
                  tool_rounds=1, degraded=False, degraded_reason=None, prompt_tokens=100, completion_tokens=50,
                  latency_s=1.0)
    values.update(fields)
    return Observation(**values)


def call(name: str, result: object = "{}", *, error_kind: str | None = None, **arguments) -> ToolCallRecord:
    text = result if isinstance(result, str) else json.dumps(result)
    return ToolCallRecord(id=f"c-{name}", name=name, arguments=arguments, result=text,
                          error=error_kind is not None, error_kind=error_kind)


# ---------------------------------------------------------------------------------------------
# Reading answers
# ---------------------------------------------------------------------------------------------


def test_segments_are_lines_and_sentences_with_markdown_emphasis_closed():
    assert segments("**Yes.** It is hot. 88.6 C is high.\n| a | b |") == [
        "**Yes.**", "It is hot.", "88.6 C is high.", "| a | b |"]


@pytest.mark.parametrize("answer, subject, named", [
    ("node-3/gpu-5 fell off the bus", "node-3/gpu-5", True),
    ("GPU 5 on node-3 fell off the bus", "node-3/gpu-5", True),
    ("| node-3 | GPU 5 | XID 79 |", "node-3/gpu-5", True),
    ("node-3 is drained. GPU 5 fell off.", "node-3/gpu-5", False),  # GPU named apart from its node
    ("node-31/gpu-5 is fine", "node-3/gpu-5", False),
    ("node-3/gpu-55 is fine", "node-3/gpu-5", False),
    ("Node 3 needs a reboot", "node-3", True),
    ("job 10485 holds 4 GPUs", "10485", True),
    ("job 104851 holds 4 GPUs", "10485", False),
])
def test_subjects_are_named_by_node_and_gpu_in_one_segment(answer, subject, named):
    assert mentions(answer, subject) is named


def test_causes_by_rule_id_xid_list_or_term():
    assert xids_in("XIDs 31 and 43 came from the job; Xid 79 too") == {31, 43, 79}
    assert names_cause("rule gpu.row_remap_failure fired", rules=["gpu.row_remap_failure"], xids=[], terms=[]) \
        == "gpu.row_remap_failure"
    assert names_cause("it logged xid-64", rules=[], xids=[64], terms=[]) == "XID 64"
    assert names_cause("the link runs at x8", rules=[], xids=[], terms=[r"\bx8\b"]) == "x8"
    assert names_cause("XID 63 is a remap event", rules=[], xids=[64], terms=[]) is None


@pytest.mark.parametrize("answer, values, stated", [
    ("GPU 3 is at 88.6 °C now", ["88.63"], True),
    ("GPU 3 is at 89 C", ["88.6"], True),          # rounded by the writer
    ("GPU 3 is at 90 degrees", ["88.6"], False),   # not the reading
    ("GPU 3 reads 88.6 now", ["88.6"], False),     # no unit
    ("GPU 3 reads 88.6 W", ["88.6"], False),       # the wrong unit
])
def test_temperatures_need_the_value_and_the_unit(answer, values, stated):
    assert (stated_with_unit(answer, "temperature", [Decimal(v) for v in values]) is not None) is stated


def test_counts_accept_the_label_before_or_the_noun_after():
    assert stated_with_unit("NVLink errors: 5166 in an hour", "nvlink_errors", [Decimal(5166)])
    assert stated_with_unit("5166 NVLink errors in an hour", "nvlink_errors", [Decimal(5166)])
    assert not stated_with_unit("5166 in an hour", "nvlink_errors", [Decimal(5166)])


@pytest.mark.parametrize("answer, claims", [
    ("The cluster is healthy.", True),
    ("No issues were found.", True),
    ("The cluster is not healthy: node-3/gpu-5 fell off the bus.", False),
    ("All other GPUs are healthy.", False),
    ("The cluster is healthy except node-3.", False),
    ("node-3 is unhealthy", False),
])
def test_healthy_claims_respect_negation_and_exceptions(answer, claims):
    assert (claims_healthy(answer) is not None) is claims


def test_fault_claims_and_hardware_actions_respect_negation():
    assert claims_fault("node-4/gpu-1 is faulty")
    assert not claims_fault("XID 43 came from the application, not a hardware fault.")
    assert hardware_actions("Drain node-3 and RMA node-3/gpu-5.") == [
        ("Drain node-3 and RMA node-3/gpu-5.", {"node-3", "node-3/gpu-5"})]
    assert hardware_actions("Do not drain node-4.") == []
    assert hardware_actions("node-7 was drained for maintenance.") == []  # a state, not an action


# ---------------------------------------------------------------------------------------------
# Readings in tool results
# ---------------------------------------------------------------------------------------------

NODE_DETAILS = {
    "node": "node-2", "limits": {"max_operating_c": 85.0, "slowdown_c": 89.0, "power_limit_w": 400.0},
    "anomalies": ["gpu-3 90.0 °C >= max operating 85 °C"],
    "same_for_all_gpus": {"pcie_replays": 0, "nvlink_errors": 12},
    "gpus": [{"gpu": 0, "temp_c": 32.0, "power_w": 90.9}, {"gpu": 3, "temp_c": 90.0, "power_w": 160.4}],
}
DIAGNOSIS = {"findings": [{
    "severity": "critical", "subject": "node-2/gpu-3", "rule": "gpu.thermal_slowdown",
    "evidence": ["temperature 91 °C (slowdown 89 °C, max operating 85 °C); 37 °C above node median 51 °C",
                 "NVLink errors 0 -> 5166 (+5166) in 60 min"],
}]}


def test_readings_are_attributed_to_the_gpu_and_limits_are_not_readings():
    found = readings([("get_node_details", json.dumps(NODE_DETAILS)), ("diagnose_cluster", json.dumps(DIAGNOSIS))])
    assert candidates(found, "temperature", "node-2/gpu-3") == [Decimal("90.0"), Decimal("91")]
    assert candidates(found, "temperature", "node-2/gpu-0") == [Decimal("32.0")]
    assert Decimal(89) not in candidates(found, "temperature", None)  # slowdown limit
    assert Decimal(37) not in candidates(found, "temperature", None)  # an offset, not a reading
    assert candidates(found, "nvlink_errors", "node-2/gpu-3") == [Decimal(12), Decimal(5166)]  # node-wide + text
    assert candidates(found, "pcie_replays", "node-2/gpu-3") == []  # zero is no evidence of replays
    assert candidates(found, "temperature", "node-2") == [Decimal("32.0"), Decimal("90.0"), Decimal("91")]


def test_jobs_are_their_own_subjects():
    jobs = {"jobs": [{"id": "10485", "user": "spatel", "gpus": 4}], "gpus": 64}
    found = readings([("get_slurm_jobs", json.dumps(jobs))])
    assert candidates(found, "gpu_count", "cluster") == [Decimal(64)]
    assert candidates(found, "gpu_count", "10485") == [Decimal(4)]


# ---------------------------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------------------------


def test_tools_need_an_answering_call_about_the_asked_node():
    expect = Expectations.model_validate({"tools": [{"any_of": ["get_node_details"], "node": "node-2"}]})
    assert check_tools(expect, observation(calls=[call("get_node_details", node_id="node-2")])).passed
    assert check_tools(expect, observation(calls=[call("get_node_details", node_id="Node 2")])).passed
    assert not check_tools(expect, observation(calls=[call("get_node_details", node_id="node-5")])).passed
    assert not check_tools(expect, observation(calls=[call("get_node_details", "timed out", error_kind="timeout",
                                                           node_id="node-2")])).passed
    missing = Expectations.model_validate({"tools": [["get_node_details"]]})
    assert check_tools(missing, observation(calls=[call("get_node_details", "Unknown node", error_kind="unknown_node",
                                                        node_id="node-42")])).passed


def test_the_key_number_must_come_from_this_runs_tool_results():
    expect = Expectations.model_validate({"number": {"quantity": "temperature", "subject": "node-2/gpu-3"}})
    found = readings([("get_node_details", json.dumps(NODE_DETAILS))])
    assert check_number(expect, "GPU 3 of node-2 is at 90 °C", found, XID79).passed
    assert not check_number(expect, "GPU 3 of node-2 is at 95 °C", found, XID79).passed
    unfetched = check_number(expect, "GPU 3 of node-2 is at 90 °C", [], XID79)
    assert not unfetched.passed and "did not fetch" in unfetched.detail


def test_forbidden_claims():
    nothing = Expectations()
    assert not check_forbidden(nothing, "The cluster is healthy.", XID79).passed
    assert check_forbidden(nothing, "The cluster is healthy.", HEALTHY).passed
    wrong_gpu = check_forbidden(nothing, "RMA node-3/gpu-4 now.", XID79)
    assert not wrong_gpu.passed and "node-3/gpu-4" in wrong_gpu.detail
    assert check_forbidden(nothing, "Drain node-3 and RMA node-3/gpu-5.", XID79).passed
    node_fault = [Truth("host-down", "node-6", "critical", True)]
    assert check_forbidden(nothing, "Reboot node-6; reset node-6/gpu-2 after.", node_fault).passed
    control = Expectations(negative_control=True)
    assert not check_forbidden(control, "node-4/gpu-1 is faulty.", HEALTHY).passed
    assert not check_forbidden(control, "Reset node-4/gpu-1.", HEALTHY).passed
    assert check_forbidden(control, "XID 43 is the application's; do not drain node-4.", HEALTHY).passed
    pattern = Expectations(forbid=[r"node-5\b[^.]*\bis\s+hot"])
    assert not check_forbidden(pattern, "Yes, node-5 is hot.", HEALTHY).passed


def test_budgets_and_latency_only_when_live():
    expect = Expectations.model_validate({"budget": {"round_trips": 2, "tokens": 100, "latency_s": 0.5}})
    checks = {c.name: c for c in check_budgets(expect, observation(round_trips=3, latency_s=1.0), live=True)}
    assert not checks["round_trips"].passed and not checks["tokens"].passed and not checks["latency"].passed
    replayed = {c.name: c for c in check_budgets(expect, observation(round_trips=2, prompt_tokens=60,
                                                                     completion_tokens=40), live=False)}
    assert replayed["round_trips"].passed and replayed["tokens"].passed and replayed["latency"].passed is None
    unmetered = {c.name: c for c in check_budgets(expect, observation(prompt_tokens=0, completion_tokens=0), live=True)}
    assert unmetered["tokens"].passed is None


def test_a_degraded_or_ungrounded_turn_fails():
    expect = Expectations()
    degraded = score_turn(expect, observation("diagnosis", degraded=True, degraded_reason="LLM down"), truths=HEALTHY,
                          evidence=[], live=True)
    assert next(c for c in degraded if c.name == "completed").passed is False
    invented = score_turn(expect, observation("It is 17.5 %", unverified_numbers=["17.5"]), truths=HEALTHY,
                          evidence=[], live=True)
    assert next(c for c in invented if c.name == "grounding").detail == "numbers in no tool result: 17.5"
