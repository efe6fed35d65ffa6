"""What every HTTP source (GPU Watchdog, slurmrestd, Prometheus) says when a request goes wrong.

Why one module: the operator reads these words whichever backend failed, so a refused
connection, a host that cannot be reached, a URL without a scheme or a body that is not JSON must
be named the same way by every source. Each source still writes its own sentence around them
(which setting to check, what the server is); only the reading of the failure is shared here.
"""

from __future__ import annotations

import json
import os
from typing import Any

import httpx

from gpudoc.tools.sources.base import SourceProtocolError

#: HTTP statuses worth another try: the server or a proxy in front of it is briefly unwell.
RETRYABLE_STATUSES = frozenset({500, 502, 503, 504})

#: what ``transport_reason`` says of a certificate the client does not trust
UNTRUSTED_CERTIFICATE = "TLS certificate not trusted"


def checked_http_url(url: str | None) -> str | None:
    """``url`` without surrounding blanks and trailing slashes, or ``None`` when it is not an
    ``http://`` or ``https://`` URL with a host (the caller names the setting in its error)."""
    text = (url or "").strip().rstrip("/")
    if not text.startswith(("http://", "https://")) or not text.split("://", 1)[1]:
        return None
    return text


def transport_reason(exc: httpx.TransportError) -> str:
    """The root cause of a request that got no answer, in words an operator can act on.

    Why walk the chain: httpx often wraps the socket's error as "All connection attempts
    failed", which names no cause; the ``OSError`` at the bottom does ("connection refused":
    the host is up and nothing listens; "no route to host": the network or a firewall).
    """
    chain: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and cause not in chain:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    texts = " ".join(str(link).lower() for link in chain)
    if any(isinstance(link, ConnectionRefusedError) for link in chain) or "refused" in texts:
        return "connection refused"
    if "name or service not known" in texts or "nodename nor servname" in texts:
        return "host name not found"
    if "certificate" in texts:
        return UNTRUSTED_CERTIFICATE
    root = next((link for link in reversed(chain) if isinstance(link, OSError) and link.errno), None)
    if root is not None:
        return os.strerror(root.errno).lower()
    return str(exc) or type(exc).__name__


def one_line(text: str, limit: int) -> str:
    """``text`` on one line and at most ``limit`` characters (cut ones end in "…").

    Why: a server's own words (an error body, a query) go into our messages, and must not swamp
    them or break a log line.
    """
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def parsed_json(response: httpx.Response, *, server: str, what: str, hint: str) -> Any:
    """The response's JSON; a body that is not JSON is a ``SourceProtocolError`` that quotes its
    start, since an HTML error page or a wrong URL is the usual reason, and the start shows it.

    ``server`` names who answered ("slurmrestd at http://..."), ``what`` the request, ``hint``
    what to check.
    """
    try:
        return json.loads(response.content)
    except ValueError as exc:
        start = response.text[:80].replace("\n", " ")
        raise SourceProtocolError(
            f"{server} returned malformed JSON for {what} ({exc}; body starts {start!r}). {hint}"
        ) from None
