"""Render node readings as a DCGM exporter (plus node_exporter InfiniBand) would expose them.

Why: ``gpudoc sim`` serves ``/metrics`` so that a real Prometheus can scrape the simulated
cluster, and a later Prometheus source can be tested against the same metric and label names it
will meet on real clusters (domain.md §1). Only values a node actually reports become samples: a
``None`` field yields no line, and a stale GPU or an unreachable node yields none at all, exactly
as series vanish when a GPU falls off the bus or a host goes down.

One endpoint covers the whole cluster, so every sample carries ``Hostname`` (InfiniBand samples
too, where node_exporter would rely on the scrape's ``instance`` label); ``render_node_dcgm_metrics``
is one node's page. Samples also carry ``gpu_name`` (the model, spaces as underscores) and
``DCGM_FI_DEV_FB_TOTAL`` is written, because GPU Watchdog's collector reads those.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from gpudoc.tools.models import GpuMetrics, NetworkPort, NodeMetrics


@dataclass(frozen=True)
class GpuMetricDef:
    name: str
    kind: Literal["gauge", "counter"]
    help: str
    value: Callable[[GpuMetrics], float | int | bool | None]


def _fb_free(gpu: GpuMetrics) -> float:
    return max(gpu.memory_total_mib - gpu.memory_used_mib, 0.0)


#: In the DCGM exporter's own order and wording; off-by-default fields come last.
GPU_METRICS: tuple[GpuMetricDef, ...] = (
    GpuMetricDef("DCGM_FI_DEV_SM_CLOCK", "gauge", "SM clock frequency (in MHz).", lambda g: g.sm_clock_mhz),
    GpuMetricDef("DCGM_FI_DEV_MEM_CLOCK", "gauge", "Memory clock frequency (in MHz).", lambda g: g.mem_clock_mhz),
    GpuMetricDef("DCGM_FI_DEV_MEMORY_TEMP", "gauge", "Memory temperature (in C).", lambda g: g.memory_temperature_c),
    GpuMetricDef("DCGM_FI_DEV_GPU_TEMP", "gauge", "GPU temperature (in C).", lambda g: g.temperature_c),
    GpuMetricDef("DCGM_FI_DEV_POWER_USAGE", "gauge", "Power draw (in W).", lambda g: g.power_w),
    GpuMetricDef("DCGM_FI_DEV_PCIE_REPLAY_COUNTER", "counter", "Total number of PCIe retries.", lambda g: g.pcie_replay_count),
    GpuMetricDef("DCGM_FI_DEV_GPU_UTIL", "gauge", "GPU utilization (in %).", lambda g: g.utilization_pct),
    GpuMetricDef("DCGM_FI_DEV_MEM_COPY_UTIL", "gauge", "Memory utilization (in %).", lambda g: g.memory_util_pct),
    GpuMetricDef("DCGM_FI_DEV_XID_ERRORS", "gauge", "Value of the last XID error encountered.", lambda g: g.last_xid),
    GpuMetricDef("DCGM_FI_DEV_FB_FREE", "gauge", "Framebuffer memory free (in MiB).", _fb_free),
    GpuMetricDef("DCGM_FI_DEV_FB_USED", "gauge", "Framebuffer memory used (in MiB).", lambda g: g.memory_used_mib),
    GpuMetricDef("DCGM_FI_DEV_FB_TOTAL", "gauge", "Framebuffer memory total (in MiB).", lambda g: g.memory_total_mib),
    GpuMetricDef(
        "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS", "counter",
        "Number of remapped rows for correctable errors", lambda g: g.correctable_remapped_rows,
    ),
    GpuMetricDef(
        "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS", "counter",
        "Number of remapped rows for uncorrectable errors", lambda g: g.uncorrectable_remapped_rows,
    ),
    GpuMetricDef(
        "DCGM_FI_DEV_ROW_REMAP_FAILURE", "gauge",
        "Whether remapping of rows has failed", lambda g: g.remap_failure,
    ),
    GpuMetricDef("DCGM_FI_DEV_ECC_SBE_VOL_TOTAL", "counter", "Total number of single-bit volatile ECC errors.", lambda g: g.ecc_sbe_volatile),
    GpuMetricDef("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", "counter", "Total number of double-bit volatile ECC errors.", lambda g: g.ecc_dbe_volatile),
    GpuMetricDef("DCGM_FI_DEV_CLOCKS_EVENT_REASONS", "gauge", "Current clock event reasons (bitmask).", lambda g: g.clock_event_reasons),
    GpuMetricDef("DCGM_FI_DEV_ENFORCED_POWER_LIMIT", "gauge", "Effective power limit that the driver enforces (in W).", lambda g: g.power_limit_w),
    GpuMetricDef("DCGM_FI_DEV_POWER_MGMT_LIMIT_DEF", "gauge", "Default power management limit (in W).", lambda g: g.default_power_limit_w),
    GpuMetricDef("DCGM_FI_DEV_PCIE_LINK_GEN", "gauge", "PCIe current link generation.", lambda g: g.pcie_link_gen),
    GpuMetricDef("DCGM_FI_DEV_PCIE_MAX_LINK_GEN", "gauge", "PCIe max link generation.", lambda g: g.pcie_link_gen_max),
    GpuMetricDef("DCGM_FI_DEV_PCIE_LINK_WIDTH", "gauge", "PCIe current link width.", lambda g: g.pcie_link_width),
    GpuMetricDef("DCGM_FI_DEV_PCIE_MAX_LINK_WIDTH", "gauge", "PCIe max link width.", lambda g: g.pcie_link_width_max),
)


@dataclass(frozen=True)
class PortMetricDef:
    name: str
    kind: Literal["gauge", "counter"]
    help: str
    value: Callable[[NetworkPort], int]


PORT_METRICS: tuple[PortMetricDef, ...] = (
    PortMetricDef(
        "node_infiniband_state_id", "gauge",
        "State of the InfiniBand port (0: no change, 1: down, 2: init, 3: armed, 4: active, 5: act defer)",
        lambda p: p.state_id,
    ),
    PortMetricDef(
        "node_infiniband_link_downed_total", "counter",
        "Number of times the link failed to recover from an error state and went down",
        lambda p: p.link_downed_total,
    ),
)


def render_dcgm_metrics(nodes: list[NodeMetrics]) -> str:
    """The Prometheus text exposition (version 0.0.4) of every live GPU and InfiniBand port."""
    live = [node for node in nodes if node.reachable]
    gpus = [(node, gpu) for node in live for gpu in node.gpus if not gpu.stale]
    lines: list[str] = []
    for metric in GPU_METRICS:
        samples = [
            (gpu_labels(node, gpu), value)
            for node, gpu in gpus
            if (value := metric.value(gpu)) is not None
        ]
        lines.extend(_family(metric.name, metric.kind, metric.help, samples))
    ports = [(node, port) for node in live for port in node.network or []]
    for port_metric in PORT_METRICS:
        samples = [
            (
                {"device": port.device, "port": str(port.port), "Hostname": node.hostname},
                port_metric.value(port),
            )
            for node, port in ports
        ]
        lines.extend(_family(port_metric.name, port_metric.kind, port_metric.help, samples))
    return "".join(line + "\n" for line in lines)


def render_node_dcgm_metrics(node: NodeMetrics) -> str:
    """One node's exporter page, as dcgm-exporter on that host serves it: its GPUs only (the
    InfiniBand ports are node_exporter's)."""
    return render_dcgm_metrics([node.model_copy(update={"network": None})])


