"""Request guards in front of every route: the bearer token, the body size limit, a JSON body.

Why one ASGI layer rather than FastAPI dependencies: LangServe's routes are added by
``add_routes`` and read the body themselves, so a limit or a token check has to sit in front of
them; and an oversized body must be refused before anyone buffers it.

Why the JSON check here: both APIs take JSON only, and what the parsers downstream do with a
body that is not UTF-8, nests 40,000 levels (``RecursionError``), carries a lone surrogate
(``UnicodeEncodeError`` when the text reaches the model or the store) or an integer beyond 64
bits (LangServe's event serialiser) is a 500 with a traceback.
One parse here, bounded by the size limit, answers each with a 400 that says what is wrong.
"""

from __future__ import annotations

import hmac
import json
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gpudoc.server.errors import send_error

#: paths under these prefixes need the token when one is configured
PROTECTED_PREFIXES = ("/agent", "/api/")
ORIGINAL_API_PREFIX = "/api/"
#: ...except the LangServe playground's own page and assets (its API calls are still protected)
UNPROTECTED_PREFIXES = ("/agent/playground",)
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def needs_json(path: str) -> bool:
    """Both APIs (``/agent``, ``/api/``) take JSON bodies only."""
    return path == "/agent" or any(path.startswith(prefix) for prefix in PROTECTED_PREFIXES)


def needs_token(path: str) -> bool:
    if any(path.startswith(prefix) for prefix in UNPROTECTED_PREFIXES):
        return False
    return path == "/agent" or any(path.startswith(prefix) for prefix in PROTECTED_PREFIXES)


#: deeper than any request of either API needs (a LangServe message with tool calls is about 8)
MAX_JSON_DEPTH = 64
_SURROGATE = re.compile("[\ud800-\udfff]")


def json_body_problem(body: bytes) -> str | None:
    """Why ``body`` is not acceptable JSON (empty, not UTF-8, not JSON, too deep, a lone surrogate), or None."""
    if not body.strip():
        return "the body is empty: send a JSON object"
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"the body is not UTF-8 (byte {exc.start})"
    try:
        value = json.loads(text)
    except RecursionError:
        return f"the JSON nests deeper than {MAX_JSON_DEPTH} levels"
    except ValueError as exc:
        return f"the body is not valid JSON: {exc}"
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return "a string holds a lone UTF-16 surrogate (an escape like \\ud800 without its pair): not text"
        elif isinstance(item, int) and not isinstance(item, bool) and not -(2**63) <= item < 2**64:
            return "a number is beyond 64-bit integers (no field takes one)"
        elif isinstance(item, (dict, list)):
            if depth > MAX_JSON_DEPTH:
                return f"the JSON nests deeper than {MAX_JSON_DEPTH} levels"
            children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return None


def content_type_problem(value: bytes | None) -> str | None:
    """Why a body declared with ``value`` as its Content-Type is not read as JSON, or None.

    Why refused rather than read anyway: the original GPU Watchdog backend (Express,
    ``express.json()``) parses only JSON media types and ignores any other body, so its clients
    already send ``application/json``; a body sent as ``text/plain`` is a client mistake, and
    saying so beats FastAPI's "Input should be a valid dictionary". No Content-Type at all is
    read as JSON, as FastAPI does.
    """
    if value is None:
        return None
    media = value.decode("latin-1").split(";", 1)[0].strip().lower()
    if not media or media == "application/json" or (media.startswith("application/") and media.endswith("+json")):
        return None
    return (f"the body was sent as {media}, and this API reads JSON only: send a JSON object such as "
            '{"message": "Is node-0 running hot?"} with Content-Type: application/json')


def _bearer(headers: dict[bytes, bytes]) -> str | None:
    value = headers.get(b"authorization", b"").decode("latin-1").strip()
    scheme, _, credentials = value.partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        return None
    return credentials.strip()


def presents_token(headers: dict[bytes, bytes], token: str | None) -> bool:
    """Whether a request carries the configured token (always true when none is configured)."""
    if not token:
        return True
    presented = _bearer(headers)
    return presented is not None and hmac.compare_digest(presented.encode(), token.encode())


def replaying(body: bytes, after: Receive) -> Receive:
    """A ``receive`` that hands over ``body`` (read already) once, then whatever ``after`` returns."""
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await after()

    return replay


class GuardMiddleware:
    """Refuses requests without the configured token (401) and bodies over the limit (413).

    The body is read up to the limit before the route runs and replayed to it; later
    ``receive()`` calls go to the server as before, so streaming routes still see a disconnect.
    """

    def __init__(self, app: ASGIApp, *, token: str | None, max_body_bytes: int) -> None:
        self.app = app
        self.token = token
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        if self.token and scope.get("method") != "OPTIONS" and needs_token(scope.get("path", "")):
            if not presents_token(headers, self.token):
                await send_error(
                    send, 401, "Unauthorized",
                    "This server requires 'Authorization: Bearer <token>' (the value of GPUDOC_API_TOKEN).",
                    [(b"www-authenticate", b'Bearer realm="gpudoc"')],
                )
                return
        if scope.get("method") not in BODY_METHODS:
            await self.app(scope, receive, send)
            return
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await self._too_large(send)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await self._too_large(send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        path = scope.get("path", "")
        problem = None
        if path.startswith(ORIGINAL_API_PREFIX):  # LangServe reads JSON whatever the type (curl -d sends a form type)
            problem = content_type_problem(headers.get(b"content-type"))
        if problem is None and needs_json(path):
            problem = json_body_problem(body)
        if problem:
            await self._malformed(send, path, problem)
            return
        await self.app(scope, replaying(body, receive), send)

    @staticmethod
    async def _malformed(send: Send, path: str, problem: str) -> None:
        """400 ``ErrorResponse`` on the original API (as GPU Watchdog's panel expects), FastAPI's 422
        validation shape on LangServe's routes (as its clients expect)."""
        if path.startswith(ORIGINAL_API_PREFIX):
            await send_error(send, 400, "Invalid request", [problem])  # the original API's 400 shape
            return
        body = json.dumps({"detail": [{"loc": ["body"], "msg": problem, "type": "json_invalid"}]}).encode()
        await send({"type": "http.response.start", "status": 422,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    async def _too_large(self, send: Send) -> None:
        await send_error(
            send, 413, "Request body too large",
            f"The limit is {self.max_body_bytes} bytes (GPUDOC_MAX_BODY_BYTES). Send a shorter message or less history.",
        )
