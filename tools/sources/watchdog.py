"""``watchdog``: cluster facts from a GPU Watchdog backend's REST API.

Why this adapter exists: sites that already run GPU Watchdog (Prometheus + DCGM exporter +
Slurm behind one small REST API) can point gpudoc at it with ``BACKEND_BASE_URL`` and nothing else.

What it does beyond HTTP: retries connection failures and 5xx answers a few times with a short
backoff (never 4xx), turns every failure into one ``SourceError`` that names the URL and what to
check, validates every body against the API's exact shapes (``watchdog_shapes``) and maps them to
``gpudoc.tools.models``. Facts the API does not carry (XIDs, ECC, remapped rows, clock-event
reasons, PCIe, NVLink, UUIDs, the Slurm job list) stay ``None``; nothing is filled in.

A node that Slurm lists but the metrics endpoint does not has no live GPU series (host down,
exporter dead): it is reported as ``NodeMetrics(reachable=False, gpus=[])`` rather than dropped,
so that "is node-5 ok?" gets an answer instead of "unknown node".
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import TypeVar
from urllib.parse import quote

import httpx
from pydantic import TypeAdapter, ValidationError

from gpudoc.tools.models import (
    AlertEvent,
    AlertRule,
    ClusterStatus,
    GpuMetrics,
    GpuSeries,
    NodeMetrics,
    QueueCounts,
    SlurmNode,
    SlurmSnapshot,
    SlurmSummary,
)
from gpudoc.tools.sources.base import (
    ClusterSource,
    SourceError,
    SourceProtocolError,
    SourceUnavailableError,
    normalise_node_id,
)
from gpudoc.tools.sources.watchdog_shapes import (
    AlertEventWire,
    AlertRuleWire,
    ClusterStatusWire,
    CurrentMetricsWire,
    HistoryWire,
    NodeWire,
    SlurmNodeWire,
    SlurmSummaryWire,
    SlurmWire,
)

WireT = TypeVar("WireT")

#: HTTP statuses worth another try: the backend or a proxy in front of it is briefly unwell.
RETRYABLE_STATUSES = frozenset({500, 502, 503, 504})

#: Watchdog's coarse Slurm status to slurmrestd's state array (base state first, then flags).
SLURM_STATUS_TO_STATE: dict[str, list[str]] = {
    "idle": ["IDLE"],
    "alloc": ["ALLOCATED"],
    "mix": ["MIXED"],
    "down": ["DOWN"],
    "drain": ["IDLE", "DRAIN"],
}


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
    ):
        self.base_url = _checked_base_url(base_url)
        self.timeout_s = timeout_s
        self.retries = max(0, retries)
        self.backoff_s = backoff_s
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None

    # ---- ClusterSource ------------------------------------------------------------------------

    async def cluster_status(self) -> ClusterStatus:
        wire = await self._get_json("/api/cluster/status", ClusterStatusWire)
        return ClusterStatus(
            healthy=wire.healthy,
            node_count=wire.node_count,
            gpu_count=wire.gpu_count,
            avg_utilization_pct=wire.avg_utilization,
            avg_temperature_c=wire.avg_temperature,
            memory_used_gb=wire.memory_used_gb,
            memory_total_gb=wire.memory_total_gb,
            slurm=_slurm_summary(wire.slurm),
            last_updated=wire.last_updated,
        )

    async def current_metrics(self) -> list[NodeMetrics]:
        current, slurm = await asyncio.gather(
            self._get_json("/api/metrics/current", CurrentMetricsWire), self._slurm_nodes_hint()
        )
        nodes = [_node_metrics(node) for node in current.nodes]
        if slurm is None:
            return nodes
        return _with_silent_slurm_nodes(nodes, slurm.nodes, current.last_updated)

    async def node_metrics(self, node_id: str) -> NodeMetrics:
        path = f"/api/metrics/gpu/{quote(node_id, safe='')}"
        wire = await self._get_json_or_none(path, NodeWire)
        if wire is not None:
            return _node_metrics(wire)
        # Not a live node under that exact id: a loose spelling, a silent node, or a typo.
        nodes = await self.current_metrics()
        resolved = normalise_node_id(node_id, [node.node_id for node in nodes])
        return next(node for node in nodes if node.node_id == resolved)

    async def gpu_history(
        self, node_id: str | None = None, duration_minutes: int = 60
    ) -> list[GpuSeries]:
        params: dict[str, str | int] = {"duration": duration_minutes}
        if node_id is not None:
            params["nodeId"] = node_id
        path = "/api/metrics/history/gpu"
        if node_id is None:
            wire: HistoryWire | None = await self._get_json(path, HistoryWire, params=params)
        else:
            wire = await self._get_json_or_none(path, HistoryWire, params=params)
        if node_id is not None and (wire is None or not wire.data):
            resolved = await self.resolve_node(node_id)  # raises UnknownNodeError with valid ids
            if resolved != node_id:
                return await self.gpu_history(resolved, duration_minutes)
        if wire is None:
            return []
        return [series.to_model() for series in wire.data]

    async def alert_rules(self) -> list[AlertRule]:
        rules = await self._get_json("/api/alerts", list[AlertRuleWire])
        return [rule.to_model() for rule in rules]

    async def alert_history(self, limit: int = 50) -> list[AlertEvent]:
        events = await self._get_json(
            "/api/alerts/events/history", list[AlertEventWire], params={"limit": limit}
        )
        mapped = [event.to_model() for event in events]
        mapped.sort(key=lambda event: event.fired_at, reverse=True)
        return mapped[:limit]

    async def slurm(self) -> SlurmSnapshot | None:
        slurm, current = await asyncio.gather(
            self._slurm_wire_if_any(), self._get_json("/api/metrics/current", CurrentMetricsWire)
        )
        if slurm is None:
            return None
        gpu_counts: dict[str, int] = {}
        for node in current.nodes:
            gpu_counts[node.node_id] = gpu_counts[node.hostname] = len(node.gpus)
        return SlurmSnapshot(
            nodes=[_slurm_node(node, gpu_counts.get(node.node, 0)) for node in slurm.nodes],
            jobs=None,
            partitions=None,
            queue=QueueCounts(**slurm.queue.model_dump()),
            timestamp=datetime.now(UTC),
        )

    async def aclose(self) -> None:
        client, self._client, self._client_loop = self._client, None, None
        if client is not None:
            await client.aclose()

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

    async def _slurm_nodes_hint(self) -> SlurmWire | None:
        """Slurm's node list to name silent nodes; a failing Slurm endpoint must not hide the
        GPU metrics, so its errors mean "no hint" here (``slurm()`` still reports them)."""
        try:
            return await self._slurm_wire_if_any()
        except SourceError:
            return None

    async def _slurm_wire_if_any(self) -> SlurmWire | None:
        """The Slurm view, or ``None`` when the backend has no Slurm (404)."""
        return await self._get_json_or_none("/api/metrics/slurm", SlurmWire)

    async def _get_json_or_none(
        self, path: str, shape: type[WireT], *, params: dict[str, str | int] | None = None
    ) -> WireT | None:
        """Like ``_get_json``, but a 404 (unknown node, no Slurm) is ``None``, not an error."""
        return await self._get_json(path, shape, params=params, none_on_404=True)

    async def _get_json(
        self,
        path: str,
        shape: type[WireT],
        *,
        params: dict[str, str | int] | None = None,
        none_on_404: bool = False,
    ) -> WireT:
        response = await self._get(path, params)
        endpoint = f"GET {path}"
        if response.status_code == 404 and none_on_404:
            return None  # type: ignore[return-value]  # only via _get_json_or_none
        if response.status_code >= 400:
            raise SourceProtocolError(
                f"The GPU Watchdog backend at {self.base_url} rejected {endpoint} with HTTP "
                f"{response.status_code}{_error_detail(response)}."
            )
        try:
            payload = json.loads(response.content)
        except ValueError as exc:
            start = response.text[:80].replace("\n", " ")
            raise SourceProtocolError(
                f"The GPU Watchdog backend at {self.base_url} returned malformed JSON for "
                f"{endpoint} ({exc}; body starts {start!r}). Is {self.base_url} really a "
                "GPU Watchdog API?"
            ) from None
        try:
            return _adapter(shape).validate_python(payload)
        except ValidationError as exc:
            raise SourceProtocolError(
                f"The GPU Watchdog backend at {self.base_url} returned an unexpected shape for "
                f"{endpoint}: {_describe_validation(exc)}. Is the backend a compatible version?"
            ) from None

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
                        f"{_transport_reason(exc)}. Is it running? Set BACKEND_BASE_URL or "
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


def _checked_base_url(base_url: str) -> str:
    url = base_url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")) or len(url.split("://", 1)[1]) == 0:
        raise SourceError(
            f"The GPU Watchdog backend URL must start with http:// or https://, got {base_url!r} "
            "(for example http://localhost:3001). Set BACKEND_BASE_URL or --backend-url."
        )
    return url


# ---- mapping wire shapes to models ------------------------------------------------------------

_ADAPTERS: dict[object, TypeAdapter[object]] = {}


def _adapter(shape: type[WireT]) -> TypeAdapter[WireT]:
    if shape not in _ADAPTERS:
        _ADAPTERS[shape] = TypeAdapter(shape)
    return _ADAPTERS[shape]  # type: ignore[return-value]


def _slurm_summary(wire: SlurmSummaryWire | None) -> SlurmSummary | None:
    return None if wire is None else SlurmSummary(**wire.model_dump())


def _node_metrics(node: NodeWire) -> NodeMetrics:
    return NodeMetrics(
        node_id=node.node_id,
        hostname=node.hostname,
        timestamp=node.timestamp,
        reachable=True,
        gpus=[
            GpuMetrics(
                node_id=node.node_id,
                index=int(gpu.gpu),
                model=gpu.gpu_name,
                utilization_pct=gpu.utilization,
                memory_used_mib=gpu.memory_used_mb,
                memory_total_mib=gpu.memory_total_mb,
                temperature_c=gpu.temperature_c,
                power_w=gpu.power_usage_w,
                memory_util_pct=gpu.memory_utilization,
                sm_clock_mhz=gpu.sm_clock_mhz,
                mem_clock_mhz=gpu.mem_clock_mhz,
                last_seen=node.timestamp,
            )
            for gpu in sorted(node.gpus, key=lambda g: _gpu_sort_key(g.gpu))
        ],
    )


def _gpu_sort_key(gpu: str) -> tuple[int, str]:
    return (int(gpu), gpu) if gpu.isdigit() else (1 << 30, gpu)


def _with_silent_slurm_nodes(
    nodes: list[NodeMetrics], slurm_nodes: list[SlurmNodeWire], as_of: datetime
) -> list[NodeMetrics]:
    """Add the Slurm nodes that have no live metrics as unreachable, in Slurm's node order."""
    known = {node.node_id for node in nodes} | {node.hostname for node in nodes}
    silent = [
        NodeMetrics(node_id=s.node, hostname=s.node, timestamp=as_of, reachable=False)
        for s in slurm_nodes
        if s.node not in known
    ]
    if not silent:
        return nodes
    slurm_order = {s.node: i for i, s in enumerate(slurm_nodes)}

    def position(node: NodeMetrics) -> int:
        return slurm_order.get(node.node_id, slurm_order.get(node.hostname, len(slurm_order)))

    return sorted(nodes + silent, key=position)


