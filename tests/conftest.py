"""Shared pytest configuration. Area-specific fixtures live in the test modules of each area;
the real services every area may need are started here, once per session."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[tuple["SlurmCluster", "FaultyCluster"]]:  # noqa: F821
    """A real Slurm 22.05 (slurmctld, four slurmd, slurmrestd, a private munged) in the faulty
    state of ``tests.services.slurm.make_faulty``, started once and stopped after the session."""
    from tests.services.slurm import SlurmCluster, make_faulty, require_slurm

    require_slurm()
    root = Path(tempfile.mkdtemp(prefix="gpudoc-slurm-"))  # not under pytest's 0700 dir: slurmrestd runs as nobody
    cluster = SlurmCluster(root)
    try:
        cluster.start()
        yield cluster, make_faulty(cluster)
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
