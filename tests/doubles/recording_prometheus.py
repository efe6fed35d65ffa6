"""A TEST DOUBLE of Prometheus's HTTP API: answers every query with an empty vector and records
what was asked, as an ``httpx`` transport.

Why a double here: some client behaviour cannot be provoked on a real Prometheus (it has no bearer
authentication), and counting requests exactly is simpler without one. Everything about real
answers, errors, basic auth and TLS is tested against the real server.
"""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qs

import httpx


class RecordingPrometheus(httpx.AsyncBaseTransport):
    """Records ``(path, form fields, headers)`` of each request; optionally slow, to overlap calls."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.requests: list[tuple[str, dict[str, str], httpx.Headers]] = []
        self.delay_s = delay_s

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
        self.requests.append((request.url.path, form, request.headers))
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        return httpx.Response(200, json={"status": "success", "data": {"resultType": "vector", "result": []}})
