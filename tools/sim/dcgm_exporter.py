"""Node readings written as NVIDIA's dcgm-exporter 4.x writes them: one node per endpoint.

Why per node: each real exporter runs on its node (``:9400/metrics``), so Prometheus gives every
node its own ``instance`` and PromQL joins ``on(instance, gpu)`` (NVIDIA's dashboards) work. The
simulator serves ``/metrics/gpu/<node>/metrics`` the same way; ``render_cluster`` keeps the older
single ``/metrics`` of the whole cluster for tools that scrape one URL.

What a real exporter does and the simulator copies (checked against NVIDIA/dcgm-exporter):
- only the fields in its counters file (``dcgm_fields``), with that file's types and help;
- labels ``gpu, UUID, pci_bus_id, device, modelName, Hostname``, then the label fields
  (``DCGM_FI_DRIVER_VERSION``), then attributes: ``err_code``/``err_msg`` on
  ``DCGM_FI_DEV_XID_ERRORS`` (since 4.0) and ``hpc_job`` when job mapping is on;
- a blank DCGM value gives no line, so a ``None`` reading is simply absent;
- ``DCGM_EXP_XID_ERRORS_COUNT`` (when listed) counts each XID over the last window, one series per
  XID, or a single 0 without ``xid`` when the window saw none.
Beyond the real exporter, every GPU line also carries ``gpu_name`` (the model, spaces as
underscores: the label GPU Watchdog's collector reads) and the page has ``DCGM_FI_DEV_FB_TOTAL``
(in gpudoc's counters); Prometheus ignores a label nobody queries.

A GPU that fell off the bus or hangs (``stale``) reports no readings any more; only the
exporter-side XID series stay, so the XID that took it out remains visible.
"""

from __future__ import annotations

from collections import Counter as Tally
from datetime import datetime, timedelta

from gpudoc.tools.models import GpuMetrics, NodeMetrics
from gpudoc.tools.sim.dcgm_fields import (
    COUNTER_PROFILES,
    DRIVER_VERSION_FIELD,
    FIELDS,
    XID_COUNT_FIELD,
    XID_COUNT_WINDOW_MS,
    Counter,
)
from gpudoc.tools.sim.exposition import Sample, family, join_lines
from gpudoc.tools.sim.node_exporter import render_ports

#: ``err_msg`` for the XIDs the simulator produces, in the exporter's words (from NVIDIA's catalog)
XID_MESSAGES: dict[int, str] = {
    0: "No Error",
    13: "Graphics Engine Exception",
    31: "GPU memory page fault",
    43: "GPU stopped processing",
    45: "Preemptive cleanup, due to previous errors -- Most likely to see when running multiple cuda",
    48: "Double Bit ECC Error",
    61: "Internal micro-controller breakpoint/warning",
    62: "Internal micro-controller halt",
    63: "ECC page retirement or row remapping recording event",
    64: "ECC page retirement or row remapper recording failure",
    74: "NVLINK Error",
    79: "GPU has fallen off the bus",
    92: "High single-bit ECC error rate",
    94: "Contained ECC error",
    95: "Uncontained ECC error",
    119: "GSP RPC Timeout",
    120: "GSP Error",
}
UNKNOWN_XID_MESSAGE = "Unknown Error"
#: readings a stale GPU still has: the exporter keeps its XID fields while DCGM reads nothing else
EXPORTER_SIDE = frozenset({"DCGM_FI_DEV_XID_ERRORS", XID_COUNT_FIELD})


