"""The server's recent log lines, kept in memory for ``GET /api/agent/logs``.

Why: GPU Watchdog's chat panel has a "View Logs" button that polls ``/api/agent/logs`` for the
model server's log while the assistant is offline. gpudoc answers it with its own recent log
records (LLM failures, degraded answers, source errors), the lines an operator needs to see why
the assistant is answering without the model. The buffer is bounded and process-wide; one
handler is attached once to the ``gpudoc`` logger however many apps a process builds.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from datetime import UTC, datetime

from gpudoc.tools.js_numbers import express_count

#: the most lines kept, and the most one request may ask for (the original API's cap)
MAX_LOG_LINES = 500
DEFAULT_LOG_LINES = 100


class RecentLogs(logging.Handler):
    """Keeps the last ``MAX_LOG_LINES`` records as one-line text."""

    def __init__(self, capacity: int = MAX_LOG_LINES):
        super().__init__(level=logging.INFO)
        self._lines: deque[str] = deque(maxlen=capacity)
        self._guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            stamp = datetime.fromtimestamp(record.created, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            text = " ".join(record.getMessage().split())
            with self._guard:
                self._lines.append(f"{stamp} {record.levelname} {record.name}: {text}")
        except Exception:  # a log line must never break the code that logs it
            self.handleError(record)

    def tail(self, lines: int) -> list[str]:
        with self._guard:
            kept = list(self._lines)
        return kept[-lines:] if lines > 0 else []


_recent: RecentLogs | None = None


def recent_logs() -> RecentLogs:
    """The process's buffer, attached to the ``gpudoc`` logger on first use. It keeps what the
    server's log level lets through (``--log-level``), INFO and above."""
    global _recent
    if _recent is None:
        _recent = RecentLogs()
        logging.getLogger("gpudoc").addHandler(_recent)
    return _recent


def requested_lines(raw: str | None) -> int:
    """``Math.min(Number(lines) || 100, 500)``, as the original backend reads ``?lines=``."""
    return express_count(raw, default=DEFAULT_LOG_LINES, cap=MAX_LOG_LINES)
