"""Which nodes the cluster has, which exporter targets belong to each, and which are up.

Why from ``up`` and not from the GPU series alone: a host that went down has no GPU series left,
but Prometheus keeps scraping its configured targets and records ``up 0`` for as long as they are
configured. A node is known by its host name: dcgm-exporter's ``Hostname`` label for GPU targets,
node_exporter's ``nodename`` for node targets, else the host part of ``instance``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from gpudoc.tools.diagnosis.merge import natural_key
from gpudoc.tools.sources.prometheus.promql import PromQL, instance_regex

Query = Callable[[str], Awaitable[list[dict[str, Any]]]]


@dataclass
class NodeTargets:
    """One node's exporter targets: instance -> up (True/False), by kind."""

    gpu: dict[str, bool] = field(default_factory=dict)
    node: dict[str, bool] = field(default_factory=dict)
    gpus_seen: int = 0

    @property
    def instances(self) -> list[str]:
        return sorted({*self.gpu, *self.node})

    @property
    def reachable(self) -> bool:
        """Down only when every target of the node is down (one dead exporter is not a dead host)."""
        states = [*self.gpu.values(), *self.node.values()]
        return not states or any(states)

    @property
    def gpu_exporter_down(self) -> bool:
        return bool(self.gpu) and not any(self.gpu.values())


@dataclass
class Inventory:
    nodes: dict[str, NodeTargets]
    host_of: dict[str, str]

    @property
    def node_ids(self) -> list[str]:
        return sorted(self.nodes, key=natural_key)

    def instances_of(self, node_ids: list[str]) -> str:
        return instance_regex([i for n in node_ids if n in self.nodes for i in self.nodes[n].instances])

    def node_of(self, labels: dict[str, str]) -> str:
        """The node a series belongs to: its ``Hostname`` label, else its instance's host."""
        named = labels.get("Hostname") or labels.get("hostname")
        if named:
            return named
        instance = labels.get("instance", "")
        return self.host_of.get(instance, host_part(instance))


def build_inventory(targets: list[dict[str, Any]], hosts: list[dict[str, Any]]) -> Inventory:
    """From ``PromQL.targets()`` and ``PromQL.hosts()`` results."""
    host_of: dict[str, str] = {}
    gpus_seen: dict[str, int] = {}
    for row in hosts:
        labels = row["metric"]
        instance = labels.get("instance", "")
        name = labels.get("Hostname") or labels.get("hostname") or labels.get("nodename")
        if name and instance:
            host_of[instance] = name
        if "nodename" not in labels and name:
            gpus_seen[name] = gpus_seen.get(name, 0) + int(float(row["value"][1]))
    nodes: dict[str, NodeTargets] = {}
    for row in targets:
        labels = row["metric"]
        instance = labels.get("instance", "")
        name = host_of.get(instance, host_part(instance))
        targets_of = nodes.setdefault(name, NodeTargets())
        kind = targets_of.gpu if labels.get("gpudoc_kind") == "gpu" else targets_of.node
        kind[instance] = float(row["value"][1]) == 1.0
    for name, count in gpus_seen.items():
        nodes.setdefault(name, NodeTargets()).gpus_seen = count
    return Inventory(nodes=nodes, host_of=host_of)


async def load_inventory(query: Query, promql: PromQL, window: str) -> Inventory:
    targets, hosts = await asyncio.gather(query(promql.targets()), query(promql.hosts(window)))
    return build_inventory(targets, hosts)


def host_part(instance: str) -> str:
    """``gpu001:9400`` -> ``gpu001``; ``[fd00::1]:9400`` -> ``fd00::1``."""
    if instance.startswith("["):
        return instance[1:].split("]", 1)[0]
    return instance.rsplit(":", 1)[0] if instance.count(":") == 1 else instance
