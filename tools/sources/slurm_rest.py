"""The scheduler's view from slurmrestd (Slurm's REST API), any OpenAPI version v0.0.38-v0.0.44.

Why slurmrestd first: it is how a service reads Slurm without running on a login node, it takes
a JWT instead of munge, and one request per list covers the whole cluster.

What it does beyond HTTP:
- picks the newest OpenAPI version the server offers, by pinging every version gpudoc reads at
  once (one round trip) and keeping the answer; a server upgraded underneath (404 on the kept
  version) is asked again once;
- authenticates with ``X-SLURM-USER-NAME`` / ``X-SLURM-USER-TOKEN``; the token comes from
  ``SLURM_JWT`` or a file (re-read on every fetch, so a rotated token is picked up), the user
  from ``SLURM_USER`` or else the token's own ``sun`` claim;
- retries connection failures and 5xx a few times with a short backoff, never 4xx;
- turns every failure into one ``SourceError`` naming the URL and what to set or check.
"""

from __future__ import annotations

import asyncio
import base64
import getpass
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from gpudoc.tools.models import SlurmSnapshot
from gpudoc.tools.sources.base import SourceError, SourceProtocolError, SourceUnavailableError
from gpudoc.tools.sources.http_errors import (
    RETRYABLE_STATUSES,
    checked_http_url,
    one_line,
    parsed_json,
    transport_reason,
)
from gpudoc.tools.sources.slurm_client import SlurmClient
from gpudoc.tools.sources.slurm_snapshot import Answer, Answers, build_snapshot

#: OpenAPI versions gpudoc reads, newest first (v0.0.44 = 25.11 ... v0.0.38 = 22.05)
SUPPORTED_VERSIONS = ("v0.0.44", "v0.0.43", "v0.0.42", "v0.0.41", "v0.0.40", "v0.0.39", "v0.0.38")
#: longest piece of slurmrestd's own error text quoted in a message
ERROR_TEXT_MAX_CHARS = 300
_AUTH_HINT = ("Set SLURM_JWT (a token from `scontrol token username=USER lifespan=SECONDS`) or "
              "SLURM_JWT_FILE, and SLURM_USER to the token's user")


class SlurmRestError(SourceError):
    """slurmrestd refused the request (authentication, permission, unsupported version)."""


