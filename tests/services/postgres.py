"""A real PostgreSQL 15 (Debian's) for the tests: a private cluster in a temp dir, on a free port.

Why the server in the foreground as our own child: its pid is ours, so ``stop`` ends exactly it
(a fast shutdown, SIGINT) and nothing else on the machine. ``initdb`` and ``postgres`` refuse to
run as root, so when the tests run as root both run as the ``postgres`` user (``Popen(user=)``)
in a temp dir handed to that user. ``stop`` and ``start`` may be called again: the data stays,
and the server comes back on the same port (the tests of a store that goes down and returns).

Usage: ``server = PostgresServer(tmp_dir); server.start(); server.url; server.create_database(name)``.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import time
from pathlib import Path

from tests.services import free_port, require_binary

BIN = Path("/usr/lib/postgresql/15/bin")
OWNER = "postgres"


def require_postgres() -> Path:
    """The directory of PostgreSQL's server binaries: Debian's 15 where installed, else the one
    whose ``initdb`` is on PATH (skip, or fail in CI, without either)."""
    if (BIN / "initdb").exists():
        return BIN
    return require_binary("initdb", package="postgresql").resolve().parent


class PostgresServer:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "data"
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.binaries = BIN  # found again by ``start``
        self._as_owner = os.geteuid() == 0
        self.user = OWNER if self._as_owner else pwd.getpwuid(os.getuid()).pw_name

    @property
    def pid(self) -> int:
        """The postmaster's pid (its backends are its children)."""
        assert self.process is not None, "not started"
        return self.process.pid

    @property
    def url(self) -> str:
        return self.database_url("postgres")

    def database_url(self, name: str) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{name}"

    def _user_args(self) -> dict[str, object]:
        return {"user": OWNER, "group": OWNER, "extra_groups": []} if self._as_owner else {}

    def start(self) -> None:
        """Create the cluster (first time only) and start the server; returns once it accepts connections."""
        self.binaries = binaries = require_postgres()
        if not self.data.exists():
            if self._as_owner:
                shutil.chown(self.root, OWNER, OWNER)
            created = subprocess.run([str(binaries / "initdb"), "-D", str(self.data), "-A", "trust", "-U", self.user,
                                      "--no-sync", "-E", "UTF8"],
                                     cwd=self.root, capture_output=True, text=True, **self._user_args())
            if created.returncode != 0:
                raise RuntimeError(f"initdb failed in {self.root} (it must be reachable by {self.user}):\n"
                                   f"{created.stdout[-1000:]}{created.stderr[-1000:]}")
        log = open(self.root / "postgres.log", "ab")
        try:
            self.process = subprocess.Popen(
                [str(binaries / "postgres"), "-D", str(self.data), "-p", str(self.port), "-k", str(self.root),
                 "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "max_connections=200"],
                cwd=self.root, stdout=log, stderr=subprocess.STDOUT, **self._user_args(),
            )
        finally:
            log.close()
        self._wait_until_ready()

    def _wait_until_ready(self, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"postgres exited with {self.process.returncode}:\n{self.log_tail()}")
            ready = subprocess.run([str(self.binaries / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                                   capture_output=True)
            if ready.returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError(f"postgres did not accept connections within {timeout_s:g} s:\n{self.log_tail()}")

    def stop(self) -> None:
        """Fast shutdown of the server we started (by pid); the data stays for ``start``."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None

    def create_database(self, name: str) -> str:
        """A fresh database (a test's own tables); its URL."""
        subprocess.run([str(self.binaries / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, name],
                       check=True, capture_output=True)
        return self.database_url(name)

    def log_tail(self, lines: int = 30) -> str:
        path = self.root / "postgres.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""
