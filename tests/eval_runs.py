"""Running ``gpudoc eval`` in-process for the tests: its JSON result, its exit code, its output."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gpudoc.cli import main
from tests.doubles.stub_vllm import Policy, StubVllmServer


@dataclass
class EvalCall:
    code: int
    result: dict[str, Any] | None
    out: str
    err: str

    def case(self, case_id: str) -> dict[str, Any]:
        assert self.result is not None
        return next(c for c in self.result["cases"] if c["id"] == case_id)


def run_eval(capsys: pytest.CaptureFixture[str], tmp_path: Path, *args: str) -> EvalCall:
    """``gpudoc eval ARGS --out FILE --no-progress``; the result is read back from FILE."""
    out_file = tmp_path / f"result-{len(list(tmp_path.glob('result-*.json')))}.json"
    code = main(["eval", *args, "--out", str(out_file), "--no-progress"])
    captured = capsys.readouterr()
    result = json.loads(out_file.read_text()) if out_file.exists() else None
    return EvalCall(code, result, captured.out, captured.err)


@contextmanager
def stub_model(policy: Policy, name: str) -> Iterator[list[str]]:
    """The stub vLLM server running ``policy`` under a model name that says it is a test double;
    yields the ``gpudoc eval`` options that point a live run at it."""
    model = f"stub-vllm-test-double/{name}"
    with StubVllmServer(policy=policy, model=model, identity=f"stub vLLM, {name} policy") as url:
        yield ["--live", "--llm-base-url", url, "--model", model]
