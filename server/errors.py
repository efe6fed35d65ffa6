"""The JSON error body every gpudoc route and guard answers with, and writing it from ASGI code.

Why one shape: a client (GPU Watchdog's chat panel, a script, LangServe's ``RemoteRunnable``)
should read every refusal the same way: ``error`` (what failed), ``details`` (specifics) and
``message`` (one sentence for a person: what failed and what to do). LangServe's own ``/agent``
validation keeps FastAPI's ``{"detail": [...]}`` (its clients expect it); the OpenAPI document
says which route answers which (``server/api_docs.py``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, Field
from starlette.types import Send


class ErrorResponse(BaseModel):
    error: str
    details: Any = None
    message: str = Field(description="one sentence for the person: what failed and what to do")

    @classmethod
    def of(cls, error: str, details: Any = None) -> "ErrorResponse":
        if isinstance(details, list) and details:
            said = "; ".join(str(item) for item in details)
        else:
            said = str(details) if details else ""
        return cls(error=error, details=details, message=f"{error}: {said}" if said else error)


async def send_error(send: Send, status: int, error: str, details: Any = None,
                     headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
    """Answer an ASGI request with ``ErrorResponse`` JSON (for middleware, which has no response classes)."""
    body = json.dumps(ErrorResponse.of(error, details).model_dump()).encode()
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                    *headers],
    })
    await send({"type": "http.response.body", "body": body})
