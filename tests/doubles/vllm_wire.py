"""vLLM's OpenAI-compatible wire format, as the stub vLLM server writes it (part of a TEST DOUBLE).

What vLLM with ``--reasoning-parser`` and ``--tool-call-parser`` sends, built from a ``StubReply``:

- ``GET  /v1/models`` -> ``{"object": "list", "data": [{"id": MODEL, ...}]}``
- ``POST /v1/chat/completions`` non-streaming -> ``chat.completion`` with ``message.content``,
  ``message.reasoning_content`` (or ``reasoning``), ``message.tool_calls``, ``finish_reason``.
- streaming -> ``data: {chat.completion.chunk}`` events: a role chunk, ``delta.reasoning_content``
  pieces, ``delta.content`` pieces or ``delta.tool_calls`` fragments (index, id, function name,
  argument fragments), a chunk with ``finish_reason``, an optional usage chunk, ``data: [DONE]``.
- errors -> ``{"error": {"message", "type", "code"}}``.

Only payloads and SSE framing live here; the HTTP plumbing is in ``tests/doubles/stub_vllm.py``.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any, Iterator

from tests.doubles.stub_reply import StubReply

#: the SSE event that ends a stream
SSE_DONE = b"data: [DONE]\n\n"


def message_text(content: Any) -> str:
    """The text of a message's ``content``: a string, or a list of parts with ``text``."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def pieces(text: str) -> list[str]:
    """``text`` cut into the pieces streamed one chunk each: a word with its trailing space."""
    return re.findall(r"\S+\s*|\s+", text)


def sse_event(payload: Any) -> bytes:
    return f"data: {json.dumps(payload)}\n\n".encode()


def error_body(message: str, kind: str, code: int) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "code": code}}


def model_list(model: str, *, owned_by: str = "vllm") -> dict[str, Any]:
    """vLLM's model list; vLLM says ``owned_by: "vllm"``, a double says what it is (``TEST_DOUBLE_OWNER``)."""
    return {"object": "list", "data": [{"id": model, "object": "model", "owned_by": owned_by,
                                        "created": 0, "max_model_len": 32768}]}


def envelope(body: dict[str, Any], object_name: str, model: str) -> dict[str, Any]:
    return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": object_name, "created": int(time.time()),
            "model": body.get("model") or model}


def usage(body: dict[str, Any], reply: StubReply) -> dict[str, int]:
    prompt = sum(len(message_text(m.get("content")).split()) for m in body.get("messages") or [])
    completion = len(pieces(reply.content)) + len(pieces(reply.reasoning)) + 8 * len(reply.tool_calls)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def completion(body: dict[str, Any], reply: StubReply, *, model: str, reasoning_field: str) -> dict[str, Any]:
    """The non-streaming ``chat.completion`` of one reply."""
    message: dict[str, Any] = {"role": "assistant", "content": reply.content or None,
                               reasoning_field: reply.reasoning or None}
    message["tool_calls"] = [
        {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
        for call in reply.tool_calls
    ]
    return {**envelope(body, "chat.completion", model),
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": reply.finish_reason, "stop_reason": None}],
            "usage": usage(body, reply)}


def stream_chunks(
    body: dict[str, Any], reply: StubReply, *, model: str, reasoning_field: str
) -> Iterator[tuple[dict[str, Any], bool]]:
    """The ``chat.completion.chunk`` payloads of one streamed reply, in order, each with whether
    it is a generated token (the server paces those); ``SSE_DONE`` follows the last one."""
    head = envelope(body, "chat.completion.chunk", model)

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**head, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}

    yield chunk({"role": "assistant", "content": ""}), False
    for piece in pieces(reply.reasoning):
        yield chunk({reasoning_field: piece}), True
    for piece in pieces(reply.content):
        yield chunk({"content": piece}), True
    for index, call in enumerate(reply.tool_calls):
        yield chunk({"tool_calls": [{"index": index, "id": call.id, "type": "function",
                                     "function": {"name": call.name, "arguments": ""}}]}), True
        middle = max(1, len(call.arguments) // 2)
        for fragment in (call.arguments[:middle], call.arguments[middle:]):
            if fragment:
                yield chunk({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]}), True
    yield chunk({}, reply.finish_reason), False
    if (body.get("stream_options") or {}).get("include_usage"):
        yield {**head, "choices": [], "usage": usage(body, reply)}, False
