"""Real services the tests start (Slurm, Prometheus, Alertmanager, PostgreSQL, Chromium).

Each service module starts its daemon on free loopback ports in a temp dir and stops it by pid.
``require_binary`` is the one rule for a missing service: skip with the install command on a
developer machine, fail in CI (``GPUDOC_REQUIRE_SERVICES=1``, set by ``.ci/run``), so that a test
of a real component can never pass by silently not running.
"""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import pytest


def require_binary(name: str, *, package: str, candidates: tuple[str, ...] = ()) -> Path:
    """The path of ``name`` (on PATH or at one of ``candidates``), or skip/fail naming the package."""
    found = shutil.which(name)
    if found:
        return Path(found)
    for candidate in candidates:
        if Path(candidate).exists():
            return Path(candidate)
    message = f"{name} is not installed; install it with `apt-get install {package}`"
    if os.environ.get("GPUDOC_REQUIRE_SERVICES"):
        pytest.fail(f"{message} (GPUDOC_REQUIRE_SERVICES is set, so this test must run)")
    pytest.skip(message)


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