class DcgmExporter:
    """Renders nodes with one counters configuration (see ``dcgm_fields.load_counters``)."""

    def __init__(self, counters: list[Counter] | None = None, *, xid_window_ms: int = XID_COUNT_WINDOW_MS):
        self.counters = list(COUNTER_PROFILES["gpudoc"] if counters is None else counters)
        self.with_driver_label = any(c.name == DRIVER_VERSION_FIELD and c.kind == "label" for c in self.counters)
        self.values = [c for c in self.counters if c.kind != "label" and c.name != XID_COUNT_FIELD]
        self.xid_count = next((c for c in self.counters if c.name == XID_COUNT_FIELD), None)
        self.xid_window = timedelta(milliseconds=xid_window_ms)
        self.xid_window_ms = xid_window_ms

    @property
    def field_names(self) -> set[str]:
        return {c.name for c in self.counters}

    def render_node(self, node: NodeMetrics) -> str:
        """One node's exporter page: what ``/metrics/gpu/<node>/metrics`` answers while the host is up."""
        return join_lines(self._lines([node]))

    def render_cluster(self, nodes: list[NodeMetrics]) -> str:
        """Every live node in one page (the simulator's ``/metrics``): GPU lines, then InfiniBand ports,
        which carry ``Hostname`` here because all nodes share one ``instance``."""
        live = [node for node in nodes if node.reachable]
        return join_lines([*self._lines(live), *render_ports(live, with_hostname=True)])

    def _lines(self, nodes: list[NodeMetrics]) -> list[str]:
        gpus = [(node, gpu) for node in nodes if node.reachable for gpu in node.gpus]
        lines: list[str] = []
        for counter in self.values:
            field = FIELDS[counter.name]
            samples: list[Sample] = []
            for node, gpu in gpus:
                if gpu.stale and counter.name not in EXPORTER_SIDE:
                    continue
                value = field.value(gpu)
                if value is None:
                    continue
                labels = self.labels(node, gpu)
                if counter.name == "DCGM_FI_DEV_XID_ERRORS":
                    labels = self._with_xid(labels, int(value))
                samples.append((self._finish(labels, gpu), dcgm_value(value, field.double)))
            lines.extend(family(counter.name, counter.kind, counter.help, samples))
        if self.xid_count is not None:
            samples = [s for node, gpu in gpus for s in self._xid_counts(node, gpu)]
            lines.extend(family(self.xid_count.name, self.xid_count.kind, self.xid_count.help, samples))
        return lines

    def labels(self, node: NodeMetrics, gpu: GpuMetrics) -> dict[str, str]:
        """The exporter's labels in its order; a label whose value is unknown is left out."""
        labels = {
            "gpu": str(gpu.index),
            "UUID": gpu.uuid,
            "pci_bus_id": gpu.pci_bus_id,
            "device": f"nvidia{gpu.index}",
            "modelName": gpu.model,
            "Hostname": node.hostname,
            DRIVER_VERSION_FIELD: node.driver_version if self.with_driver_label else None,
        }
        return {key: value for key, value in labels.items() if value is not None}

    def _attributes(self, gpu: GpuMetrics) -> dict[str, str]:
        extra = {"hpc_job": gpu.job_id} if gpu.job_id else {}
        return {**extra, "gpu_name": gpu.model.replace(" ", "_")}

    def _with_xid(self, labels: dict[str, str], xid: int) -> dict[str, str]:
        return {**labels, "err_code": str(xid), "err_msg": XID_MESSAGES.get(xid, UNKNOWN_XID_MESSAGE)}

    def _xid_counts(self, node: NodeMetrics, gpu: GpuMetrics) -> list[Sample]:
        if gpu.xid_events is None:
            return []
        since: datetime = node.timestamp - self.xid_window
        counts = Tally(e.xid for e in gpu.xid_events if since < e.timestamp <= node.timestamp for _ in range(e.count))
        base = {**self.labels(node, gpu), "window_size_in_ms": str(self.xid_window_ms)}
        attributes = self._attributes(gpu)
        if not counts:
            return [({**base, **attributes}, "0")]
        return [({**base, "xid": str(xid), **attributes}, str(count)) for xid, count in sorted(counts.items())]

    def _finish(self, labels: dict[str, str], gpu: GpuMetrics) -> dict[str, str]:
        return {**labels, **self._attributes(gpu)}


def dcgm_value(value: float | int | bool, double: bool) -> str:
    """A value as dcgm-exporter prints DCGM's types: ``%d`` for integers, ``%f`` for doubles."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if double:
        return f"{float(value):f}"
    return str(int(round(float(value))))


def render_dcgm_metrics(nodes: list[NodeMetrics]) -> str:
    """The whole cluster in one page with gpudoc's counters (the simulator's ``/metrics``)."""
    return DcgmExporter().render_cluster(nodes)


def render_node_dcgm_metrics(node: NodeMetrics) -> str:
    """One node's dcgm-exporter page with gpudoc's counters."""
    return DcgmExporter().render_node(node)