def _slurm_node(node: SlurmNodeWire, gpus_total: int) -> SlurmNode:
    return SlurmNode(
        name=node.node,
        state=list(SLURM_STATUS_TO_STATE[node.status]),
        cpus_total=node.cpus_total,
        cpus_alloc=node.cpus_alloc,
        memory_total_mb=round(node.mem_total),
        memory_alloc_mb=round(node.mem_alloc),
        gpus_total=gpus_total,
    )


# ---- error messages ---------------------------------------------------------------------------


def _transport_reason(exc: httpx.TransportError) -> str:
    """The root cause in words; httpx often wraps it as "All connection attempts failed"."""
    chain: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and cause not in chain:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    texts = " ".join(str(link).lower() for link in chain)
    if any(isinstance(link, ConnectionRefusedError) for link in chain) or "refused" in texts:
        return "connection refused"
    if "name or service not known" in texts or "nodename nor servname" in texts:
        return "host name not found"
    return str(exc) or type(exc).__name__


#: longest part of a backend's ``{"error": ...}`` text quoted in our error messages
ERROR_DETAIL_MAX_CHARS = 200


def _error_detail(response: httpx.Response) -> str:
    """``: <error>`` from a ``{"error": ...}`` body, if the backend sent one."""
    try:
        body = response.json()
    except ValueError:
        return ""
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        # The backend's words, not ours: one line, bounded, so they cannot swamp the message.
        text = " ".join(body["error"].split())
        return f": {text[:ERROR_DETAIL_MAX_CHARS]}" + ("…" if len(text) > ERROR_DETAIL_MAX_CHARS else "")
    return ""


def _describe_validation(exc: ValidationError, shown: int = 3) -> str:
    problems = []
    for error in exc.errors()[:shown]:
        path = ""
        for part in error["loc"]:
            path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
        problems.append(f"field '{path or '(top level)'}': {error['msg']}")
    more = exc.error_count() - shown
    return "; ".join(problems) + (f" (and {more} more problems)" if more > 0 else "")

