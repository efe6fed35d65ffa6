"""The catalogue of injectable faults and the parser of ``NAME[@node-N[/gpu-M]]``.

Why a catalogue separate from the fault mechanics: ``gpudoc scenarios``, the CLI validation
and the evals need the names, summaries and default places without building a cluster.

Ground-truth subjects (what an analyzer should name, see ``GroundTruth``):
- GPU-level faults: ``node-N/gpu-M``;
- node-level faults (``host-down``, ``ib-flap``), ``pending-on-drained`` and ``hostile-names``
  (the node drained with a hostile reason): ``node-N``;
- ``straggler``: the one slow GPU ``node-N/gpu-M`` (its job id is in ``job_id``);
- ``idle-allocated``: the job id, e.g. ``"10342"`` (the signal is the whole job's GPUs);
- ``healthy``: ``"cluster"``.
``severity`` is None and ``hardware`` False for ``healthy`` and the negative control ``app-xid``.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel

ScenarioLevel = Literal["gpu", "node", "job", "cluster"]


class ScenarioSpec(BaseModel):
    """One injectable scenario: what it is and where it lands when no place is given."""

    name: str
    summary: str
    level: ScenarioLevel
    default_node: int | None
    default_gpu: int | None = None
    severity: Literal["critical", "warning"] | None
    hardware: bool


class ScenarioPlacement(BaseModel):
    """A parsed ``--scenario`` argument: the scenario and the node/GPU it hits."""

    name: str
    node: int | None
    gpu: int | None

    @property
    def node_id(self) -> str | None:
        return None if self.node is None else f"node-{self.node}"

    @property
    def subject(self) -> str | None:
        if self.node is None:
            return None
        return self.node_id if self.gpu is None else f"{self.node_id}/gpu-{self.gpu}"


class GroundTruth(BaseModel):
    """What an ideal diagnosis concludes about one injected scenario (for tests and evals)."""

    scenario: str
    subject: str
    severity: Literal["critical", "warning"] | None
    hardware: bool
    job_id: str | None = None


class UnknownScenarioError(ValueError):
    """A scenario name the simulator does not know; the message lists the valid names."""

    def __init__(self, name: str):
        self.name = name
        super().__init__(f"Unknown scenario '{name}'. Valid scenarios: {', '.join(SCENARIOS)}.")


GPUS_PER_NODE = 8


def _spec(name: str, summary: str, level: ScenarioLevel, node: int | None, gpu: int | None,
          severity: Literal["critical", "warning"] | None, hardware: bool) -> ScenarioSpec:
    return ScenarioSpec(name=name, summary=summary, level=level, default_node=node, default_gpu=gpu,
                        severity=severity, hardware=hardware)


SCENARIOS: dict[str, ScenarioSpec] = {
    spec.name: spec
    for spec in (
        _spec("xid79-fell-off-bus", "XID 79: a GPU fell off the bus, its series stale, job NODE_FAIL, node drained",
              "gpu", 3, 5, "critical", True),
        _spec("hbm-uncorrectable", "XID 48/95: uncorrectable HBM error, uncorrectable remapped row, remap pending",
              "gpu", 2, 1, "critical", True),
        _spec("row-remap-failure", "XID 64: row remapping failed (ROW_REMAP_FAILURE=1), node drained by health check",
              "gpu", 6, 2, "critical", True),
        _spec("ecc-correctable-storm", "XID 92/63: correctable remapped rows and single-bit ECC errors climbing",
              "gpu", 1, 6, "warning", True),
        _spec("nvlink-degraded", "XID 74: NVLink errors rising, links down, bandwidth down, job slowed",
              "gpu", 4, 3, "critical", True),
        _spec("thermal-throttle", "one GPU climbing to ~89 C, thermal clock-event bits, SM clock halved",
              "gpu", 0, 7, "warning", True),
        _spec("power-brake", "hw_power_brake asserted, enforced power limit far below the default",
              "gpu", 5, 0, "warning", True),
        _spec("pcie-degraded", "PCIe link at x8 instead of x16 under load, replay counter climbing",
              "gpu", 7, 4, "warning", True),
        _spec("gsp-hang", "XID 119: GSP RPC timeout, the GPU's series stall, node draining 'Kill task failed'",
              "gpu", 1, 3, "critical", True),
        _spec("host-down", "node stops answering: DOWN+NOT_RESPONDING, all its series absent, jobs NODE_FAIL",
              "node", 6, None, "critical", True),
        _spec("ib-flap", "an InfiniBand port flapping (state != 4, link_downed rising), a multi-node job fails",
              "node", 2, None, "critical", True),
        _spec("straggler", "a running multi-GPU job with one rank at 0% while its peers spin",
              "job", 5, 6, "warning", False),
        _spec("app-xid", "XID 31/43 from one user's application; the GPU is healthy (negative control)",
              "gpu", 4, 1, None, False),
        _spec("pending-on-drained", "jobs pending on Resources/ReqNodeNotAvail while a node sits drained",
              "cluster", 7, None, "warning", False),
        _spec("idle-allocated", "a job holding 4 GPUs at 0% utilisation for 45 minutes",
              "job", 3, 0, "warning", False),
        _spec("hostile-names", "injection text, markdown links and images, control characters and very long "
              "strings in job names, users, an account, a drain reason and an alert name", "node", 3, None,
              "warning", False),
        _spec("healthy", "no fault: the busy, healthy baseline", "cluster", None, None, None, False),
    )
}

_PLACE = re.compile(
    r"^\s*(?P<name>[a-z0-9-]+)\s*(?:@\s*(?P<node>[a-z-]*\d+)\s*(?:/\s*(?P<gpu>(?:gpu-?)?\d+))?)?\s*$",
    re.IGNORECASE,
)


def _index(text: str) -> int:
    return int(re.sub(r"\D", "", text))


def parse_scenario(spec: str, nodes: int) -> ScenarioPlacement:
    """Parse ``NAME[@node-N[/gpu-M]]`` against a cluster of ``nodes`` nodes.

    Without a place, the scenario's default node is used (wrapped into the cluster when it has
    fewer nodes). A GPU-level scenario given only a node hits the default GPU of that node.
    """
    match = _PLACE.match(spec or "")
    if not match:
        raise ValueError(
            f"Cannot parse scenario '{spec}': expected NAME[@node-N[/gpu-M]], e.g. xid79-fell-off-bus@node-3/gpu-5."
        )
    name = match["name"].lower()
    scenario = SCENARIOS.get(name)
    if scenario is None:
        raise UnknownScenarioError(name)
    node_text, gpu_text = match["node"], match["gpu"]
    if scenario.default_node is None:
        if node_text:
            raise ValueError(f"Scenario '{name}' takes no place; use it without '@...'.")
        return ScenarioPlacement(name=name, node=None, gpu=None)
    node = _index(node_text) if node_text else scenario.default_node % nodes
    if not 0 <= node < nodes:
        raise ValueError(f"node-{node} is outside the simulated cluster (node-0..node-{nodes - 1}).")
    if scenario.default_gpu is None:
        if gpu_text:
            raise ValueError(f"Scenario '{name}' hits a whole node; give @node-N without a GPU.")
        return ScenarioPlacement(name=name, node=node, gpu=None)
    gpu = _index(gpu_text) if gpu_text else scenario.default_gpu
    if not 0 <= gpu < GPUS_PER_NODE:
        raise ValueError(f"gpu-{gpu} is outside node-{node} (gpu-0..gpu-{GPUS_PER_NODE - 1}).")
    return ScenarioPlacement(name=name, node=node, gpu=gpu)
