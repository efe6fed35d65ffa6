"""Readings a real exporter carries that follow from the simulated load: engine activity ratios,
PCIe traffic, encoder/decoder use, and the energy counter.

Why derived rather than simulated on their own: dcgm-exporter exports these by default
(``PROF_GR_ENGINE_ACTIVE``, ``PROF_PIPE_TENSOR_ACTIVE``, ``PROF_DRAM_ACTIVE``, ``PROF_PCIE_TX/RX_BYTES``,
``ENC/DEC_UTIL``, ``TOTAL_ENERGY_CONSUMPTION``) and PromQL written for a real cluster uses them,
but no fault changes them independently of utilisation and power. Deriving them keeps them
consistent with the readings the analyzers do use: a hung rank shows no tensor activity, a
power-braked GPU accumulates energy more slowly.
"""

from __future__ import annotations

from typing import Callable

from gpudoc.tools.sim.baseline import SCRAPE_S
from gpudoc.tools.sim.noise import Noise, series_key

#: share of graphics-engine time the tensor pipes are busy, by kind of job
TENSOR_SHARE = {"train": 0.46, "eval": 0.31, "inference": 0.24, "interactive": 0.07}
#: host <-> GPU traffic at full utilisation, bytes/s (data loading in, checkpoints and logits out)
PCIE_RX_AT_FULL = {"train": 2.2e9, "eval": 1.1e9, "inference": 0.9e9, "interactive": 0.3e9}
PCIE_TX_AT_FULL = {"train": 0.45e9, "eval": 0.2e9, "inference": 0.6e9, "interactive": 0.1e9}
#: a GPU without a job still sees driver and monitoring traffic
PCIE_IDLE_BYTES = 4.0e5


def activity(util_pct: float, mem_util_pct: float, kind: str | None) -> dict[str, float]:
    """Engine activity and PCIe traffic of one reading; ``kind`` is the job's kind (None: no job)."""
    busy = util_pct / 100.0
    tensor = busy * TENSOR_SHARE.get(kind or "", 0.0)
    rx = PCIE_IDLE_BYTES + busy * PCIE_RX_AT_FULL.get(kind or "", 0.0)
    tx = PCIE_IDLE_BYTES + busy * PCIE_TX_AT_FULL.get(kind or "", 0.0)
    return {
        "graphics_active": round(busy, 6),
        "tensor_active": round(tensor, 6),
        "dram_active": round(mem_util_pct / 100.0, 6),
        "pcie_rx_bytes_per_s": float(int(rx)),
        "pcie_tx_bytes_per_s": float(int(tx)),
        # training clusters do not use the video engines
        "encoder_util_pct": 0.0,
        "decoder_util_pct": 0.0,
    }


class EnergyMeter:
    """``TOTAL_ENERGY_CONSUMPTION``: millijoules since the driver loaded, monotonic.

    The counter integrates the simulated power exactly (15 s per reading) from ``start_bucket``
    on, so ``rate()`` over any served window equals the mean of the power readings in it; before
    that it stands on a per-GPU amount accumulated since a boot some days earlier. Sums are kept
    per chunk of readings, so a realtime run only ever adds its newest chunk.
    """

    def __init__(self, noise: Noise, start_bucket: int, chunk: int, idle_power_w: float,
                 power_of_chunk: Callable[[int, int, int], list[float]]):
        self.noise, self.chunk, self.idle_power_w = noise, chunk, idle_power_w
        self.start_chunk = start_bucket // chunk
        self.power_of_chunk = power_of_chunk
        self._prefix: dict[tuple[int, int], list[float]] = {}

    def _at_boot(self, node: int, gpu: int) -> float:
        days = 6.0 + 20.0 * (self.noise.at(series_key(node, gpu), 0, 93) + 1.0) / 2.0
        return days * 86400.0 * self.idle_power_w * 1.8 * 1000.0

    def energy_mj(self, node: int, gpu: int, bucket: int) -> float:
        chunk = bucket // self.chunk
        if chunk < self.start_chunk:
            # before the metered span: idle power back to the boot amount (never served in practice)
            behind = self.start_chunk * self.chunk - bucket
            return max(0.0, self._at_boot(node, gpu) - behind * SCRAPE_S * self.idle_power_w * 1000.0)
        prefix = self._prefix.setdefault((node, gpu), [self._at_boot(node, gpu)])
        while len(prefix) <= chunk - self.start_chunk:
            done = self.start_chunk + len(prefix) - 1
            prefix.append(prefix[-1] + sum(self.power_of_chunk(node, gpu, done)) * SCRAPE_S * 1000.0)
        within = self.power_of_chunk(node, gpu, chunk)[: bucket - chunk * self.chunk + 1]
        return float(int(prefix[chunk - self.start_chunk] + sum(within) * SCRAPE_S * 1000.0))
