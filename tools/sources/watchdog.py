"""``watchdog``: cluster facts from a GPU Watchdog backend's REST API.

Why this adapter exists: sites that already run GPU Watchdog (its Express backend, whose
collector scrapes one exporter per node and a Slurm exporter) can point gpudoc at it with
``BACKEND_BASE_URL`` and nothing else.

What it does beyond HTTP: retries connection failures and 5xx answers a few times with a short
backoff (never 4xx) and turns every failure into one ``SourceError`` that names the URL and what
to check. It reads the real backend's shapes (``watchdog_shapes``) leniently: a field that is
missing or unexpected becomes ``None`` with a note (``sources.notes``) that reaches the tool
output, a record that cannot be read is left out with a note, and only a body that is not the
API's JSON at all is an error. Facts the API does not carry (XIDs, ECC, remapped rows,
clock-event reasons, PCIe, NVLink, UUIDs, the Slurm job list) stay ``None``.

One request serves most questions: ``GET /api/metrics/current`` carries the collector's whole
state (reporting nodes, the full Slurm object, its time), so the cluster summary, the node list
and Slurm's view all come from it, consistent with each other. The backend's own
``/api/cluster/status`` is not used: its ``healthy`` means "some node reports" and its
``nodeCount`` leaves out the nodes that went silent, which this source counts instead (see
``watchdog_mapping``). Alert events are asked for in the largest batch the backend gives
(``ALERT_EVENTS_CAP``), because it returns the oldest first; they are ordered newest first here.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import ValidationError

from gpudoc.tools.models import (
    AlertEvent,
    AlertRule,
    ClusterStatus,
    GpuSeries,
    NodeMetrics,
    SlurmSnapshot,
)
from gpudoc.tools.sources import watchdog_mapping as mapping
from gpudoc.tools.sources.base import (
    ClusterSource,
    SourceError,
    SourceProtocolError,
    SourceUnavailableError,
    normalise_node_id,
)
from gpudoc.tools.sources.http_errors import (
    RETRYABLE_STATUSES,
    checked_http_url,
    one_line,
    parsed_json,
    transport_reason,
)
from gpudoc.tools.sources.notes import ALERT_EVENTS, collecting_notes, note, note_incomplete
from gpudoc.tools.sources.watchdog_shapes import (
    AlertEventWire,
    AlertRuleWire,
    CurrentMetricsWire,
    HistoryWire,
    NodeWire,
    SlurmWire,
)
from gpudoc.tools.sources.wire import Records, describe_errors, read_wire, wire_issues

#: The most events ``GET /api/alerts/events/history`` returns; it returns the oldest first.
ALERT_EVENTS_CAP = 1000

#: How long one reading of ``/api/metrics/current`` serves further calls (the backend's collector
#: refreshes every 10 s by default).
STATE_REUSE_S = 2.0


@dataclass(frozen=True)
class _SharedState:
    loop: asyncio.AbstractEventLoop
    started: float
    task: asyncio.Task[tuple["CollectorState", list[str]]]


@dataclass(frozen=True)
class CollectorState:
    """One reading of the backend's collector state: nodes (silent ones included), Slurm, when."""

    nodes: list[NodeMetrics]
    slurm: SlurmWire | None
    last_updated: datetime


