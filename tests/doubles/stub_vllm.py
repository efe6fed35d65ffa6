"""A stub OpenAI-compatible server that speaks vLLM's wire format: a TEST DOUBLE, not a model.

Why it exists: the client path (``ChatOpenAI`` -> HTTP -> SSE chunks -> reasoning, tool-call
fragments, ``finish_reason``) must be exercised for real, in tests, evals, the server's browser
test and benchmarks, without GPUs. The answers come from a deterministic keyword policy, so a
run is reproducible and every number it quotes is copied from the tool results it was sent.

Wire format (as vLLM with ``--reasoning-parser`` and ``--tool-call-parser`` produces it):

- ``GET  /v1/models`` -> ``{"object": "list", "data": [{"id": MODEL, ...}]}``
- ``POST /v1/chat/completions`` non-streaming -> ``chat.completion`` with ``message.content``,
  ``message.reasoning_content`` (or ``reasoning``), ``message.tool_calls``, ``finish_reason``.
- streaming -> ``data: {chat.completion.chunk}`` lines: a role chunk, ``delta.reasoning_content``
  pieces, ``delta.content`` pieces or ``delta.tool_calls`` fragments (index, id, function name,
  argument fragments), a chunk with ``finish_reason``, an optional usage chunk, ``data: [DONE]``.
- ``chat_template_kwargs: {"enable_thinking": false}`` suppresses the reasoning.

Use in-process::

    with StubVllmServer(token_delay=0.01) as base_url:   # base_url ends with /v1
        ...

or as a process: ``python -m tests.doubles.stub_vllm --port 8000``.
"""

from __future__ import annotations

import argparse
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterator

STUB_MODEL = "nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16"


# ----------------------------------------------------------------------------------------------
# What the policy returns: one assistant reply.
# ----------------------------------------------------------------------------------------------


@dataclass
class StubToolCall:
    name: str
    arguments: str  # raw JSON text as the model would emit it (may be malformed on purpose)
    id: str = field(default_factory=lambda: f"chatcmpl-tool-{uuid.uuid4().hex[:16]}")


@dataclass
class StubReply:
    content: str = ""
    reasoning: str = ""
    tool_calls: list[StubToolCall] = field(default_factory=list)
    stop: str | None = None  # finish_reason to report instead of "stop"/"tool_calls", e.g. "length"

    @property
    def finish_reason(self) -> str:
        return self.stop or ("tool_calls" if self.tool_calls else "stop")


Policy = Callable[[dict[str, Any]], StubReply]
"""Maps a chat-completions request body to the reply the double sends back."""


# ----------------------------------------------------------------------------------------------
# The default policy: pick tools from the question's words, then answer from the tool results.
# ----------------------------------------------------------------------------------------------

