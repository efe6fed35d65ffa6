"""Request guards in front of every route: the bearer token and the request body size limit.

Why one ASGI layer rather than FastAPI dependencies: LangServe's routes are added by
``add_routes`` and read the body themselves, so a limit or a token check has to sit in front of
them; and an oversized body must be refused before anyone buffers it.
"""

from __future__ import annotations

import hmac
import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: paths under these prefixes need the token when one is configured
PROTECTED_PREFIXES = ("/agent", "/api/")
#: ...except the LangServe playground's own page and assets (its API calls are still protected)
UNPROTECTED_PREFIXES = ("/agent/playground",)
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def needs_token(path: str) -> bool:
    if any(path.startswith(prefix) for prefix in UNPROTECTED_PREFIXES):
        return False
    return path == "/agent" or any(path.startswith(prefix) for prefix in PROTECTED_PREFIXES)


def _bearer(headers: dict[bytes, bytes]) -> str | None:
    value = headers.get(b"authorization", b"").decode("latin-1").strip()
    scheme, _, credentials = value.partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        return None
    return credentials.strip()


async def _send_json(send: Send, status: int, payload: dict, extra_headers: list[tuple[bytes, bytes]] = ()) -> None:
    # ``message`` is the sentence GPU Watchdog's chat panel displays for a failed request.
    payload = {**payload, "message": f"{payload['error']}: {payload['details']}"}
    body = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                        *extra_headers],
        }
    )
    await send({"type": "http.response.body", "body": body})


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
            presented = _bearer(headers)
            if presented is None or not hmac.compare_digest(presented.encode(), self.token.encode()):
                await _send_json(
                    send, 401,
                    {"error": "Unauthorized",
                     "details": "This server requires 'Authorization: Bearer <token>' (the value of GPUDOC_API_TOKEN)."},
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
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, send: Send) -> None:
        await _send_json(
            send, 413,
            {"error": "Request body too large",
             "details": f"The limit is {self.max_body_bytes} bytes (GPUDOC_MAX_BODY_BYTES). "
                        "Send a shorter message or less history."},
        )
