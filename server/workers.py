"""Several worker processes behind one listening socket: ``gpudoc serve --workers N``.

Why processes: one Python process serves on one core; a turn's CPU (the graph, the tools, the
streaming) then queues behind every other turn's. Why uvicorn's supervisor: it starts the
workers as fresh interpreters, hands them the socket ``gpudoc serve`` already bound (the kernel
spreads connections over them), restarts a worker that dies or hangs, replaces them one by one
on SIGHUP, stops them all on SIGINT/SIGTERM, and stops the server when a worker fails to start
(the store unreachable) instead of restarting it forever.

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

import uvicorn
from fastapi import FastAPI
from prometheus_client import multiprocess
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import Multiprocess

from gpudoc.server.app import create_app
from gpudoc.server.logs import configure_logging
from gpudoc.server.metrics import MULTIPROCESS_DIR_VARIABLE
from gpudoc.server.settings import ServerSettings

#: seconds a stopping worker lets its streams finish
GRACEFUL_SHUTDOWN_S = 5


def worker_app(settings: ServerSettings, log_level: str) -> FastAPI:
    """The app of one worker process (called in the worker, after it started)."""
    configure_logging(log_level)
    return create_app(settings, freeze_heap=True)


class _Supervisor(Multiprocess):
    """uvicorn's supervisor, telling the metrics when a worker is gone (its in-flight gauge no longer counts)."""

    def keep_subprocess_alive(self) -> None:
        before = {process.pid for process in self.processes}
        super().keep_subprocess_alive()
        for pid in before - {process.pid for process in self.processes}:
            if pid is not None:
                multiprocess.mark_process_dead(pid)


def serve_workers(settings: ServerSettings, listener: socket.socket, *, log_level: str) -> int:
    """Run ``settings.workers`` workers on ``listener`` until SIGINT/SIGTERM; 1 if a worker failed to start."""
    metrics_dir = tempfile.mkdtemp(prefix="gpudoc-metrics-")
    os.environ[MULTIPROCESS_DIR_VARIABLE] = metrics_dir  # inherited by the workers, which read it at import
    config = uvicorn.Config(
        functools.partial(worker_app, settings, log_level), factory=True, workers=settings.workers,
        log_config=None, access_log=False, timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )
    supervisor = _Supervisor(config, sockets=[listener])
    try:
        supervisor.run()
    finally:
        os.environ.pop(MULTIPROCESS_DIR_VARIABLE, None)
        shutil.rmtree(metrics_dir, ignore_errors=True)
    return 1 if any(process.exitcode == STARTUP_FAILURE for process in supervisor.processes) else 0