_NODE_RE = re.compile(r"\bnode[-_ ]?(\d+)\b", re.IGNORECASE)
_TOPIC_KEYS = {
    "thermal": ("temp", "thermal", "clock", "throttl"),
    "jobs": ("pending", "running", "job", "drain", "gpus"),
    "health": ("xid", "remap", "ecc", "severity", "critical", "nvlink"),
}


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def _last_question(messages: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """The last user message and the messages after it (this turn's tool results)."""
    for index in range(len(messages) - 1, -1, -1):
        if messages[index].get("role") == "user":
            return _text_of(messages[index].get("content")), messages[index + 1 :]
    return "", []


def _tool_params(body: dict[str, Any]) -> dict[str, set[str]]:
    """Offered tool name -> its parameter names, from the request's ``tools`` schemas."""
    offered: dict[str, set[str]] = {}
    for tool in body.get("tools") or []:
        function = tool.get("function", {})
        props = (function.get("parameters") or {}).get("properties") or {}
        offered[function.get("name", "")] = set(props)
    return offered


def _node_arg(params: set[str], node: str | None) -> dict[str, Any]:
    if not node:
        return {}
    for name in ("node_id", "node"):
        if name in params:
            return {name: node}
    return {}


def keyword_plan(question: str, offered: dict[str, set[str]]) -> list[tuple[str, dict[str, Any]]]:
    """Which tools a question's words call for (only tools the request offers)."""
    lowered = question.lower()
    match = _NODE_RE.search(question)
    node = f"node-{int(match.group(1))}" if match else None
    wanted: list[tuple[str, dict[str, Any]]] = []

    def want(name: str, **extra: Any) -> None:
        if name in offered and name not in [w[0] for w in wanted]:
            args = {**_node_arg(offered[name], node), **{k: v for k, v in extra.items() if k in offered[name]}}
            wanted.append((name, args))

    if any(word in lowered for word in ("hot", "temperature", "thermal", "temp ", "cooling")):
        want("get_gpu_history", duration_minutes=60)
        want("get_node_details" if node else "get_current_metrics")
    if any(word in lowered for word in ("pending", "job", "queue", "slurm")):
        want("get_slurm_jobs", state="PENDING" if "pending" in lowered else None)
        want("get_slurm_status")
    if any(word in lowered for word in ("rma", "health", "broken", "fault", "wrong", "diagnos", "fail")):
        want("diagnose_cluster")
    if "alert" in lowered:
        want("get_alert_history")
    if not wanted and node:
        want("get_node_details")
    if not wanted:
        want("get_cluster_status")
    return [(name, {k: v for k, v in args.items() if v is not None}) for name, args in wanted]


def _numeric_leaves(value: Any, key: str = "") -> Iterator[tuple[str, float | int]]:
    if isinstance(value, bool):
        return
    if isinstance(value, (int, float)):
        yield key, value
    elif isinstance(value, dict):
        for child_key, child in value.items():
            yield from _numeric_leaves(child, str(child_key))
    elif isinstance(value, list):
        for child in value:
            yield from _numeric_leaves(child, key)


def _subjects(value: Any) -> Iterator[tuple[str, str, str]]:
    """(severity, subject, title) of every finding-shaped object in a tool result."""
    if isinstance(value, dict):
        if "subject" in value and "severity" in value:
            yield str(value["severity"]), str(value["subject"]), str(value.get("title", ""))
        for child in value.values():
            yield from _subjects(child)
    elif isinstance(value, list):
        for child in value:
            yield from _subjects(child)


def _topic(question: str) -> str:
    lowered = question.lower()
    if any(w in lowered for w in ("hot", "temperature", "thermal")):
        return "thermal"
    if any(w in lowered for w in ("pending", "job", "queue")):
        return "jobs"
    return "health"


def keyword_answer(question: str, turn_messages: list[dict[str, Any]], *, limit: int = 4) -> StubReply:
    """A markdown answer quoting a few numbers and findings copied verbatim from the tool results."""
    names = {}
    for message in turn_messages:
        for call in message.get("tool_calls") or []:
            names[call.get("id")] = call.get("function", {}).get("name", "tool")
    facts: list[tuple[str, str, Any]] = []
    findings: list[tuple[str, str, str]] = []
    errors: list[str] = []
    keys = _TOPIC_KEYS[_topic(question)]
    for message in turn_messages:
        if message.get("role") != "tool":
            continue
        tool = names.get(message.get("tool_call_id"), "tool")
        text = _text_of(message.get("content"))
        try:
            data = json.loads(text)
        except ValueError:
            errors.append(f"{tool}: {text[:160]}")
            continue
        leaves = list(_numeric_leaves(data))
        preferred = sorted((leaf for leaf in leaves if any(k in leaf[0].lower() for k in keys)),
                           key=lambda leaf: -leaf[1])  # the most extreme readings first
        for key, number in (preferred or leaves)[:limit]:
            facts.append((tool, key, number))
        findings.extend(_subjects(data))
    facts = facts[: limit * 2]
    used = ", ".join(dict.fromkeys(names.values())) or "no tools"
    reasoning = (
        f"The operator asks: {question.strip()!r}. I called {used}. "
        f"I will report {len(facts)} readings and {len(findings)} findings taken from those results."
    )
    match = _NODE_RE.search(question)
    about = f" for node-{int(match.group(1))}" if match else ""
    lines = [f"**Answer{about}** (evidence from {used})", ""]
    if facts:
        lines += ["| tool | reading | value |", "|---|---|---|"]
        lines += [f"| {tool} | {key or 'value'} | {number} |" for tool, key, number in facts]
        lines.append("")
    for severity, subject, title in findings[:6]:
        lines.append(f"- **{severity}** {subject}: {title}".rstrip(": "))
    for error in errors:
        lines.append(f"- a tool failed: {error}")
    if not facts and not findings and not errors:
        lines.append("The tools returned no readings for this question.")
    return StubReply(content="\n".join(lines).strip() + "\n", reasoning=reasoning)


def keyword_policy(body: dict[str, Any]) -> StubReply:
    """Deterministic default: first call tools chosen by keywords, then answer from their results."""
    question, after = _last_question(body.get("messages") or [])
    offered = _tool_params(body)
    has_results = any(m.get("role") == "tool" for m in after)
    if offered and not has_results:
        plan = keyword_plan(question, offered)
        return StubReply(
            reasoning=f"To answer {question.strip()!r} I need: {', '.join(name for name, _ in plan)}.",
            tool_calls=[StubToolCall(name, json.dumps(args)) for name, args in plan],
        )
    return keyword_answer(question, after)


#: what ``planning_text_policy`` writes beside its tool calls
PLANNING_TEXT = "Let me look at node-2 first; it is probably fine at 40 C."


def planning_text_policy(body: dict[str, Any]) -> StubReply:
    """The keyword policy, with text written beside the planning call's tool calls (as small models'
    often is): that text is commentary, and must never reach a client as the answer."""
    reply = keyword_policy(body)
    if reply.tool_calls:
        reply.content = PLANNING_TEXT
    return reply


# ----------------------------------------------------------------------------------------------
# The HTTP server
# ----------------------------------------------------------------------------------------------


def _pieces(text: str) -> list[str]:
    return re.findall(r"\S+\s*|\s+", text)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_StubHttpServer"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        return  # quiet: tests and benchmarks read their own output

    # -- helpers --------------------------------------------------------------------------
    def _send_json(self, status: int, payload: Any) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    # -- routes ---------------------------------------------------------------------------
    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        if self.path.rstrip("/") in ("/v1/models", "/models"):
            owner = self.server.owner
            self._send_json(
                200,
                {"object": "list", "data": [{"id": owner.model, "object": "model", "owned_by": "vllm",
                                             "created": 0, "max_model_len": 32768}]},
            )
        elif self.path.rstrip("/") in ("/health", "/v1/health"):
            self._send_json(200, {})
        else:
            self._send_json(404, {"error": {"message": f"no route {self.path}", "type": "NotFoundError", "code": 404}})

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        owner = self.server.owner
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
            self._send_json(404, {"error": {"message": f"no route {self.path}", "type": "NotFoundError", "code": 404}})
            return
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            self._send_json(400, {"error": {"message": "request body is not JSON", "type": "BadRequestError", "code": 400}})
            return
        owner.record(body)
        if owner.fail_status:
            self._send_json(owner.fail_status, {"error": {"message": "stub failure", "type": "InternalServerError",
                                                          "code": owner.fail_status}})
            return
        reply = owner.policy(body)
        kwargs = body.get("chat_template_kwargs") or {}
        if kwargs.get("enable_thinking") is False:
            reply = StubReply(content=reply.content, reasoning="", tool_calls=reply.tool_calls, stop=reply.stop)
        if owner.latency:
            time.sleep(owner.latency)
        try:
            if body.get("stream"):
                self._stream(body, reply)
            else:
                self._send_json(200, self._completion(body, reply))
        except (BrokenPipeError, ConnectionResetError):
            return  # the client went away mid-stream; nothing to clean up

    # -- vLLM payloads --------------------------------------------------------------------
    def _envelope(self, body: dict[str, Any], object_name: str) -> dict[str, Any]:
        return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": object_name, "created": int(time.time()),
                "model": body.get("model") or self.server.owner.model}

    @staticmethod
    def _usage(body: dict[str, Any], reply: StubReply) -> dict[str, int]:
        prompt = sum(len(_text_of(m.get("content")).split()) for m in body.get("messages") or [])
        completion = len(_pieces(reply.content)) + len(_pieces(reply.reasoning)) + 8 * len(reply.tool_calls)
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

    def _completion(self, body: dict[str, Any], reply: StubReply) -> dict[str, Any]:
        field_name = self.server.owner.reasoning_field
        message: dict[str, Any] = {"role": "assistant", "content": reply.content or None,
                                   field_name: reply.reasoning or None}
        message["tool_calls"] = [
            {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
            for call in reply.tool_calls
        ]
        return {**self._envelope(body, "chat.completion"),
                "choices": [{"index": 0, "message": message, "logprobs": None,
                             "finish_reason": reply.finish_reason, "stop_reason": None}],
                "usage": self._usage(body, reply)}

    def _stream(self, body: dict[str, Any], reply: StubReply) -> None:
        owner = self.server.owner
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        envelope = self._envelope(body, "chat.completion.chunk")

        def emit(delta: dict[str, Any], finish: str | None = None, *, pause: bool = False) -> None:
            if pause and owner.token_delay:
                time.sleep(owner.token_delay)
            chunk = {**envelope, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
            self._write_chunk(f"data: {json.dumps(chunk)}\n\n".encode())

        emit({"role": "assistant", "content": ""})
        for piece in _pieces(reply.reasoning):
            emit({owner.reasoning_field: piece}, pause=True)
        for piece in _pieces(reply.content):
            emit({"content": piece}, pause=True)
        for index, call in enumerate(reply.tool_calls):
            emit({"tool_calls": [{"index": index, "id": call.id, "type": "function",
                                  "function": {"name": call.name, "arguments": ""}}]}, pause=True)
            middle = max(1, len(call.arguments) // 2)
            for fragment in (call.arguments[:middle], call.arguments[middle:]):
                if fragment:
                    emit({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]}, pause=True)
        emit({}, reply.finish_reason)
        if (body.get("stream_options") or {}).get("include_usage"):
            usage_chunk = {**envelope, "choices": [], "usage": self._usage(body, reply)}
            self._write_chunk(f"data: {json.dumps(usage_chunk)}\n\n".encode())
        self._write_chunk(b"data: [DONE]\n\n")
        self._write_chunk(b"")


class _StubHttpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: "StubVllmServer"


class StubVllmServer:
    """The stub vLLM server (a test double). A context manager yielding its ``/v1`` base URL.

    ``policy`` maps a request body to a ``StubReply`` (default: ``keyword_policy``);
    ``latency`` delays each completion's first byte and ``token_delay`` each streamed chunk
    (seconds); ``fail_status`` makes every completion answer with that HTTP status;
    ``reasoning_field`` is ``"reasoning_content"`` (vLLM up to 0.10) or ``"reasoning"`` (newer).
    Each request body is kept in ``requests`` for assertions.
    """

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
    ) -> None:
        self.policy: Policy = policy or keyword_policy
        self.host, self.port = host, port
        self.latency, self.token_delay = latency, token_delay
        self.fail_status = fail_status
        self.reasoning_field = reasoning_field
        self.model = model
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._server: _StubHttpServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the stub server is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def record(self, body: dict[str, Any]) -> None:
        with self._lock:
            self.requests.append(body)

    def start(self) -> str:
        self._server = _StubHttpServer((self.host, self.port), _Handler)
        self._server.owner = self
        self._thread = threading.Thread(target=self._server.serve_forever, name="stub-vllm", daemon=True)
        self._thread.start()
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Stub vLLM server (test double, keyword policy).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each completion starts")
    parser.add_argument("--token-delay", type=float, default=0.0, help="seconds between streamed chunks")
    parser.add_argument("--reasoning-field", choices=["reasoning_content", "reasoning"], default="reasoning_content")
    args = parser.parse_args(argv)
    server = StubVllmServer(host=args.host, port=args.port, latency=args.latency,
                            token_delay=args.token_delay, reasoning_field=args.reasoning_field)
    url = server.start()
    print(f"stub vLLM (test double) serving {url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