class WatchdogSource(ClusterSource):
    """Read-only client of one GPU Watchdog backend."""

    name = "watchdog"

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = 10.0,
        retries: int = 2,
        backoff_s: float = 0.25,
        transport: httpx.AsyncBaseTransport | None = None,
        state_reuse_s: float = STATE_REUSE_S,
    ):
        self.base_url = _checked_base_url(base_url)
        self.timeout_s = timeout_s
        self.retries = max(0, retries)
        self.backoff_s = backoff_s
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None
        self.state_reuse_s = state_reuse_s
        self._shared_state: _SharedState | None = None

    # ---- ClusterSource ------------------------------------------------------------------------

    async def cluster_status(self) -> ClusterStatus:
        state = await self._state()
        return mapping.cluster_status(state.nodes, state.slurm, state.last_updated)

    async def current_metrics(self) -> list[NodeMetrics]:
        return (await self._state()).nodes

    async def node_metrics(self, node_id: str) -> NodeMetrics:
        path = f"/api/metrics/gpu/{quote(node_id, safe='')}"
        wire = await self._get_json(path, NodeWire, none_on_404=True)
        if wire is not None:
            return mapping.node_metrics(wire, datetime.now(UTC))
        # Not a reporting node under that exact id: a loose spelling, a silent node, or a typo.
        nodes = await self.current_metrics()
        resolved = normalise_node_id(node_id, [node.node_id for node in nodes])
        return next(node for node in nodes if node.node_id == resolved)

    async def gpu_history(
        self, node_id: str | None = None, duration_minutes: int = 60
    ) -> list[GpuSeries]:
        params: dict[str, str | int] = {"duration": duration_minutes}
        if node_id is not None:
            params["nodeId"] = node_id
        wire = await self._get_json("/api/metrics/history/gpu", HistoryWire, params=params)
        if node_id is not None and not wire.data:
            # The backend answers an unknown node with no data, not an error.
            resolved = await self.resolve_node(node_id)  # raises UnknownNodeError with valid ids
            if resolved != node_id:
                return await self.gpu_history(resolved, duration_minutes)
        return [series.to_model() for series in wire.data]

    async def alert_rules(self) -> list[AlertRule]:
        rules = await self._get_json("/api/alerts", Records[AlertRuleWire])
        return [rule.to_model() for rule in rules]

    async def alert_history(self, limit: int = 50) -> list[AlertEvent]:
        events = await self._get_json(
            "/api/alerts/events/history", Records[AlertEventWire], params={"limit": ALERT_EVENTS_CAP}
        )
        if len(events) + len(events.dropped) >= ALERT_EVENTS_CAP:
            note_incomplete(
                ALERT_EVENTS, f"the backend returned only its oldest {ALERT_EVENTS_CAP} events",
                f"alert history: the backend returns at most {ALERT_EVENTS_CAP} events, oldest first, "
                "and returned that many: newer events, including ones firing now, may be missing",
            )
        mapped = sorted((event.to_model() for event in events), key=_newest_first, reverse=True)
        return mapped[: max(0, limit)]

    async def slurm(self) -> SlurmSnapshot | None:
        state = await self._state()
        if state.slurm is None:
            return None
        return mapping.slurm_snapshot(state.slurm, state.last_updated)

    async def aclose(self) -> None:
        self._shared_state = None
        client, self._client, self._client_loop = self._client, None, None
        if client is not None:
            await client.aclose()

    async def _state(self) -> CollectorState:
        """The collector state, fetched once for all the calls of the next ``state_reuse_s``.

        Tools of one agent round run in parallel, and one tool often needs the state twice
        (resolve a node id, then read Slurm): they share one request. The backend refreshes its
        state every ``COLLECT_INTERVAL`` (10 s by default), so reuse within that costs nothing
        in freshness. Each caller gets the notes the reading made. ``state_reuse_s=0`` turns
        the sharing off.
        """
        if self.state_reuse_s <= 0:  # sharing off
            state, notes = await self._fetch_state()
            for line in notes:
                note(line)
            return state
        loop = asyncio.get_running_loop()
        shared = self._shared_state
        if shared is None or shared.loop is not loop or (shared.task.done() and (
                shared.task.cancelled() or shared.task.exception() is not None
                or loop.time() - shared.started > self.state_reuse_s)):
            shared = self._shared_state = _SharedState(loop, loop.time(), loop.create_task(self._fetch_state()))
        state, notes = await asyncio.shield(shared.task)
        for line in notes:
            note(line)
        return state

    async def _fetch_state(self) -> tuple[CollectorState, list[str]]:
        with collecting_notes() as notes:
            current = await self._get_json("/api/metrics/current", CurrentMetricsWire)
            as_of = current.last_updated or datetime.now(UTC)
            nodes = [mapping.node_metrics(node, as_of) for node in current.nodes or []]
            state = CollectorState(mapping.with_silent_nodes(nodes, current.slurm, as_of), current.slurm, as_of)
        return state, notes.lines

    # ---- HTTP ---------------------------------------------------------------------------------

    def _http(self) -> httpx.AsyncClient:
        """One pooled client per event loop (a CLI may run several ``asyncio.run`` in turn)."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop:
            self._client = httpx.AsyncClient(
                base_url=self.base_url,
                timeout=httpx.Timeout(self.timeout_s),
                transport=self._transport,
                headers={"Accept": "application/json"},
            )
            self._client_loop = loop
        return self._client

    async def _get_json(
        self,
        path: str,
        shape: Any,
        *,
        params: dict[str, str | int] | None = None,
        none_on_404: bool = False,
    ) -> Any:
        """``GET path`` read as ``shape``; what had to give is passed on as notes.

        ``none_on_404``: a 404 (an id the backend does not have) is ``None``, not an error.
        """
        response = await self._get(path, params)
        endpoint = f"GET {path}"
        if response.status_code == 404 and none_on_404:
            return None
        if response.status_code >= 400:
            raise SourceProtocolError(
                f"The GPU Watchdog backend at {self.base_url} rejected {endpoint} with HTTP "
                f"{response.status_code}{_error_detail(response)}."
            )
        payload = parsed_json(response, server=f"The GPU Watchdog backend at {self.base_url}", what=endpoint,
                              hint=f"Is {self.base_url} really a GPU Watchdog API?")
        try:
            wire = read_wire(shape, payload)
        except ValidationError as exc:
            raise SourceProtocolError(
                f"The GPU Watchdog backend at {self.base_url} returned an unexpected shape for "
                f"{endpoint}: {describe_errors(exc, shown=3)}. Is the backend a compatible version?"
            ) from None
        mapping.note_issues(endpoint, wire_issues(wire))
        return wire

    async def _get(self, path: str, params: dict[str, str | int] | None) -> httpx.Response:
        """GET with retries on connection trouble and 5xx; 4xx are returned for the caller."""
        client = self._http()
        attempts = self.retries + 1
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                response = await client.get(path, params=params)
            except httpx.TimeoutException:
                if last:
                    raise SourceUnavailableError(
                        f"The GPU Watchdog backend at {self.base_url} did not answer GET {path} "
                        f"within {self.timeout_s:g}s ({attempts} attempts). Is it overloaded or "
                        "hung? Check it, or raise BACKEND_TIMEOUT_S."
                    ) from None
            except httpx.TransportError as exc:
                if last:
                    raise SourceUnavailableError(
                        f"Could not reach the GPU Watchdog backend at {self.base_url}: "
                        f"{transport_reason(exc)}. Is it running? Set BACKEND_BASE_URL or "
                        "--backend-url."
                    ) from None
            else:
                if response.status_code not in RETRYABLE_STATUSES:
                    return response
                if last:
                    raise SourceUnavailableError(
                        f"The GPU Watchdog backend at {self.base_url} answered GET {path} with "
                        f"HTTP {response.status_code}{_error_detail(response)} ({attempts} "
                        "attempts). Check the backend's logs and its Prometheus."
                    )
            await asyncio.sleep(self.backoff_s * 2**attempt)
        raise AssertionError("unreachable: the last attempt returns or raises")


def _newest_first(event: AlertEvent) -> tuple[datetime, int]:
    """Firing time, then the backend's id (its insertion order) for events of the same scrape."""
    return event.fired_at, int(event.id) if event.id.isdigit() else -1


def _checked_base_url(base_url: str) -> str:
    url = checked_http_url(base_url)
    if url is None:
        raise SourceError(
            f"The GPU Watchdog backend URL must start with http:// or https://, got {base_url!r} "
            "(for example http://localhost:3001). Set BACKEND_BASE_URL or --backend-url."
        )
    return url


# ---- error messages ---------------------------------------------------------------------------


#: longest part of a backend's ``{"error": ...}`` text quoted in our error messages
ERROR_DETAIL_MAX_CHARS = 200


def _error_detail(response: httpx.Response) -> str:
    """``: <error>`` from a ``{"error": ...}`` body, if the backend sent one."""
    try:
        body = response.json()
    except ValueError:
        return ""
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return f": {one_line(body['error'], ERROR_DETAIL_MAX_CHARS)}"
    return ""
