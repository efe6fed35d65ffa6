"""A LangSmith-compatible HTTP endpoint that records what it receives: a TEST DOUBLE, not LangSmith.

Why it exists: ``gpudoc eval --langsmith`` talks to LangSmith through the langsmith SDK, and
the test must see what the SDK really sends (datasets, examples, the experiment, traced runs,
feedback) without a LangSmith account or network. This server answers the endpoints the SDK
calls for those with the JSON shapes the SDK parses, keeps every object it was sent, and keeps
every raw request for assertions. It implements no search, auth or storage semantics beyond that.

Endpoints: ``GET /info``; ``POST/GET /datasets`` (``?name=``), ``GET/PATCH /datasets/{id}``;
``POST /examples/bulk``, ``PATCH /examples/bulk``, ``GET /examples`` (``?dataset=``);
``POST/GET /sessions`` (``?name=``), ``GET/PATCH /sessions/{id}``; ``POST /runs``,
``PATCH /runs/{id}``, ``POST /runs/batch``, ``POST /runs/multipart`` (the SDK's default:
multipart/form-data parts named ``post.<id>``, ``post.<id>.inputs``, ``patch.<id>.outputs``,
``feedback.<id>``, ...); ``POST /feedback``. The API may be mounted under ``/api/v1`` too.

Use in-process::

    with LangSmithRecorder() as recorder:        # recorder.url is the api_url
        ...
        recorder.runs, recorder.feedback, recorder.datasets, recorder.examples, recorder.sessions
"""

from __future__ import annotations

import gzip
import json
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.parser import BytesParser
from email.policy import HTTP
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.doubles.http_double import JsonHandler, ThreadedHttpDouble


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


@dataclass
class RecorderState:
    """Everything the double was sent, by kind; runs merge their post and patch parts by id."""

    requests: list[RecordedRequest] = field(default_factory=list)
    datasets: dict[str, dict[str, Any]] = field(default_factory=dict)
    examples: dict[str, dict[str, Any]] = field(default_factory=dict)
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    feedback: list[dict[str, Any]] = field(default_factory=list)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


TENANT = "00000000-0000-4000-8000-000000000001"


def _decode(body: bytes, encoding: str | None) -> bytes:
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "zstd":
        import zstandard

        return zstandard.ZstdDecompressor().decompressobj().decompress(body)
    return body


def _multipart_parts(content_type: str, body: bytes) -> list[tuple[str, bytes]]:
    """(name, payload) of each part of a multipart/form-data body."""
    message = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    parts = []
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True) or b""
        parts.append((str(name), _decode(payload, part.get("content-encoding"))))
    return parts


