"""The notebooks run top to bottom against the current code (so they cannot silently rot)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).parent.parent / "notebooks"


def run_notebook(path: Path) -> dict[str, object]:
    """Execute every code cell in order in one namespace; returns the namespace."""
    notebook = json.loads(path.read_text())
    namespace: dict[str, object] = {"__name__": "__notebook__"}
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            exec(compile("".join(cell["source"]), f"{path.name}", "exec"), namespace)
    return namespace


def test_every_notebook_has_a_test() -> None:
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == ["eval_report.ipynb", "explore_cluster.ipynb"]


def test_explore_cluster_notebook_runs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # No model is reachable here: the agent cell must take its labelled no-LLM path.
    monkeypatch.setenv("LLM_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("GPUDOC_DB_PATH", str(tmp_path / "threads.sqlite"))
    monkeypatch.chdir(tmp_path)
    namespace = run_notebook(NOTEBOOKS / "explore_cluster.ipynb")
    result = namespace["result"]
    assert result.degraded and "without the language model" in result.answer
    report = namespace["report"]
    subjects = {f.subject for f in report.findings if f.severity == "critical"}
    assert {"node-2/gpu-3", "node-5/gpu-1"} <= subjects
    assert not any(f.subject == "node-4/gpu-0" and f.severity != "info" for f in report.findings)
