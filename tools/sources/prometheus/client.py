"""The HTTP side of the Prometheus source: the query API, Alertmanager, auth, errors and a cache.

Why a snapshot cache: one answer of the agent calls several tools, and each tool (and the
diagnosis) asks Prometheus for overlapping facts. Within ``cache_ttl_s`` every query is evaluated
at the same instant (``time=`` pinned to the snapshot) and an identical query is sent once, even
when two tools ask at the same moment; so a turn sees one consistent cluster and never fetches a
series twice. After the TTL the next query starts a new snapshot.

Anything that speaks Prometheus's HTTP API works: Prometheus, Thanos Query, Mimir (its Prometheus
path as the base URL), VictoriaMetrics. Queries are POSTed (long PromQL stays out of URLs).
Failures become one ``SourceError`` naming the URL and what to check.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from gpudoc.tools.sources.base import SourceError, SourceProtocolError, SourceUnavailableError
from gpudoc.tools.sources.http_errors import (
    RETRYABLE_STATUSES,
    UNTRUSTED_CERTIFICATE,
    checked_http_url,
    one_line,
    transport_reason,
)


@dataclass
class QueryStats:
    """What the source asked for: the benchmark's and the operator's view of its cost."""

    requests: int = 0
    bytes: int = 0
    cache_hits: int = 0
    by_path: dict[str, int] = field(default_factory=dict)
    #: (path, the query's first 60 characters, bytes answered, seconds taken) of each request, in order
    log: list[tuple[str, str, int, float]] = field(default_factory=list)

    def reset(self) -> None:
        self.requests, self.bytes, self.cache_hits = 0, 0, 0
        self.by_path.clear()
        self.log.clear()


class PrometheusClient:
    """Prometheus (and optionally Alertmanager) over HTTP, with auth, TLS switch and snapshot cache."""

    def __init__(
        self,
        url: str,
        *,
        alertmanager_url: str | None = None,
        bearer_token: str | None = None,
        username: str | None = None,
        password: str | None = None,
        verify_tls: bool = True,
        timeout_s: float = 15.0,
        retries: int = 1,
        cache_ttl_s: float = 10.0,
        snapshot_max_age_s: float = 120.0,
        max_concurrency: int = 8,
        transport: httpx.AsyncBaseTransport | None = None,
    ):
        self.url = checked_url(url, "PROMETHEUS_URL")
        self.alertmanager_url = checked_url(alertmanager_url, "ALERTMANAGER_URL") if alertmanager_url else None
        if bearer_token and (username or password):
            raise SourceError("Give either a bearer token or a username and password for Prometheus, not both.")
        if (username is None) != (password is None):
            raise SourceError("Prometheus basic auth needs both PROMETHEUS_USERNAME and PROMETHEUS_PASSWORD.")
        self._headers = {"Authorization": f"Bearer {bearer_token}"} if bearer_token else {}
        self._auth = httpx.BasicAuth(username, password) if username is not None and password is not None else None
        self.verify_tls, self.timeout_s, self.retries = verify_tls, timeout_s, max(0, retries)
        self.cache_ttl_s, self.snapshot_max_age_s = cache_ttl_s, snapshot_max_age_s
        self.stats = QueryStats()
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._limit = max(1, max_concurrency)
        self._semaphore: asyncio.Semaphore | None = None
        self._snapshot_at: float | None = None
        self._last_used = 0.0
        self._cache: dict[tuple[str, str], asyncio.Future[Any]] = {}

    # ---- the snapshot ----------------------------------------------------------------------------

    def now(self) -> float:
        """The instant every query of the current snapshot is evaluated at (unix seconds).

        A snapshot lasts while it is in use: it ends ``cache_ttl_s`` after its last query, or
        ``snapshot_max_age_s`` after it began, so a slow diagnosis never straddles two snapshots
        and a busy server still sees fresh data.
        """
        clock = time.time()
        if (self._snapshot_at is None or clock - self._last_used >= self.cache_ttl_s
                or clock - self._snapshot_at >= self.snapshot_max_age_s):
            self._snapshot_at = clock
            self._cache.clear()
        self._last_used = clock
        return self._snapshot_at

    def new_snapshot(self) -> None:
        """Forget the cache: the next query sees the cluster as it is now."""
        self._snapshot_at = None

    # ---- the query API -----------------------------------------------------------------------------

    async def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query at the snapshot's time: ``[{"metric": {...}, "value": [ts, "v"]}, ...]``."""
        data = await self._api("/api/v1/query", {"query": expr, "time": f"{self.now():.3f}"})
        if data.get("resultType") == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        return _result(data, "vector", expr)

    async def query_range(self, expr: str, seconds: float, step_s: float) -> list[dict[str, Any]]:
        """A range query ending at the snapshot's time: ``[{"metric": {...}, "values": [[ts, "v"], ...]}]``."""
        end = self.now()
        params = {"query": expr, "start": f"{end - seconds:.3f}", "end": f"{end:.3f}", "step": f"{step_s:g}"}
        return _result(await self._api("/api/v1/query_range", params), "matrix", expr)

    async def label_values(self, label: str, match: str | None, seconds: float) -> list[str]:
        """Values of ``label`` on series of the last ``seconds`` (only those matching ``match``): read
        from the index, without touching samples, so cheap on any number of series."""
        end = self.now()
        params = {"start": f"{end - seconds:.3f}", "end": f"{end:.3f}", **({"match[]": match} if match else {})}
        values = await self._api(f"/api/v1/label/{label}/values", params, method="GET")
        if not isinstance(values, list):
            raise SourceProtocolError(f"Prometheus label values of {label!r} are not a list")
        return [str(v) for v in values]

    async def api_get(self, path: str, params: dict[str, str] | None = None) -> Any:
        """``data`` of a GET on Prometheus's API (``/api/v1/rules``, ``/api/v1/alerts``)."""
        return await self._api(path, params or {}, method="GET")

    async def alertmanager(self, path: str) -> Any:
        """A GET on Alertmanager's v2 API (``/api/v2/silences``); its bodies have no envelope."""
        if self.alertmanager_url is None:
            raise SourceError("no Alertmanager is configured (set ALERTMANAGER_URL)")
        return await self._cached("GET", self.alertmanager_url + path, {}, envelope=False)

    # ---- HTTP ----------------------------------------------------------------------------------------

    async def _api(self, path: str, params: dict[str, str], method: str = "POST") -> Any:
        return await self._cached(method, self.url + path, params, envelope=True)

    async def _cached(self, method: str, url: str, params: dict[str, str], *, envelope: bool) -> Any:
        self.now()  # expire an old snapshot before looking up
        key = (url, json.dumps(params, sort_keys=True))
        pending = self._cache.get(key)
        if pending is not None:
            self.stats.cache_hits += 1
            return await asyncio.shield(pending)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._cache[key] = future
        try:
            result = await self._send(method, url, params, envelope=envelope)
            self._last_used = time.time()
        except BaseException as exc:
            self._cache.pop(key, None)
            if isinstance(exc, asyncio.CancelledError):
                future.cancel()
            else:
                future.set_exception(exc)
                future.exception()  # retrieved here, so an unshared failure logs no warning
            raise
        future.set_result(result)
        return result

    def _http(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self._client = httpx.AsyncClient(
                timeout=self.timeout_s, verify=self.verify_tls, headers=self._headers, auth=self._auth,
                transport=self._transport, follow_redirects=True,
            )
            self._loop, self._semaphore = loop, asyncio.Semaphore(self._limit)
        return self._client

    async def _send(self, method: str, url: str, params: dict[str, str], *, envelope: bool) -> Any:
        client = self._http()
        assert self._semaphore is not None
        service = "Alertmanager" if not envelope else "Prometheus"
        for attempt in range(self.retries + 1):
            try:
                async with self._semaphore:
                    started = time.perf_counter()
                    if method == "POST":
                        response = await client.post(url, data=params)
                    else:
                        response = await client.get(url, params=params)
            except httpx.TransportError as exc:
                if attempt < self.retries:
                    await asyncio.sleep(0.2 * 2**attempt)
                    continue
                raise SourceUnavailableError(
                    f"{service} at {_base(url)} is unreachable ({_reason(exc)}). Check "
                    f"{'ALERTMANAGER_URL' if not envelope else 'PROMETHEUS_URL'} and that the server runs."
                ) from None
            self.stats.requests += 1
            self.stats.bytes += len(response.content)
            path = httpx.URL(url).path
            self.stats.by_path[path] = self.stats.by_path.get(path, 0) + 1
            self.stats.log.append((path, _clip(params.get("query"), 60), len(response.content),
                                   time.perf_counter() - started))
            if response.status_code in RETRYABLE_STATUSES and attempt < self.retries:
                await asyncio.sleep(0.2 * 2**attempt)
                continue
            return _decode(response, service, params.get("query"), envelope=envelope)
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def aclose(self) -> None:
        if self._client is not None and self._loop is asyncio.get_running_loop():
            await self._client.aclose()
        self._client, self._loop = None, None


def checked_url(url: str | None, variable: str) -> str:
    text = checked_http_url(url)
    if text is None:
        raise SourceError(
            f"{variable} must be an http:// or https:// URL, got {url!r} (for example http://prometheus:9090)."
        )
    return text


def _base(url: str) -> str:
    parsed = httpx.URL(url)
    return f"{parsed.scheme}://{parsed.netloc.decode()}"


def _reason(exc: httpx.TransportError) -> str:
    reason = transport_reason(exc)
    if reason == UNTRUSTED_CERTIFICATE:
        return f"{reason}; set PROMETHEUS_TLS_VERIFY=false for a self-signed one"
    return reason


def _decode(response: httpx.Response, service: str, query: str | None, *, envelope: bool) -> Any:
    where = f"{service} at {_base(str(response.request.url))}"
    if response.status_code in (401, 403):
        raise SourceUnavailableError(
            f"{where} refused the credentials ({response.status_code}). Set PROMETHEUS_BEARER_TOKEN, or "
            "PROMETHEUS_USERNAME and PROMETHEUS_PASSWORD, to an account that may read."
        )
    try:
        body = response.json()
    except ValueError:
        raise SourceProtocolError(
            f"{where} answered {response.status_code} with something that is not JSON; is the URL the "
            f"{service} API's base (no /graph, no Grafana URL)?"
        ) from None
    error = body.get("error") if isinstance(body, dict) else None
    if response.status_code in (400, 422) or (envelope and isinstance(body, dict) and body.get("status") == "error"):
        detail = one_line(str(error or body), 300)
        shown = f" for query {_clip(query)}" if query else ""
        raise SourceProtocolError(f"{where} rejected the request{shown}: {detail}")
    if response.status_code >= 500:
        raise SourceUnavailableError(f"{where} failed with {response.status_code}: {one_line(str(error), 300)}")
    if response.status_code == 404:
        raise SourceProtocolError(
            f"{where} has no {response.request.url.path} (404); is the URL the {service} API's base? "
            + ("(Prometheus, Thanos Query, VictoriaMetrics: http://HOST:PORT; Mimir: its Prometheus path, e.g. "
               "http://mimir/prometheus)" if service == "Prometheus" else "(http://HOST:9093, no path)")
        )
    if response.status_code >= 400:
        raise SourceProtocolError(f"{where} answered {response.status_code}: {one_line(str(error or body), 300)}")
    if not envelope:
        return body
    if not isinstance(body, dict) or "data" not in body:
        raise SourceProtocolError(f"{where} answered without the API's 'data' envelope; is the URL right?")
    return body["data"]


def _result(data: Any, kind: str, expr: str) -> list[dict[str, Any]]:
    if not isinstance(data, dict) or data.get("resultType") != kind or not isinstance(data.get("result"), list):
        raise SourceProtocolError(f"Prometheus answered {_clip(expr)} with a {data.get('resultType')!r} result, "
                                  f"expected a {kind}")
    return data["result"]


def _clip(query: str | None, limit: int = 80) -> str:
    return one_line(query or "", limit)
