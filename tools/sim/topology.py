"""The static shape of the simulated cluster: nodes, GPUs, identities, partitions.

Why separate from the signals: identities (UUIDs, PCI bus ids, partitions) never change with
time, and every other module (telemetry, Slurm, faults) needs them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from gpudoc.tools.models import GPU_MODELS, GpuModelSpec
from gpudoc.tools.sim.scenarios import GPUS_PER_NODE

# The PCI bus numbers of the eight SXM GPUs on DGX-style boards.
_BUS_IDS = {"a100": ["07", "0f", "47", "4e", "87", "90", "b7", "bd"],
            "h100": ["18", "2a", "3a", "5d", "9a", "ab", "ba", "db"]}
_DRIVER = {"a100": "535.183.01", "h100": "550.90.07"}
_HOST = {"a100": (128, 1_024_000, 200.0), "h100": (112, 2_048_000, 400.0)}  # cpus, mem MB, IB Gb/s
IB_PORTS = 4


@dataclass(frozen=True)
class Topology:
    """Everything about the cluster that does not depend on time."""

    seed: int
    nodes: int
    gpu_key: str
    spec: GpuModelSpec = field(init=False)

    def __post_init__(self) -> None:
        if self.nodes < 1:
            raise ValueError("the simulated cluster needs at least one node")
        if self.gpu_key not in GPU_MODELS:
            raise ValueError(f"Unknown GPU model '{self.gpu_key}'. Valid: {', '.join(GPU_MODELS)}.")
        object.__setattr__(self, "spec", GPU_MODELS[self.gpu_key])

    @property
    def gpus_per_node(self) -> int:
        return GPUS_PER_NODE

    @property
    def node_ids(self) -> list[str]:
        return [node_id(i) for i in range(self.nodes)]

    @property
    def gres_name(self) -> str:
        return self.gpu_key

    @property
    def cpus_per_node(self) -> int:
        return _HOST[self.gpu_key][0]

    @property
    def memory_per_node_mb(self) -> int:
        return _HOST[self.gpu_key][1]

    @property
    def ib_rate_gbps(self) -> float:
        return _HOST[self.gpu_key][2]

    @property
    def driver_version(self) -> str:
        return _DRIVER[self.gpu_key]

    def hostname(self, node: int) -> str:
        """Hostnames equal node ids, so Slurm, metrics and alerts join on one name."""
        return node_id(node)

    def bus(self, gpu: int) -> str:
        return _BUS_IDS[self.gpu_key][gpu]

    def pci_bus_id(self, gpu: int) -> str:
        return f"00000000:{self.bus(gpu)}:00.0"

    def kernel_pci(self, gpu: int) -> str:
        """The PCI address as NVRM writes it in ``Xid (PCI:0000:07:00)``."""
        return f"0000:{self.bus(gpu)}:00"

    def uuid(self, node: int, gpu: int) -> str:
        digest = hashlib.sha256(f"{self.seed}:{node}:{gpu}".encode()).hexdigest()
        return f"GPU-{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"

    # Partitions: `gpu` holds every node, `long` the first half, `debug` the last node.
    def partitions(self) -> dict[str, list[int]]:
        everyone = list(range(self.nodes))
        return {"gpu": everyone, "long": everyone[: max(1, self.nodes // 2)], "debug": everyone[-1:]}

    def node_partitions(self, node: int) -> list[str]:
        return [name for name, members in self.partitions().items() if node in members]


PARTITION_MAX_MINUTES = {"gpu": 2880, "long": 10080, "debug": 60}


def node_id(index: int) -> str:
    return f"node-{index}"