class _Handler(JsonHandler):
    server: "_RecorderHttpServer"

    # -- plumbing -------------------------------------------------------------------------
    def _read(self) -> RecordedRequest:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        split = urlsplit(self.path)
        path = split.path
        for prefix in ("/api/v1", "/v1/platform", "/api"):
            if path.startswith(prefix + "/"):
                path = path[len(prefix):]
                break
        request = RecordedRequest(
            method=self.command, path=path.rstrip("/") or "/", query=parse_qs(split.query),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=_decode(raw, self.headers.get("Content-Encoding")),
        )
        with self.server.lock:
            self.server.state.requests.append(request)
        return request

    def _json(self, request: RecordedRequest) -> Any:
        return json.loads(request.body or b"null")

    def do_GET(self) -> None:  # noqa: N802
        self._route(self._read())

    def do_POST(self) -> None:  # noqa: N802
        self._route(self._read())

    def do_PATCH(self) -> None:  # noqa: N802
        self._route(self._read())

    def do_PUT(self) -> None:  # noqa: N802
        self._route(self._read())

    def do_DELETE(self) -> None:  # noqa: N802
        self._route(self._read())

    # -- routes ---------------------------------------------------------------------------
    def _route(self, request: RecordedRequest) -> None:
        state, lock = self.server.state, self.server.lock
        parts = request.path.strip("/").split("/")
        method = request.method
        with lock:
            if request.path == "/info":
                # No batch_ingest_config: the SDK then uses its defaults (multipart run ingestion),
                # compressed with zstd as current LangSmith servers accept it.
                return self.send_json(200, {"version": "0.0.0-recorder",
                                         "instance_flags": {"zstd_compression_enabled": True}})
            if parts[0] == "datasets":
                return self._datasets(method, parts, request, state)
            if parts[0] == "examples":
                return self._examples(method, parts, request, state)
            if parts[0] == "sessions":
                return self._sessions(method, parts, request, state)
            if parts[0] == "runs":
                return self._runs(method, parts, request, state)
            if parts[0] == "feedback" and method == "POST":
                item = self._json(request)
                item.setdefault("id", str(uuid.uuid4()))
                state.feedback.append(item)
                return self.send_json(200, self._feedback_view(item))
        self.send_json(404, {"detail": f"the recorder double has no route {method} {request.path}"})

    def _datasets(self, method: str, parts: list[str], request: RecordedRequest, state: RecorderState) -> None:
        if method == "POST" and len(parts) == 1:
            body = self._json(request)
            if any(d["name"] == body.get("name") for d in state.datasets.values()):
                return self.send_json(409, {"detail": "Dataset already exists"})
            dataset = {"id": str(body.get("id") or uuid.uuid4()), "name": body["name"],
                       "description": body.get("description"), "data_type": body.get("data_type", "kv"),
                       "metadata": body.get("extra", {}).get("metadata") if body.get("extra") else body.get("metadata"),
                       "created_at": _now(), "modified_at": _now(), "tenant_id": TENANT,
                       "example_count": 0, "session_count": 0}
            state.datasets[dataset["id"]] = dataset
            return self.send_json(200, dataset)
        if method == "GET" and len(parts) == 1:
            names = request.query.get("name") or []
            ids = request.query.get("id") or []
            found = [d for d in state.datasets.values()
                     if (not names or d["name"] in names) and (not ids or d["id"] in ids)]
            return self.send_json(200, found)
        if len(parts) == 2 and parts[1] in state.datasets:
            dataset = state.datasets[parts[1]]
            if method == "PATCH":
                dataset.update({k: v for k, v in (self._json(request) or {}).items() if v is not None})
            dataset["example_count"] = sum(1 for e in state.examples.values() if e["dataset_id"] == dataset["id"])
            return self.send_json(200, dataset)
        return self.send_json(404, {"detail": "dataset not found"})

    def _examples(self, method: str, parts: list[str], request: RecordedRequest, state: RecorderState) -> None:
        if len(parts) == 2 and parts[1] == "bulk" and method in ("POST", "PATCH"):
            created: list[dict[str, Any]] = []
            for item in self._json(request) or []:
                example_id = str(item.get("id") or uuid.uuid4())
                stored = state.examples.get(example_id, {})
                stored.update({k: v for k, v in item.items() if v is not None})
                stored.update({"id": example_id, "created_at": stored.get("created_at", _now()),
                               "modified_at": _now()})
                state.examples[example_id] = stored
                created.append(self._example_view(stored))
            if method == "POST":
                return self.send_json(200, created)  # the SDK reads the created examples back
            return self.send_json(200, {"example_ids": [e["id"] for e in created], "count": len(created)})
        if method == "GET" and len(parts) == 1:
            datasets = request.query.get("dataset") or []
            found = [self._example_view(e) for e in state.examples.values()
                     if not datasets or e.get("dataset_id") in datasets]
            offset = int((request.query.get("offset") or ["0"])[0])
            limit = int((request.query.get("limit") or ["100"])[0])
            return self.send_json(200, found[offset:offset + limit])
        return self.send_json(404, {"detail": "no such examples route"})

    @staticmethod
    def _example_view(example: dict[str, Any]) -> dict[str, Any]:
        return {"id": example["id"], "dataset_id": example.get("dataset_id"), "inputs": example.get("inputs", {}),
                "outputs": example.get("outputs"), "metadata": example.get("metadata"),
                "created_at": example.get("created_at"), "modified_at": example.get("modified_at")}

    def _sessions(self, method: str, parts: list[str], request: RecordedRequest, state: RecorderState) -> None:
        if method == "POST" and len(parts) == 1:
            body = self._json(request)
            session = {**body, "id": str(body.get("id") or uuid.uuid4()), "tenant_id": TENANT,
                       "start_time": body.get("start_time") or _now()}
            state.sessions[session["id"]] = session
            return self.send_json(200, session)
        if method == "GET" and len(parts) == 1:
            names = request.query.get("name") or []
            return self.send_json(200, [s for s in state.sessions.values() if not names or s.get("name") in names])
        if len(parts) == 2 and parts[1] in state.sessions:
            session = state.sessions[parts[1]]
            if method == "PATCH":
                session.update({k: v for k, v in (self._json(request) or {}).items() if v is not None})
            return self.send_json(200, session)
        return self.send_json(404, {"detail": "session not found"})

    def _runs(self, method: str, parts: list[str], request: RecordedRequest, state: RecorderState) -> None:
        if method == "POST" and len(parts) == 1:
            self._merge_run(state, self._json(request))
        elif method == "PATCH" and len(parts) == 2:
            self._merge_run(state, {**(self._json(request) or {}), "id": parts[1]})
        elif method == "POST" and parts[1:] == ["batch"]:
            body = self._json(request) or {}
            for run in [*(body.get("post") or []), *(body.get("patch") or [])]:
                self._merge_run(state, run)
        elif method == "POST" and parts[1:] == ["multipart"]:
            self._multipart(state, request)
        else:
            return self.send_json(404, {"detail": "no such runs route"})
        return self.send_json(202, {})

    @staticmethod
    def _merge_run(state: RecorderState, run: dict[str, Any]) -> None:
        run_id = str(run.get("id"))
        stored = state.runs.setdefault(run_id, {})
        for key, value in run.items():
            if isinstance(value, dict) and isinstance(stored.get(key), dict):
                stored[key] = {**stored[key], **value}
            elif value is not None or key not in stored:
                stored[key] = value

    def _multipart(self, state: RecorderState, request: RecordedRequest) -> None:
        for name, payload in _multipart_parts(request.headers.get("content-type", ""), request.body):
            pieces = name.split(".")
            if len(pieces) < 2:
                continue
            kind, item_id = pieces[0], pieces[1]
            if kind == "feedback":
                state.feedback.append({**json.loads(payload or b"{}"), "id": item_id})
                continue
            if kind not in ("post", "patch"):
                continue
            value = json.loads(payload or b"null")
            if len(pieces) == 2:
                self._merge_run(state, {**(value or {}), "id": item_id})
            elif pieces[2] in ("inputs", "outputs", "events", "extra", "error", "serialized"):
                self._merge_run(state, {"id": item_id, pieces[2]: value})

    @staticmethod
    def _feedback_view(item: dict[str, Any]) -> dict[str, Any]:
        return {"id": item["id"], "run_id": item.get("run_id"), "key": item.get("key"),
                "score": item.get("score"), "value": item.get("value"), "comment": item.get("comment"),
                "created_at": _now(), "modified_at": _now()}


