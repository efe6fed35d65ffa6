"""Running ``gpudoc eval`` in-process for the tests: its JSON result, its exit code, its output."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gpudoc.cli import main


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
