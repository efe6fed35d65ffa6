"""Render the scheduler's view as prometheus-slurm-exporter (vpenso) would expose it.

Why: GPU Watchdog's collector reads Slurm from this exporter's text (``SLURM_ENDPOINT``), so
``gpudoc sim`` serves it at ``/metrics/slurm/metrics`` for a real GPU Watchdog backend to
scrape, and the simulator's own GPU Watchdog API derives its Slurm object from the same values
(``slurm_export``), so both paths show the same cluster.

The names and meanings are the exporter's: ``slurm_cpus_{alloc,idle,other,total}`` summed over
nodes, where a down or drained node's CPUs are neither allocated nor idle but "other" (sinfo's
CPUsState A/I/O/T); ``slurm_nodes_<class>`` counting each node once in its class (a mixed node
is ``mix``, not ``alloc``); ``slurm_queue_<state>`` counting jobs; and per node
``slurm_node_{cpu_alloc,cpu_idle,cpu_other,cpu_total,mem_alloc,mem_total,gpu_total}`` with
labels ``node`` and ``status``. The exporter takes ``status`` from sinfo's long state names
(``allocated``, ``drained``); this one writes the short names GPU Watchdog's backend and
frontend type (``idle|alloc|mix|down|drain``), as in the responses recorded from the backend.
Values are whole numbers, which the backend's parser requires.
"""

from __future__ import annotations

from pydantic import BaseModel

from gpudoc.tools.models import SlurmNode, SlurmSnapshot
from gpudoc.tools.sim.exposition import family

#: the exporter's node classes, in its order
NODE_CLASSES = ("alloc", "comp", "down", "drain", "err", "fail", "idle", "maint", "mix", "resv")
#: the exporter's queue states (``slurm_queue_<state>``) that the snapshot counts
QUEUE_STATES = ("pending", "running", "completed", "failed", "cancelled")


def slurm_status(node: SlurmNode) -> str:
    """GPU Watchdog's coarse status of a Slurm node: down beats drain beats the base state."""
    if node.is_down or node.base_state not in ("IDLE", "ALLOCATED", "MIXED"):
        return "down"
    if node.is_drained:
        return "drain"
    if node.base_state == "ALLOCATED":
        return "alloc"
    if node.base_state == "MIXED":
        return "mix"
    return "idle"


class SlurmNodeExport(BaseModel):
    node: str
    status: str
    cpu_alloc: int
    cpu_idle: int
    cpu_other: int
    cpu_total: int
    mem_alloc: int
    mem_total: int
    gpu_total: int


class SlurmExport(BaseModel):
    """Every number the exporter writes, once."""

    nodes: list[SlurmNodeExport]
    cpus: dict[str, int]
    node_classes: dict[str, int]
    queue: dict[str, int]


def slurm_export(snapshot: SlurmSnapshot) -> SlurmExport:
    nodes = []
    for node in snapshot.nodes:
        status = slurm_status(node)
        usable = status not in ("down", "drain")
        idle = max(node.cpus_total - node.cpus_alloc, 0) if usable else 0
        nodes.append(SlurmNodeExport(
            node=node.name, status=status, cpu_alloc=node.cpus_alloc, cpu_idle=idle,
            cpu_other=max(node.cpus_total - node.cpus_alloc - idle, 0), cpu_total=node.cpus_total,
            mem_alloc=node.memory_alloc_mb, mem_total=node.memory_total_mb, gpu_total=node.gpus_total,
        ))
    cpus = {
        kind: sum(getattr(n, f"cpu_{kind}") for n in nodes) for kind in ("alloc", "idle", "other", "total")
    }
    classes = {kind: sum(n.status == kind for n in nodes) for kind in NODE_CLASSES}
    queue = {state: getattr(snapshot.queue, state) for state in QUEUE_STATES}
    return SlurmExport(nodes=nodes, cpus=cpus, node_classes=classes, queue=queue)


_CPU_HELP = {"alloc": "Allocated CPUs", "idle": "Idle CPUs", "other": "Mix CPUs", "total": "Total CPUs"}
_NODE_HELP = {
    "cpu_alloc": "Allocated CPUs per node", "cpu_idle": "Idle CPUs per node", "cpu_other": "Other CPUs per node",
    "cpu_total": "Total CPUs per node", "mem_alloc": "Allocated memory per node",
    "mem_total": "Total memory per node", "gpu_total": "Total GPUs per node",
}


def render_slurm_metrics(snapshot: SlurmSnapshot) -> str:
    """The Prometheus text exposition (version 0.0.4) of the scheduler's view."""
    export = slurm_export(snapshot)
    lines: list[str] = []
    for kind, value in export.cpus.items():
        lines.extend(family(f"slurm_cpus_{kind}", "gauge", _CPU_HELP[kind], [({}, value)]))
    for kind, value in export.node_classes.items():
        lines.extend(family(f"slurm_nodes_{kind}", "gauge", f"{kind.capitalize()} nodes", [({}, value)]))
    for state, value in export.queue.items():
        lines.extend(family(f"slurm_queue_{state}", "gauge", f"{state.capitalize()} jobs in the cluster",
                                       [({}, value)]))
    for field, help_text in _NODE_HELP.items():
        samples = [({"node": n.node, "status": n.status}, getattr(n, field)) for n in export.nodes]
        lines.extend(family(f"slurm_node_{field}", "gauge", help_text, samples))
    return "".join(line + "\n" for line in lines)
