"""Which signals the cluster's exporters do not provide, and how an operator turns them on.

Why: dcgm-exporter exports only the fields of its counters file, and its default file leaves out
most of what fault diagnosis needs (ECC counts, clock-event reasons, power limits, PCIe link state,
row-remap pending, NVLink error counters). Without them a rule has nothing to look at, which must
read as "not examined", not as "healthy". Every signal whose fields Prometheus does not hold
becomes one source note (``sources.notes``) naming the fields and the counters file that enables
them, which the tools show and the diagnosis lists among its limitations. The names come from
Prometheus's label index (``__name__`` values), which costs nothing per series.
"""

from __future__ import annotations

COUNTERS_FILE = "infra/dcgm-exporter/gpudoc-counters.csv"
ENABLE = f"add it to the exporter's counters file, e.g. run dcgm-exporter -f {COUNTERS_FILE}"
#: fields on in dcgm-exporter's own default counters: missing means a trimmed or older exporter
DEFAULT_ON = frozenset({"DCGM_FI_DEV_XID_ERRORS", "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS",
                        "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS", "DCGM_FI_DEV_ROW_REMAP_FAILURE",
                        "DCGM_FI_DEV_PCIE_REPLAY_COUNTER"})

#: signal -> the fields any of which provides it
SIGNALS: dict[str, tuple[str, ...]] = {
    "XID errors": ("DCGM_FI_DEV_XID_ERRORS",),
    "every XID within a window, not only the last": ("DCGM_EXP_XID_ERRORS_COUNT",),
    "remapped rows and remap failure": ("DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS", "DCGM_FI_DEV_ROW_REMAP_FAILURE"),
    "row remap pending": ("DCGM_FI_DEV_ROW_REMAP_PENDING",),
    "ECC error counts": ("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL"),
    "clock-event reasons (thermal slowdown, power brake)": ("DCGM_FI_DEV_CLOCKS_EVENT_REASONS",
                                                             "DCGM_FI_DEV_CLOCK_THROTTLE_REASONS"),
    "power limits (enforced vs default)": ("DCGM_FI_DEV_ENFORCED_POWER_LIMIT", "DCGM_FI_DEV_POWER_MGMT_LIMIT_DEF"),
    "PCIe link generation and width": ("DCGM_FI_DEV_PCIE_LINK_WIDTH", "DCGM_FI_DEV_PCIE_MAX_LINK_WIDTH",
                                       "DCGM_FI_DEV_PCIE_LINK_GEN", "DCGM_FI_DEV_PCIE_MAX_LINK_GEN"),
    "PCIe replays": ("DCGM_FI_DEV_PCIE_REPLAY_COUNTER",),
    "NVLink error counters": ("DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL",
                              "DCGM_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL",
                              "DCGM_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL",
                              "DCGM_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL"),
}

NVLINK_STATE = ("NVLink links down: dcgm-exporter has no per-GPU link-state field; NVLink error counters, "
                "recoveries and XID 74 stand in for it (nvidia-smi nvlink -s on the node lists link states)")


def signal_gaps(present: set[str]) -> list[str]:
    """One line per signal the exporters do not provide, from the metric names Prometheus holds."""
    if not any(name.startswith("DCGM_") for name in present):
        return ["GPU metrics (DCGM_FI_DEV_*): Prometheus holds no dcgm-exporter series; deploy NVIDIA's "
                "dcgm-exporter on every GPU node and scrape it (port 9400)"]
    gaps = []
    for signal, fields in SIGNALS.items():
        if any(name in present for name in fields):
            continue
        on_by_default = any(name in DEFAULT_ON for name in fields)
        reason = ("not exported, although dcgm-exporter's default counters include it (a trimmed counters file?)"
                  if on_by_default else "off in dcgm-exporter's default counters")
        gaps.append(f"{signal} ({', '.join(fields)}): {reason}; {ENABLE}")
    gaps.append(NVLINK_STATE)
    if "node_infiniband_state_id" not in present:
        gaps.append("InfiniBand port state (node_infiniband_*): Prometheus holds no node_exporter InfiniBand "
                    "series; run node_exporter (its infiniband collector is on by default) on the GPU nodes")
    return gaps
