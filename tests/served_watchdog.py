"""Serve a ``ClusterSource`` as GPU Watchdog's backend over real HTTP, for tests that need a URL."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from gpudoc.tools.sim.watchdog_api import create_watchdog_app
from gpudoc.tools.sources.base import ClusterSource


@contextmanager
def serve(source: ClusterSource) -> Iterator[str]:
    """Serve ``source`` as the GPU Watchdog API on 127.0.0.1:<ephemeral> from a background thread.

    The socket is bound and listening before the thread starts, so requests made before uvicorn
    begins accepting simply wait in the backlog: no polling for readiness.
    """
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    server = uvicorn.Server(
        uvicorn.Config(create_watchdog_app(source), log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        listener.close()