def gpu_labels(node: NodeMetrics, gpu: GpuMetrics) -> dict[str, str]:
    """DCGM exporter's labels, in its order; a label whose value is unknown is left out."""
    labels = {
        "gpu": str(gpu.index),
        "UUID": gpu.uuid,
        "pci_bus_id": gpu.pci_bus_id,
        "device": f"nvidia{gpu.index}",
        "modelName": gpu.model,
        "Hostname": node.hostname,
        "DCGM_FI_DRIVER_VERSION": node.driver_version,
        "hpc_job": gpu.job_id,
        "gpu_name": gpu.model.replace(" ", "_"),  # the label GPU Watchdog's collector reads
    }
    return {key: value for key, value in labels.items() if value is not None}


def _family(
    name: str,
    kind: str,
    help_text: str,
    samples: Iterable[tuple[dict[str, str], float | int | bool]],
) -> list[str]:
    body = [f"{name}{{{_format_labels(labels)}}} {_format_value(value)}" for labels, value in samples]
    if not body:
        return []
    return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", *body]


def _format_labels(labels: dict[str, str]) -> str:
    return ",".join(f'{key}="{_escape(value)}"' for key, value in labels.items())


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _format_value(value: float | int | bool) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    number = float(value)
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "+Inf" if number > 0 else "-Inf"
    if number.is_integer() and number.is_integer() and abs(number) < 2**53:
        return str(int(number))
    return repr(number)