class SlurmRestClient(SlurmClient):
    """Read-only client of one slurmrestd."""

    kind = "slurmrestd"

    def __init__(
        self,
        base_url: str,
        *,
        user: str | None = None,
        token: str | None = None,
        token_file: Path | str | None = None,
        version: str | None = None,
        timeout_s: float = 10.0,
        retries: int = 2,
        backoff_s: float = 0.25,
        transport: httpx.AsyncBaseTransport | None = None,
        max_age_s: float | None = None,
    ):
        super().__init__(**({} if max_age_s is None else {"max_age_s": max_age_s}))
        self.base_url = _checked_url(base_url)
        self.user, self.token = user or None, token or None
        self.token_file = Path(token_file).expanduser() if token_file else None
        self.pinned = _checked_version(version) if version else None
        self.version: str | None = self.pinned
        self.timeout_s, self.retries, self.backoff_s = timeout_s, max(0, retries), backoff_s
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None

    # ---- the snapshot --------------------------------------------------------------------------

    async def _fetch(self) -> SlurmSnapshot:
        headers = self._auth_headers()
        version = await self._negotiated(headers)
        try:
            answers = await self._read_all(version, headers)
        except _VersionGone:
            if self.pinned:
                raise self._pinned_missing() from None
            self.version = None  # upgraded underneath: ask once more
            version = await self._negotiated(headers)
            answers = await self._read_all(version, headers)
        return build_snapshot(answers, api=f"slurmrestd {version}", origin=f"slurmrestd at {self.base_url}",
                              now=datetime.now(UTC))

    async def _read_all(self, version: str, headers: dict[str, str]) -> Answers:
        """Every list at once: only nodes must succeed; jobs and the rest may fail with a note.

        Why jobs may fail: slurmrestd promises no job list. When slurmctld cannot load the jobs
        (``slurm_load_jobs`` failing), v0.0.39 answers with an error and no ``jobs`` key, and
        v0.0.40+ with an error next to the ``jobs`` list their schema requires, left empty; both
        mean the queue is unknown, not empty. The node view is still worth answering with.
        """
        base = f"/slurm/{version}"
        nodes, jobs, partitions, diag, ping = await asyncio.gather(
            self._answer(f"{base}/nodes", headers, required=True),
            self._answer(f"{base}/jobs", headers, required=False),
            self._answer(f"{base}/partitions", headers, required=False),
            self._answer(f"{base}/diag", headers, required=False),
            self._answer(f"{base}/ping", headers, required=False),
        )
        return Answers(nodes=nodes, jobs=jobs, partitions=partitions, diag=diag, ping=ping)

    async def _answer(self, path: str, headers: dict[str, str], *, required: bool) -> Answer:
        what = f"GET {path}"
        try:
            response = await self._get(path, headers)
            return Answer(what, payload=self._json(response, what))
        except _VersionGone:
            raise
        except SourceError as exc:
            if required:
                raise
            return Answer(what, error=str(exc))

    # ---- version ---------------------------------------------------------------------------

    async def _negotiated(self, headers: dict[str, str]) -> str:
        if self.version is not None:
            return self.version
        responses = await asyncio.gather(
            *(self._get(f"/slurm/{v}/ping", headers, version_probe=True) for v in SUPPORTED_VERSIONS),
            return_exceptions=True,
        )
        for result in responses:  # a transport failure says the same for every version
            if isinstance(result, SourceError) and not isinstance(result, _VersionGone):
                raise result
            if isinstance(result, BaseException) and not isinstance(result, _VersionGone):
                raise result
        offered = [v for v, r in zip(SUPPORTED_VERSIONS, responses) if isinstance(r, httpx.Response)]
        if not offered:
            raise SlurmRestError(
                f"slurmrestd at {self.base_url} offers none of the OpenAPI versions gpudoc reads "
                f"({SUPPORTED_VERSIONS[-1]}..{SUPPORTED_VERSIONS[0]}): every /slurm/v0.0.NN/ping "
                "answered 404. Load a supported plugin (slurmrestd -s openapi/v0.0.38 on 22.05, "
                "-s slurmctld on 23.11 and newer), or check that SLURMRESTD_URL is slurmrestd."
            )
        self.version = offered[0]
        return self.version

    def _pinned_missing(self) -> SlurmRestError:
        return SlurmRestError(
            f"slurmrestd at {self.base_url} does not serve /slurm/{self.pinned} (HTTP 404). Unset "
            "SLURMRESTD_VERSION to use the newest version it offers, or name one it loads."
        )

    # ---- authentication --------------------------------------------------------------------

    def _auth_headers(self) -> dict[str, str]:
        token = self.token
        if self.token_file is not None:
            token = _read_token_file(self.token_file)
        headers = {"Accept": "application/json"}
        if token:
            headers["X-SLURM-USER-TOKEN"] = token
            headers["X-SLURM-USER-NAME"] = self.user or _token_user(token) or getpass.getuser()
        elif self.user:
            headers["X-SLURM-USER-NAME"] = self.user
        return headers

    # ---- HTTP ------------------------------------------------------------------------------

    def _http(self) -> httpx.AsyncClient:
        """One pooled client per event loop (a CLI may run several ``asyncio.run`` in turn)."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop:
            self._client = httpx.AsyncClient(base_url=self.base_url, timeout=httpx.Timeout(self.timeout_s),
                                             transport=self._transport)
            self._client_loop = loop
        return self._client

    async def _get(self, path: str, headers: dict[str, str], *, version_probe: bool = False) -> httpx.Response:
        """GET with retries on connection trouble and 5xx; 4xx become errors at once."""
        attempts = self.retries + 1
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                response = await self._http().get(path, headers=headers)
            except httpx.TimeoutException:
                if last:
                    raise SourceUnavailableError(
                        f"slurmrestd at {self.base_url} did not answer GET {path} within "
                        f"{self.timeout_s:g}s ({attempts} attempts). Is slurmctld overloaded? Check "
                        "`sdiag`, or raise SLURM_TIMEOUT_S."
                    ) from None
            except httpx.TransportError as exc:
                if last:
                    raise SourceUnavailableError(
                        f"Could not reach slurmrestd at {self.base_url}: {transport_reason(exc)}. "
                        "Is slurmrestd running and listening there? Set SLURMRESTD_URL."
                    ) from None
            else:
                status = response.status_code
                if status == 404 and "/slurm/v0.0." in path:
                    raise _VersionGone(path)
                if status in (401, 403):
                    raise self._refused(response, path)
                if status < 400 or version_probe:  # a probe only asks whether the version exists
                    return response
                if status < 500:
                    raise SourceProtocolError(
                        f"slurmrestd at {self.base_url} rejected GET {path} with HTTP {status}"
                        f"{_slurm_errors(response)}."
                    )
                # slurmrestd's own errors list is Slurm's answer (a bad token, slurmctld refusing):
                # asking again changes nothing. A bare 5xx is a proxy or a restart: worth a retry.
                if status not in RETRYABLE_STATUSES or _has_slurm_errors(response) or last:
                    raise SourceUnavailableError(
                        f"slurmrestd at {self.base_url} answered GET {path} with HTTP {status}"
                        f"{_slurm_errors(response)} ({attempt + 1} attempt{'s' if attempt else ''}). "
                        "If slurmctld is up (scontrol ping), this is most often an expired or invalid "
                        f"token: {_AUTH_HINT}."
                    )
            await asyncio.sleep(self.backoff_s * 2**attempt)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _refused(self, response: httpx.Response, path: str) -> SlurmRestError:
        headers = self._auth_headers()
        who = headers.get("X-SLURM-USER-NAME", "(none)")
        if response.status_code == 401:
            sent = "a token" if "X-SLURM-USER-TOKEN" in headers else "no token (SLURM_JWT is not set)"
            return SlurmRestError(
                f"slurmrestd at {self.base_url} refused the credentials (HTTP 401"
                f"{_slurm_errors(response)}; gpudoc sent {sent} for user {who}). {_AUTH_HINT}."
            )
        return SlurmRestError(
            f"slurmrestd at {self.base_url} forbids user {who} GET {path} (HTTP 403"
            f"{_slurm_errors(response)}). Use a token of a user allowed to read jobs and nodes "
            "(PrivateData in slurm.conf hides other users' jobs)."
        )

    def _json(self, response: httpx.Response, what: str) -> dict[str, Any]:
        payload = parsed_json(response, server=f"slurmrestd at {self.base_url}", what=what,
                              hint="Is SLURMRESTD_URL really slurmrestd?")
        if not isinstance(payload, dict):
            raise SourceProtocolError(f"slurmrestd at {self.base_url} returned a {type(payload).__name__} "
                                      f"for {what}, not an object.")
        return payload

    async def aclose(self) -> None:
        client, self._client, self._client_loop = self._client, None, None
        if client is not None:
            await client.aclose()


class _VersionGone(SourceError):
    """404 on a versioned path: the server does not (or no longer) serve that version."""


def _checked_url(url: str) -> str:
    clean = checked_http_url(url)
    if clean is None:
        raise SourceError(
            f"SLURMRESTD_URL must start with http:// or https://, got {url!r} "
            "(for example http://slurm-head:6820)."
        )
    return clean


def _checked_version(version: str) -> str:
    name = version.strip()
    name = name if name.startswith("v") else f"v{name}"
    if name not in SUPPORTED_VERSIONS:
        raise SourceError(f"SLURMRESTD_VERSION {version!r} is not one gpudoc reads; use one of "
                          f"{', '.join(SUPPORTED_VERSIONS)} or leave it unset to pick the newest offered.")
    return name


def _read_token_file(path: Path) -> str:
    """The token in a file: the bare token, or ``scontrol token``'s ``SLURM_JWT=...`` line."""
    try:
        text = path.read_text().strip()
    except OSError as exc:
        raise SlurmRestError(f"Cannot read the Slurm token file {path}: {exc.strerror}. "
                             "Check SLURM_JWT_FILE.") from None
    token = text.split("=", 1)[1].strip() if text.startswith("SLURM_JWT=") else text
    if not token:
        raise SlurmRestError(f"The Slurm token file {path} is empty. {_AUTH_HINT}.")
    return token


def _token_user(token: str) -> str | None:
    """The ``sun`` (Slurm user name) claim of a Slurm JWT, read without verifying it: only to
    name the user in the request header, which slurmctld checks against the signed token."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return None
    user = claims.get("sun") if isinstance(claims, dict) else None
    return user if isinstance(user, str) and user else None


def _has_slurm_errors(response: httpx.Response) -> bool:
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and bool(body.get("errors"))


def _slurm_errors(response: httpx.Response) -> str:
    """``: <description>`` from slurmrestd's ``errors`` list or its plain-text body."""
    try:
        body = response.json()
    except ValueError:
        text = response.text
    else:
        errors = body.get("errors") if isinstance(body, dict) else None
        parts = [e.get("description") or e.get("error") for e in errors or [] if isinstance(e, dict)]
        text = "; ".join(dict.fromkeys(p for p in parts if p))
    text = one_line(text, ERROR_TEXT_MAX_CHARS)
    return f": {text}" if text else ""
