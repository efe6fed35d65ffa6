"""A one-line progress bar for long evaluation runs, on a terminal only.

Why not a dependency: one line, redrawn in place, is all a run of a few dozen cases needs; on
a non-terminal (CI logs, pipes) it stays silent so the output is only the result.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class ProgressBar:
    def __init__(self, total: int, *, stream: TextIO | None = None, enabled: bool | None = None,
                 width: int = 28) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.total, self.width = total, width
        self.done = self.passed = 0
        self.started = time.perf_counter()

    def advance(self, label: str, passed: bool) -> None:
        self.done += 1
        self.passed += passed
        if not self.enabled:
            return
        filled = int(self.width * self.done / max(self.total, 1))
        elapsed = time.perf_counter() - self.started
        left = elapsed / self.done * (self.total - self.done)
        line = (f"\r[{'#' * filled}{'.' * (self.width - filled)}] {self.done}/{self.total} "
                f"{self.passed} passed  {elapsed:.0f}s (~{left:.0f}s left)  {label[:32]:<32}")
        self.stream.write(line)
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.done:
            self.stream.write("\r" + " " * (self.width + 100) + "\r")
            self.stream.flush()
