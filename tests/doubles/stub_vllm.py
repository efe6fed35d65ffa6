"""A stub OpenAI-compatible server that speaks vLLM's wire format: a TEST DOUBLE, not a model.

Why it exists: the client path (``ChatOpenAI`` -> HTTP -> SSE chunks -> reasoning, tool-call
fragments, ``finish_reason``) must be exercised for real, in tests, evals, the server's browser
test and benchmarks, without GPUs. The answers come from a deterministic keyword policy, so a
run is reproducible and every number it quotes is copied from the tool results it was sent.

The double in parts: ``stub_reply`` (what a policy returns), ``keyword_policy`` (the default
policy), ``vllm_wire`` (vLLM's payloads and SSE framing, documented there), this module (the
HTTP server and its switches: latency, pacing, failures, the reasoning field). Everything a test
needs is importable from here. ``chat_template_kwargs: {"enable_thinking": false}`` in a request
suppresses the reasoning.

It never passes for the model it imitates: it serves the model id gpudoc asks for (the
Nemotron name by default) but marks that model card ``owned_by: "gpudoc-test-double"`` (vLLM
says ``"vllm"``) and names itself in an ``X-Gpudoc-Test-Double`` header on every response
(``graph/llm.py``), so ``gpudoc eval --live`` against it records a test double, not the model.

Use in-process::

    with StubVllmServer(token_delay=0.01) as base_url:   # base_url ends with /v1
        ...

or as a process: ``python -m tests.doubles.stub_vllm --port 8000``.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from http.server import ThreadingHTTPServer
from typing import Any

from gpudoc.graph.llm import TEST_DOUBLE_HEADER, TEST_DOUBLE_OWNER
from tests.doubles import vllm_wire as wire
from tests.doubles.http_double import JsonHandler, ThreadedHttpDouble
from tests.doubles.keyword_policy import PLANNING_TEXT, keyword_answer, keyword_plan, keyword_policy, planning_text_policy
from tests.doubles.stub_reply import FILLER, Policy, StubReply, StubToolCall, filler, padded

__all__ = [
    "FILLER", "PLANNING_TEXT", "STUB_MODEL", "Policy", "StubReply", "StubToolCall", "StubVllmServer",
    "filler", "keyword_answer", "keyword_plan", "keyword_policy", "padded", "planning_text_policy",
]

STUB_MODEL = "nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16"



class _Handler(JsonHandler):
    server: "_StubHttpServer"

    def end_headers(self) -> None:
        self.send_header(TEST_DOUBLE_HEADER, self.server.owner.identity)  # every response says what answers
        super().end_headers()

    def _write_chunk(self, data: bytes) -> None:
        """One piece of a chunked (``Transfer-Encoding: chunked``) body, flushed at once."""
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _no_route(self) -> None:
        self.send_json(404, wire.error_body(f"no route {self.path}", "NotFoundError", 404))

    # -- routes ---------------------------------------------------------------------------
    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        if self.path.rstrip("/") in ("/v1/models", "/models"):
            self.send_json(200, wire.model_list(self.server.owner.model, owned_by=TEST_DOUBLE_OWNER))
        elif self.path.rstrip("/") in ("/health", "/v1/health"):
            self.send_json(200, {})
        else:
            self._no_route()

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        owner = self.server.owner
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
            self._no_route()
            return
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            self.send_json(400, wire.error_body("request body is not JSON", "BadRequestError", 400))
            return
        owner.record(body, client_port=self.client_address[1])
        if owner.fail_status:
            self.send_json(owner.fail_status, wire.error_body("stub failure", "InternalServerError", owner.fail_status))
            return
        reply = padded(owner.policy(body), reasoning_words=owner.reasoning_words, answer_words=owner.answer_words)
        kwargs = body.get("chat_template_kwargs") or {}
        if kwargs.get("enable_thinking") is False:
            reply = StubReply(content=reply.content, reasoning="", tool_calls=reply.tool_calls, stop=reply.stop)
        if owner.latency:
            time.sleep(owner.latency)
        try:
            if body.get("stream"):
                self._stream(body, reply)
            else:
                self.send_json(200, wire.completion(body, reply, model=owner.model,
                                                    reasoning_field=owner.reasoning_field))
        except (BrokenPipeError, ConnectionResetError):
            return  # the client went away mid-stream; nothing to clean up

    def _stream(self, body: dict[str, Any], reply: StubReply) -> None:
        owner = self.server.owner
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for chunk, paced in wire.stream_chunks(body, reply, model=owner.model, reasoning_field=owner.reasoning_field):
            if paced and owner.token_delay:
                time.sleep(owner.token_delay)
            self._write_chunk(wire.sse_event(chunk))
        self._write_chunk(wire.SSE_DONE)
        self._write_chunk(b"")


class _StubHttpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024  # hundreds of streams may connect at once (benchmarks); the default is 5
    owner: "StubVllmServer"


class StubVllmServer(ThreadedHttpDouble):
    """The stub vLLM server (a test double). A context manager yielding its ``/v1`` base URL.

    ``policy`` maps a request body to a ``StubReply`` (default: ``keyword_policy``);
    ``latency`` delays each completion's first byte and ``token_delay`` each streamed chunk
    (seconds); ``fail_status`` makes every completion answer with that HTTP status;
    ``reasoning_field`` is ``"reasoning_content"`` (vLLM up to 0.10) or ``"reasoning"`` (newer);
    ``reasoning_words`` and ``answer_words`` put that many words of filler before every reply's
    reasoning and every answer's text (long streams for benchmarks). Each request body is kept in
    ``requests`` for assertions, and the client's port in ``client_ports`` (a new port, a new
    connection). ``identity`` is the name it gives itself in ``X-Gpudoc-Test-Double``.
    """

    thread_name = "stub-vllm"

    def __init__(
        self,
        *,
        policy: Policy | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        latency: float = 0.0,
        token_delay: float = 0.0,
        fail_status: int | None = None,
        reasoning_field: str = "reasoning_content",
        model: str = STUB_MODEL,
        reasoning_words: int = 0,
        answer_words: int = 0,
        identity: str | None = None,
    ) -> None:
        super().__init__(host, port)
        self.identity = identity or f"stub vLLM, {'keyword' if policy is None else 'scripted'} policy"
        self.policy: Policy = policy or keyword_policy
        self.latency, self.token_delay = latency, token_delay
        self.fail_status = fail_status
        self.reasoning_field = reasoning_field
        self.model = model
        self.reasoning_words, self.answer_words = reasoning_words, answer_words
        self.requests: list[dict[str, Any]] = []
        self.client_ports: list[int] = []  # the client's port of each request: a new one is a new connection
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return self.root_url + "/v1"

    def record(self, body: dict[str, Any], *, client_port: int = 0) -> None:
        with self._lock:
            self.requests.append(body)
            self.client_ports.append(client_port)

    def make_server(self) -> _StubHttpServer:
        server = _StubHttpServer((self.host, self.port), _Handler)
        server.owner = self
        return server

    def start(self) -> str:
        self.serve()
        return self.url

    def __enter__(self) -> str:
        return self.start()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Stub vLLM server (test double, keyword policy).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each completion starts")
    parser.add_argument("--token-delay", type=float, default=0.0, help="seconds between streamed chunks")
    parser.add_argument("--reasoning-field", choices=["reasoning_content", "reasoning"], default="reasoning_content")
    parser.add_argument("--reasoning-words", type=int, default=0, help="filler words before every reply's reasoning")
    parser.add_argument("--answer-words", type=int, default=0, help="filler words before every answer's text")
    args = parser.parse_args(argv)
    server = StubVllmServer(host=args.host, port=args.port, latency=args.latency,
                            token_delay=args.token_delay, reasoning_field=args.reasoning_field,
                            reasoning_words=args.reasoning_words, answer_words=args.answer_words)
    url = server.start()
    print(f"stub vLLM (test double) serving {url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