class _RecorderHttpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    state: RecorderState
    lock: threading.Lock


class LangSmithRecorder(ThreadedHttpDouble):
    """The recording LangSmith double (a test double). A context manager; ``url`` is its api_url."""

    thread_name = "langsmith-recorder"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port)
        self.state = RecorderState()

    @property
    def url(self) -> str:
        return self.root_url

    def make_server(self) -> _RecorderHttpServer:
        server = _RecorderHttpServer((self.host, self.port), _Handler)
        server.state = self.state
        server.lock = threading.Lock()
        return server

    def start(self) -> "LangSmithRecorder":
        self.serve()
        return self

    def __enter__(self) -> "LangSmithRecorder":
        return self.start()

    # -- what was received ------------------------------------------------------------------
    @property
    def runs(self) -> dict[str, dict[str, Any]]:
        return self.state.runs

    @property
    def feedback(self) -> list[dict[str, Any]]:
        return self.state.feedback

    @property
    def datasets(self) -> dict[str, dict[str, Any]]:
        return self.state.datasets

    @property
    def examples(self) -> dict[str, dict[str, Any]]:
        return self.state.examples

    @property
    def sessions(self) -> dict[str, dict[str, Any]]:
        return self.state.sessions

    def unanswered(self) -> list[str]:
        """Requests the double had no route for (each one is something the SDK sent that was lost)."""
        known = ("/info", "/datasets", "/examples", "/sessions", "/runs", "/feedback")
        return [f"{r.method} {r.path}" for r in self.state.requests if not r.path.startswith(known)]
