"""A load generator that costs little: one ``/agent/stream`` conversation over a bare HTTP/1.1
connection, scanned for what the scale benchmark measures and nothing else.

Why not httpx: on a 2-core machine the client shares the cores with the server it measures. httpx
parses every response with h11 and splits it into decoded lines, which took 0.25 to 0.4 CPU s of a
60-stream burst (as much as the stub vLLM server), CPU that the second worker then lacks. Like
``wrk``, this client sends a prepared request and scans raw bytes: the status line, the first
answer text, and the ``end`` or ``error`` event, about 0.1 CPU s a burst.

"First answer text": the first ``"content":"`` with something in it, in any event of the stream.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit

_TEXT = b'"content":"'
_NO_TEXT = b'"content":""'
_END = b"event: end"
_ERROR = b"event: error"
_TAIL = max(len(_TEXT), len(_NO_TEXT), len(_END), len(_ERROR))


@dataclass
class Stream:
    first_token_s: float | None
    total_s: float
    ok: bool
    status: int  # 0: the connection failed


class StreamScan:
    """What a stream's bytes say so far, fed read by read (a pattern may straddle two reads)."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.first_token_s: float | None = None
        self.ended = self.failed = False
        self._tail = b""

    def feed(self, data: bytes) -> None:
        window = self._tail + data
        if self.first_token_s is None:
            at = window.find(_TEXT)
            while at >= 0:
                if window.startswith(_NO_TEXT, at):
                    at = window.find(_TEXT, at + 1)
                    continue
                if at + len(_TEXT) < len(window):
                    self.first_token_s = time.perf_counter() - self.started
                break  # ``"content":"`` at the very end: the next read tells whether text follows
        self.ended = self.ended or _END in window
        self.failed = self.failed or _ERROR in window
        self._tail = window[-_TAIL:]


def request_bytes(base_url: str, question: str) -> bytes:
    """``POST /agent/stream`` for ``question`` on a thread of its own, ``Connection: close`` so that
    the end of the response is the end of the connection."""
    body = json.dumps({"input": {"messages": [{"type": "human", "content": question}]},
                       "config": {"configurable": {"thread_id": f"bench-{uuid.uuid4().hex}"}}}).encode()
    head = (f"POST /agent/stream HTTP/1.1\r\nHost: {urlsplit(base_url).netloc}\r\n"
            f"Content-Type: application/json\r\nAccept: text/event-stream\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
    return head.encode() + body


async def stream_once(base_url: str, question: str) -> Stream:
    """One conversation read to its end: time to the first answer text and to the end, whether it
    ended with ``end`` and no ``error``, and the HTTP status."""
    url = urlsplit(base_url)
    request = request_bytes(base_url, question)
    started = time.perf_counter()
    try:
        reader, writer = await asyncio.open_connection(url.hostname, url.port)
    except OSError:
        return Stream(None, time.perf_counter() - started, False, 0)
    try:
        writer.write(request)
        status_line = await reader.readline()
        try:
            status = int(status_line.split()[1])
        except (IndexError, ValueError):
            return Stream(None, time.perf_counter() - started, False, 0)
        scan = StreamScan(started)
        while data := await reader.read(65536):
            if status == 200:
                scan.feed(data)
        return Stream(scan.first_token_s, time.perf_counter() - started,
                      status == 200 and scan.ended and not scan.failed, status)
    except OSError:
        return Stream(None, time.perf_counter() - started, False, 0)
    finally:
        writer.close()
