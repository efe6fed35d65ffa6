"""What every fault is: the ``Fault`` base class and the records a fault adds to the signals.

A fault is an onset some minutes before "now" (times are seconds relative to the anchor) and the
signals domain.md §7 lists, developing from there. The base class does nothing; each fault
overrides only the hooks its signals need, so faults only touch their own GPU/node and several
can coexist.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from gpudoc.tools.models import AlertRule
from gpudoc.tools.sim.baseline import Columns, Frame
from gpudoc.tools.sim.noise import Noise
from gpudoc.tools.sim.plan import HOUR, MINUTE, JobPlan, PlannedJob
from gpudoc.tools.sim.scenarios import SCENARIOS, GroundTruth, ScenarioPlacement
from gpudoc.tools.sim.topology import Topology


@dataclass(frozen=True)
class XidRecord:
    t: float
    xid: int
    message: str
    job: PlannedJob | None


@dataclass(frozen=True)
class NodeCondition:
    """A Slurm flag set on a node from ``since`` on (``base`` overrides the computed base state)."""

    since: float
    flags: tuple[str, ...]
    reason: str
    base: str | None = None


def ramp(t: float, start: float, end: float) -> float:
    """0 before ``start``, 1 after ``end``, linear between."""
    if t <= start:
        return 0.0
    return 1.0 if t >= end else (t - start) / (end - start)


class Fault:
    """A scenario placed on the cluster. Subclasses override only what their fault changes."""

    onset: float = -20 * MINUTE

    def __init__(self, placement: ScenarioPlacement, topo: Topology, noise: Noise):
        self.placement, self.topo, self.noise = placement, topo, noise
        self.name = placement.name
        self.node = placement.node if placement.node is not None else -1
        self.gpu = placement.gpu if placement.gpu is not None else -1
        self.job: PlannedJob | None = None

    # --- lifecycle ------------------------------------------------------------------------
    def prepare(self, plan: JobPlan) -> None:
        """Bend the job plan (make sure a job runs where the fault needs one, fail it, ...)."""

    def truth(self) -> GroundTruth:
        spec = SCENARIOS[self.name]
        return GroundTruth(scenario=self.name, subject=self.placement.subject or "cluster",
                           severity=spec.severity, hardware=spec.hardware,
                           job_id=self.job.job_id if self.job else None)

    # --- signals ---------------------------------------------------------------------------
    def affects_gpu(self, node: int, gpu: int) -> bool:
        return node == self.node and gpu == self.gpu

    def shape_gpu(self, node: int, gpu: int, frame: Frame, cols: Columns) -> None:
        """Change the columns of an affected GPU in place."""

    def shape_node(self, node: int, frame: Frame, cols: Columns) -> None:
        """Change the node-level columns in place (only called for ``self.node``)."""

    def xids(self, node: int, gpu: int) -> list[XidRecord]:
        return []

    def stale_since(self, node: int, gpu: int) -> float | None:
        return None

    def down_since(self, node: int) -> float | None:
        return None

    def condition(self, node: int) -> NodeCondition | None:
        return None

    def alert_rules(self, created_at: datetime) -> list[AlertRule]:
        """Rules an operator (or anyone who may create rules) added for this fault's place."""
        return []

    # --- helpers ----------------------------------------------------------------------------
    def xid(self, t: float, xid: int, text: str) -> XidRecord:
        return XidRecord(t, xid, f"NVRM: Xid (PCI:{self.topo.kernel_pci(self.gpu)}): {xid}, {text}", self.job)

    def proc(self) -> str:
        pid = 20000 + (self.job.key * 7919 if self.job else 0) % 40000
        return f"pid={pid}, name=python"

    def busy_job(self, plan: JobPlan, *, min_gpus: int = 1, lead: float = 30 * MINUTE) -> PlannedJob:
        """A training job running on the faulty GPU since well before the onset."""
        return plan.ensure_job(self.node, self.gpu, self.onset - lead, block=8, kind="train",
                               min_gpus=min_gpus, start=self.onset - 3 * HOUR)

    def after(self, frame: Frame, t: float) -> range:
        return range(frame.index_from(t), len(frame.times))

    def on_job(self, cols: Columns, i: int) -> bool:
        return self.job is not None and cols["job_id"][i] == self.job.job_id
