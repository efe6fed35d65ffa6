"""``gpudoc serve``'s app in process (ASGI) for the HTTP tests: settings, a client talking to the
app with its lifespan running, and readers for what it answers (server-sent events, metrics)."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from gpudoc.server.app import create_app
from gpudoc.server.settings import ServerSettings
from gpudoc.tools.sim.source import SimSource
from tests.doubles.stub_vllm import STUB_MODEL, StubVllmServer

HOT_QUESTION = "Is node-2 running hot?"


def closed_port_url() -> str:
    """A base URL nothing listens on: the LLM is down."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def settings_for(tmp_path: Path, llm_base_url: str, **overrides: Any) -> ServerSettings:
    values: dict[str, Any] = {
        "llm_base_url": llm_base_url,
        "llm_model": STUB_MODEL,
        "llm_max_retries": 0,
        "db_path": tmp_path / "threads.sqlite",
        "api_token": None,
        "cors_origins": "",
        **overrides,
    }
    return ServerSettings(**values)


@asynccontextmanager
async def running(settings: ServerSettings, *, timeout_s: float = 60) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The app (one worker: its own source, store connections and model client) with its lifespan
    running, and a client talking to it in process."""
    app = create_app(settings, source=SimSource.create(seed=42, nodes=4, scenarios=["thermal-throttle@node-2/gpu-3"],
                                                       realtime=False))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gpudoc.test", timeout=timeout_s) as client:
            yield app, client


@asynccontextmanager
async def serving(settings: ServerSettings) -> AsyncIterator[httpx.AsyncClient]:
    """``running``, for the tests that only need the client."""
    async with running(settings, timeout_s=30) as (_app, client):
        yield client


def sse_records(text: str) -> list[tuple[str, Any]]:
    """(event, decoded data) pairs of a server-sent-events body."""
    records = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        event, data = None, []
        for line in block.split("\n"):
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip())
        if event or data:
            records.append((event or "message", json.loads("\n".join(data)) if data else None))
    return records


def human(text: str) -> dict[str, str]:
    return {"type": "human", "content": text}


def questions_sent_to_llm(stub: StubVllmServer) -> list[str]:
    """The human messages of the stub's last request: what the model saw of the conversation."""
    messages = stub.requests[-1]["messages"]
    return [m["content"] for m in messages if m["role"] == "user"]


def metric_value(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        metric, _, label_text = head.partition("{")
        if metric != name:
            continue
        if all(f'{key}="{val}"' in label_text for key, val in labels.items()):
            total += float(value)
    return total
