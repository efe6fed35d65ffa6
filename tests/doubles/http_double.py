"""What the HTTP test doubles share: a quiet handler that answers JSON, and a server that runs in a
daemon thread of the test process (so a test can watch the double's side of each connection)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class JsonHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 (keep-alive, as real servers), no access log: tests and benchmarks read their own output."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        return

    def send_json(self, status: int, payload: Any) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class ThreadedHttpDouble:
    """A ``ThreadingHTTPServer`` served from a daemon thread; port 0 takes a free port.

    Subclasses build their server in ``make_server`` (binding their handler and state) and
    decide what ``start`` and ``with`` give the test.
    """

    #: the serving thread's name, and how errors name the double
    thread_name = "http-double"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host, self.port = host, port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def make_server(self) -> ThreadingHTTPServer:
        raise NotImplementedError

    @property
    def root_url(self) -> str:
        """``http://host:port`` of the running server."""
        if self._server is None:
            raise RuntimeError(f"the {self.thread_name} double is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def serve(self) -> None:
        self._server = self.make_server()
        self._thread = threading.Thread(target=self._server.serve_forever, name=self.thread_name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
