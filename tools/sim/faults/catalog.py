"""Every catalogued scenario's fault class, and ``build_fault`` to place one on the cluster."""

from __future__ import annotations

from gpudoc.tools.sim.faults.base import Fault
from gpudoc.tools.sim.faults.gpu import (
    CorrectableStorm,
    FellOffBus,
    GspHang,
    HbmUncorrectable,
    NvlinkDegraded,
    PcieDegraded,
    PowerBrake,
    RowRemapFailure,
    ThermalThrottle,
)
from gpudoc.tools.sim.faults.jobs import AppXid, HostileNames, IdleAllocated, PendingOnDrained, Straggler
from gpudoc.tools.sim.faults.node import HostDown, IbFlap
from gpudoc.tools.sim.noise import Noise
from gpudoc.tools.sim.scenarios import SCENARIOS, ScenarioPlacement
from gpudoc.tools.sim.topology import Topology


class Healthy(Fault):
    """No fault: named so that evals can ask for the baseline explicitly."""


FAULTS: dict[str, type[Fault]] = {
    "xid79-fell-off-bus": FellOffBus, "hbm-uncorrectable": HbmUncorrectable, "row-remap-failure": RowRemapFailure,
    "ecc-correctable-storm": CorrectableStorm, "nvlink-degraded": NvlinkDegraded, "thermal-throttle": ThermalThrottle,
    "power-brake": PowerBrake, "pcie-degraded": PcieDegraded, "gsp-hang": GspHang, "host-down": HostDown,
    "ib-flap": IbFlap, "straggler": Straggler, "app-xid": AppXid, "pending-on-drained": PendingOnDrained,
    "idle-allocated": IdleAllocated, "hostile-names": HostileNames, "healthy": Healthy,
}
assert set(FAULTS) == set(SCENARIOS), "every catalogued scenario needs a fault"


def build_fault(placement: ScenarioPlacement, topo: Topology, noise: Noise) -> Fault:
    return FAULTS[placement.name](placement, topo, noise)
