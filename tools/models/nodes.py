"""Node facts: a node's current readings and its InfiniBand ports."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from gpudoc.tools.models.base import Model
from gpudoc.tools.models.gpu import GpuMetrics
from gpudoc.tools.models.text import ClusterName


class NetworkPort(Model):
    """An InfiniBand port of a node (node_exporter's infiniband collector)."""

    device: ClusterName
    port: int = 1
    state_id: int = Field(description="4 = ACTIVE; anything else is not passing traffic")
    physical_state_id: int | None = Field(None, description="5 = LinkUp")
    link_downed_total: int = 0
    link_downed_last_hour: int | None = Field(None, description="times the link went down in the last hour")
    link_error_recovery_total: int | None = None
    rate_gbps: float | None = None


class NodeMetrics(Model):
    """All current readings of one node; ``reachable=False`` when its exporters went silent."""

    node_id: ClusterName
    hostname: ClusterName
    timestamp: datetime
    reachable: bool = True
    gpus: list[GpuMetrics] = Field(default_factory=list)
    network: list[NetworkPort] | None = None
    driver_version: ClusterName | None = None
