"""The recorded and spec-built Slurm answers (``tests/fixtures/slurm``) as the tests use them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from gpudoc.tools.models import SlurmSnapshot
from gpudoc.tools.sources.slurm_snapshot import Answer, Answers, build_snapshot

FIXTURES = Path(__file__).parent / "fixtures" / "slurm"
RECORDED = "v0.0.38"
BUILT = ("v0.0.39", "v0.0.40", "v0.0.41", "v0.0.42", "v0.0.43", "v0.0.44")
ENDPOINTS = ("nodes", "jobs", "partitions", "diag", "ping")


@cache
def scenario() -> dict[str, Any]:
    """Job ids by role, the drained and the dead node (``tests.services.slurm.make_faulty``)."""
    return json.loads((FIXTURES / RECORDED / "scenario.json").read_text())


def job_id(role: str) -> str:
    return scenario()["jobs"][role]


#: a minute after node-2's slurmd was killed: the recording's "now"
NOW = datetime.fromtimestamp(scenario()["slurmd_killed_at"], UTC) + timedelta(minutes=1)


def payload(version: str, name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / version / f"{name}.json").read_text())


def text(version: str, name: str) -> str:
    return (FIXTURES / version / name).read_text()


def answers(version: str) -> Answers:
    found = {name: Answer(f"GET /slurm/{version}/{name}", payload(version, name)) for name in ENDPOINTS}
    return Answers(**found)


def snapshot(version: str = RECORDED) -> SlurmSnapshot:
    return build_snapshot(answers(version), api=f"slurmrestd {version}", origin="slurmrestd (fixture)", now=NOW)


def comparable_snapshot(snap: SlurmSnapshot) -> dict[str, Any]:
    """A snapshot's facts without what differs by version or by moment: which API answered,
    the release, the node Slurm blames (only v0.0.40+ say it) and the fetch time."""
    data = snap.model_dump(exclude={"timestamp"})
    if data["scheduler"] is not None:
        for key in ("api", "slurm_version"):
            data["scheduler"].pop(key)
    for job in data["jobs"] or []:
        job.pop("failed_node")
    return data
