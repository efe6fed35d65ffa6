"""Shared pytest configuration. Area-specific fixtures live in the test modules of each area;
the real services every area may need are started here, once per session, and the stub vLLM
server that the server's HTTP test modules share is made here, once per test."""

from __future__ import annotations

import shutil
import tempfile
import uuid
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


@pytest.fixture(scope="session")
def postgres_server() -> Iterator["PostgresServer"]:  # noqa: F821
    """A real PostgreSQL 15 (Debian's) on a free port, started once and stopped after the session.
    Tests take a database of their own (``create_database``) and may stop and start the server."""
    from tests.services.postgres import PostgresServer, require_postgres

    require_postgres()
    root = Path(tempfile.mkdtemp(prefix="gpudoc-postgres-"))  # not under pytest's 0700 dir: postgres runs as postgres
    server = PostgresServer(root)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def stub() -> Iterator["StubVllmServer"]:  # noqa: F821
    """A fresh stub vLLM server (a TEST DOUBLE) per test: the OpenAI client caches connections per
    base URL and event loop, and each test runs on a loop of its own."""
    from tests.doubles.stub_vllm import StubVllmServer

    server = StubVllmServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def db_url(postgres_server: "PostgresServer") -> str:  # noqa: F821
    """A PostgreSQL database of this test's own, on the session's server."""
    return postgres_server.create_database(f"t_{uuid.uuid4().hex[:12]}")
