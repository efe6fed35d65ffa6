"""Several worker processes behind one listening socket: ``gpudoc serve --workers N``.

Why processes: one Python process serves on one core; a turn's CPU (the graph, the tools, the
streaming) then queues behind every other turn's. Why uvicorn's supervisor: it starts the
workers as fresh interpreters, restarts a worker that dies or hangs, replaces them one by one on
SIGHUP, stops them all on SIGINT/SIGTERM, and stops the server when a worker fails to start (the
store unreachable) instead of restarting it forever.

Why a listening socket per worker (``SO_REUSEPORT``) rather than one shared by all: on a shared
socket every idle worker wakes for a new connection and the first one accepts everything that
is waiting, so a burst of connections lands mostly on one worker while the other idles. With a
socket each, the kernel spreads connections over the workers by their address. ``gpudoc serve``
holds the port with a bound socket that does not listen; each worker (a restarted one too) opens
its own when it starts (``WorkerListener``).

Each worker builds its own app from the settings (``worker_app``): its own cluster source,
thread-store connections and model client. Processes share only the socket and the thread store
(PostgreSQL; ``graph/pg_locks.py`` keeps turns of one thread in order across them), and the
Prometheus metrics: each worker writes its samples under one directory and ``/metrics``, served
by any worker, adds them up (prometheus_client's multiprocess mode).
"""

from __future__ import annotations

import functools
import os
import shutil
import socket
import tempfile
from typing import Any

import uvicorn
from fastapi import FastAPI
from prometheus_client import multiprocess
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import Multiprocess

from gpudoc.server.app import create_app
from gpudoc.server.langserve_compat import let_streams_finish_on_shutdown
from gpudoc.server.logs import configure_logging
from gpudoc.server.metrics import MULTIPROCESS_DIR_VARIABLE
from gpudoc.server.settings import ServerSettings

class WorkerListener:
    """Stands for "a listening socket on this port" in what the supervisor hands each worker:
    unpickled in the worker, it is a socket of that worker's own (see the module docstring)."""

    def __init__(self, family: socket.AddressFamily, address: tuple[Any, ...]) -> None:
        self.family, self.address = family, address

    def __reduce__(self) -> tuple[Any, ...]:
        return (listening_socket, (self.family, self.address))


def listening_socket(family: socket.AddressFamily, address: tuple[Any, ...]) -> socket.socket:
    """A socket listening on ``address`` beside the other workers' (``SO_REUSEPORT``)."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(address)
    sock.listen(2048)
    return sock


def worker_app(settings: ServerSettings, log_level: str) -> FastAPI:
    """The app of one worker process (called in the worker, after it started)."""
    configure_logging(log_level)
    app = create_app(settings, freeze_heap=True)
    let_streams_finish_on_shutdown()
    return app


class _Supervisor(Multiprocess):
    """uvicorn's supervisor, telling the metrics when a worker is gone (its in-flight gauges no
    longer count), whichever way it went: died and replaced, replaced on SIGHUP, retired on SIGTTOU."""

    _seen: frozenset[int] = frozenset()

    def keep_subprocess_alive(self) -> None:
        super().keep_subprocess_alive()  # called on every tick of the supervisor's loop
        alive = frozenset(process.pid for process in self.processes if process.pid is not None)
        for pid in self._seen - alive:
            multiprocess.mark_process_dead(pid)
        self._seen = alive


def serve_workers(settings: ServerSettings, port: socket.socket, *, log_level: str) -> int:
    """Run ``settings.workers`` workers on the port ``port`` holds (bound with ``SO_REUSEPORT``, not
    listening) until SIGINT/SIGTERM; 1 if a worker failed to start."""
    metrics_dir = tempfile.mkdtemp(prefix="gpudoc-metrics-")
    os.environ[MULTIPROCESS_DIR_VARIABLE] = metrics_dir  # inherited by the workers, which read it at import
    config = uvicorn.Config(
        functools.partial(worker_app, settings, log_level), factory=True, workers=settings.workers,
        log_config=None, access_log=False, timeout_graceful_shutdown=settings.shutdown_grace_s,
    )
    listener = WorkerListener(port.family, port.getsockname())
    supervisor = _Supervisor(config, sockets=[listener])  # type: ignore[list-item] - a socket in each worker
    try:
        supervisor.run()
    finally:
        os.environ.pop(MULTIPROCESS_DIR_VARIABLE, None)
        shutil.rmtree(metrics_dir, ignore_errors=True)
    return 1 if any(process.exitcode == STARTUP_FAILURE for process in supervisor.processes) else 0
