"""The one interface every data source implements, and the errors it may raise.

Why a single async interface: tools, analyzers, the agent and the servers never care where a
fact came from (the embedded simulator, the GPU Watchdog REST API, Prometheus, later
slurmrestd). Each method returns typed models from ``gpudoc.tools.models``; each failure is one
of the ``SourceError`` subclasses below with a message an operator (or a small LLM) can act on.
"""

from __future__ import annotations

import abc
import asyncio
from typing import Sequence

from pydantic import BaseModel, Field

from gpudoc.tools.models import (
    AlertEvent,
    AlertRule,
    ClusterStatus,
    GpuSeries,
    NodeMetrics,
    Silence,
    SlurmSnapshot,
)
from gpudoc.tools.models.text import clean_cluster_name


class SourceError(Exception):
    """Base of all data-source failures. ``str(err)`` is the actionable message."""


class SourceUnavailableError(SourceError):
    """The backend could not be reached, timed out, or answered with a server error."""


class SourceProtocolError(SourceError):
    """The backend answered, but not in the shape we expect (malformed JSON, missing fields)."""


class UnknownNodeError(SourceError, LookupError):
    """A node id that the cluster does not have. Carries the valid ids so callers can list them."""

    def __init__(self, node_id: str, valid_ids: Sequence[str]):
        self.node_id = node_id
        self.valid_ids = list(valid_ids)
        shown = ", ".join(self.valid_ids[:64])
        more = f" (and {len(self.valid_ids) - 64} more)" if len(self.valid_ids) > 64 else ""
        super().__init__(f"Unknown node '{clean_cluster_name(node_id)}'. Valid node ids: {shown}{more}.")


class NotSupportedError(SourceError):
    """The source cannot provide this kind of fact at all (e.g. the Slurm job list from Watchdog)."""


class DiagnosisScope(BaseModel):
    """What a source that screens the cluster itself (in PromQL) hands the diagnosis first.

    Why: on a thousand nodes the diagnosis must not pull every GPU's readings and history. A source
    that can ask its backend "which nodes show anything an analyzer could report?" names those
    (``focus``); only they are fetched in full, while the counts and the cluster-wide baselines some
    rules compare against cover the whole cluster.
    """

    focus: list[str] = Field(description="node ids worth a full look, in the cluster's order")
    node_ids: list[str] = Field(description="every node id of the cluster")
    gpu_count: int
    reasons: dict[str, list[str]] = Field(default_factory=dict, description="why each focus node was picked")
    link_downed_medians: dict[str, float] = Field(
        default_factory=dict, description="median link_downed_total per InfiniBand port ('mlx5_0/1') cluster-wide"
    )


class ClusterSource(abc.ABC):
    """Read-only access to one cluster's facts.

    Implementations must be safe to call concurrently from one event loop (the agent runs the
    tool calls of a round in parallel).
    """

    #: short name shown to users: "sim", "watchdog", "prometheus"
    name: str = "source"
    #: whether ``diagnosis_scope`` screens the cluster in the backend (the diagnosis then fetches
    #: only the nodes it names); sources without it are read in full
    screens_cluster: bool = False
    #: whether the source notes each signal it lacks itself (``sources.notes``), naming the field and
    #: how to enable it; the diagnosis then adds no generic "not reported" lines of its own
    reports_gaps: bool = False

    @abc.abstractmethod
    async def cluster_status(self) -> ClusterStatus: ...

    @abc.abstractmethod
    async def current_metrics(self) -> list[NodeMetrics]: ...

    @abc.abstractmethod
    async def node_metrics(self, node_id: str) -> NodeMetrics:
        """One node's readings; raises ``UnknownNodeError`` for an id the cluster lacks."""

    @abc.abstractmethod
    async def gpu_history(
        self, node_id: str | None = None, duration_minutes: int = 60
    ) -> list[GpuSeries]:
        """Per-GPU series over the last ``duration_minutes``; all nodes when ``node_id`` is None."""

    @abc.abstractmethod
    async def alert_rules(self) -> list[AlertRule]: ...

    @abc.abstractmethod
    async def alert_history(self, limit: int = 50) -> list[AlertEvent]:
        """Newest first, at most ``limit`` events, active and resolved."""

    @abc.abstractmethod
    async def slurm(self) -> SlurmSnapshot | None:
        """The scheduler's view, or ``None`` when the cluster has no Slurm."""

    async def diagnosis_scope(self, history_minutes: int, node: str | None = None) -> DiagnosisScope | None:
        """The nodes a diagnosis must read in full (only ``node`` when given), or ``None`` when this
        source cannot screen and the whole cluster must be read."""
        return None

    async def nodes_metrics(self, node_ids: Sequence[str]) -> list[NodeMetrics]:
        """Several nodes' readings; sources that can fetch them in one request override this."""
        return list(await asyncio.gather(*(self.node_metrics(node_id) for node_id in node_ids)))

    async def nodes_history(self, node_ids: Sequence[str], duration_minutes: int = 60) -> list[GpuSeries]:
        """Several nodes' GPU history; sources that can fetch it in one request override this."""
        parts = await asyncio.gather(*(self.gpu_history(node_id, duration_minutes) for node_id in node_ids))
        return [series for part in parts for series in part]

    async def silences(self) -> list[Silence] | None:
        """Alertmanager silences, or ``None`` when the source has no Alertmanager."""
        return None

    async def node_ids(self) -> list[str]:
        """All node ids, in the cluster's order."""
        return [node.node_id for node in await self.current_metrics()]

    async def resolve_node(self, node_id: str) -> str:
        """Normalise a user- or model-typed node id (``"node 3"``, ``"Node-3"``, ``"3"``) to a real one.

        Raises ``UnknownNodeError`` listing the valid ids when nothing matches.
        """
        valid = await self.node_ids()
        return normalise_node_id(node_id, valid)

    async def aclose(self) -> None:
        """Release connections. Safe to call more than once."""


def normalise_node_id(raw: str, valid: Sequence[str]) -> str:
    """Map loose spellings of a node id to one of ``valid`` or raise ``UnknownNodeError``.

    Small models write "node3", "Node-3", "node_3" or just "3"; operators type hostnames.
    """
    candidate = (raw or "").strip()
    if candidate in valid:
        return candidate
    lowered = {v.lower(): v for v in valid}
    key = candidate.lower().replace("_", "-").replace(" ", "-")
    if key in lowered:
        return lowered[key]
    digits = "".join(ch for ch in key if ch.isdigit())
    if digits and key.rstrip("0123456789").rstrip("-") in ("", "node", "gpu-node", "n"):
        for v in valid:
            if "".join(ch for ch in v if ch.isdigit()) == str(int(digits)) and v.lower().startswith(
                "node"
            ):
                return v
    raise UnknownNodeError(raw, valid)
