"""``gpudoc diagnose`` and ``gpudoc scenarios`` through the real CLI entry point."""

from __future__ import annotations

import json

import pytest

from gpudoc.cli import main
from gpudoc.tools.sim.scenarios import SCENARIOS


def test_scenarios_lists_every_name_with_its_default_place(capsys):
    assert main(["scenarios"]) == 0
    out = capsys.readouterr().out
    for name in SCENARIOS:
        assert name in out
    assert "xid79-fell-off-bus     node-3/gpu-5" in out


def test_diagnose_table_shows_the_fault_and_exits_zero(capsys):
    assert main(["diagnose", "--scenario", "xid79-fell-off-bus@node-2/gpu-4"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("CRIT"))
    assert "node-2/gpu-4" in row and "gpu.xid79_fell_off_bus" in row
    assert "action: drain and reboot the node" in out
    assert "1 critical, 0 warning" in out


def test_diagnose_json_is_a_report_with_findings(capsys):
    assert main(["diagnose", "--scenario", "thermal-throttle", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    first = report["findings"][0]
    assert {"severity", "subject", "rule", "evidence", "action"} <= set(first)
    assert (first["subject"], first["rule"]) == ("node-0/gpu-7", "gpu.thermal_slowdown")


def test_diagnose_is_reproducible(capsys):
    main(["diagnose", "--scenario", "straggler", "--seed", "7", "--json"])
    first = capsys.readouterr().out
    main(["diagnose", "--scenario", "straggler", "--seed", "7", "--json"])
    assert capsys.readouterr().out == first


def test_fail_on_sets_the_exit_code(capsys):
    assert main(["diagnose", "--scenario", "host-down", "--fail-on", "critical"]) == 1
    assert main(["diagnose", "--scenario", "healthy", "--fail-on", "warning"]) == 0


def test_node_scope(capsys):
    assert main(["diagnose", "--scenario", "host-down@node-4", "--scenario", "thermal-throttle@node-1/gpu-2",
                 "--node", "node 1", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["scope"] == "node-1"
    assert {f["subject"] for f in report["findings"]} == {"node-1/gpu-2"}


def test_unknown_scenario_is_one_line_exit_2(capsys):
    assert main(["diagnose", "--scenario", "meltdown"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "meltdown" in err and "xid79-fell-off-bus" in err


def test_unknown_node_lists_valid_ids(capsys):
    assert main(["diagnose", "--node", "node-99"]) == 2
    assert "Valid node ids: node-0, node-1" in capsys.readouterr().err


def test_a_node_count_out_of_range_is_refused_with_the_range(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["diagnose", "--nodes", "0"])
    assert exit_info.value.code == 2
    assert "argument --nodes: 0 is out of range; use 1..1024" in capsys.readouterr().err


def test_a_malformed_environment_variable_names_the_variable(capsys, monkeypatch):
    monkeypatch.setenv("BACKEND_TIMEOUT_S", "ten")
    assert main(["diagnose"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "errors.pydantic.dev" not in err
    assert "BACKEND_TIMEOUT_S: Input should be a valid number" in err and "'ten'" in err
