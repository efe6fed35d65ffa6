"""The PromQL the Prometheus source sends, in one place.

Why here and why this way: the work is pushed into Prometheus. Screening the whole cluster for
anything worth a look is one expression whatever the node count (``triage``), which Prometheus
can keep as a recording rule (``gpudoc:screen`` in infra/prometheus/gpudoc-rules.yml) so a
diagnosis only reads its result; per-node readings, history and XIDs are then fetched for the few
nodes it names, by instance, in one query each.
Every expression takes the operator's extra selector (``PROMETHEUS_SELECTOR``, e.g.
``cluster="prod"``) so one Prometheus can serve several clusters.

Label conventions (NVIDIA's dcgm-exporter, node_exporter): one exporter per node, so ``instance``
names a node's exporter; GPUs are ``gpu`` within an instance; ``Hostname`` (``hostname`` in
unreleased exporters) names the node; node_exporter's ``node_uname_info`` gives its ``nodename``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gpudoc.tools.diagnosis.network import FLAP_EXCESS
from gpudoc.tools.diagnosis.thermal import OUTLIER_FLOOR_BELOW_MAX_C, PEER_DELTA_C
from gpudoc.tools.models import GPU_MODELS

#: GPU readings fetched per node, by field name
GPU_FIELDS = "DCGM_F[IA]_.+"
XID_GAUGE = "DCGM_FI_DEV_XID_ERRORS"
XID_COUNT = "DCGM_EXP_XID_ERRORS_COUNT"
NVLINK_ERROR_KINDS = {
    "DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL": "nvlink_crc_flit_errors",
    "DCGM_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL": "nvlink_crc_data_errors",
    "DCGM_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL": "nvlink_replay_errors",
    "DCGM_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL": "nvlink_recovery_errors",
}
#: the series a GPU's history is made of
HISTORY_FIELDS = ("DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_FB_FREE", "DCGM_FI_DEV_FB_RESERVED",
                  "DCGM_FI_DEV_GPU_TEMP", "DCGM_FI_DEV_POWER_USAGE", "DCGM_FI_DEV_SM_CLOCK",
                  "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS", "DCGM_FI_DEV_PCIE_REPLAY_COUNTER", *NVLINK_ERROR_KINDS)
#: tags of ``PromQL.last_values`` -> the exporter field each stands for (``last_seen``: time of the last sample)
LAST_VALUE_TAGS = {"util": "DCGM_FI_DEV_GPU_UTIL", "fb_used": "DCGM_FI_DEV_FB_USED", "fb_free": "DCGM_FI_DEV_FB_FREE",
                   "fb_reserved": "DCGM_FI_DEV_FB_RESERVED", "temp": "DCGM_FI_DEV_GPU_TEMP",
                   "power": "DCGM_FI_DEV_POWER_USAGE", "last_seen": "last_seen"}
IB_FIELDS = ("node_infiniband_state_id", "node_infiniband_physical_state_id", "node_infiniband_link_downed_total",
             "node_infiniband_link_error_recovery_total", "node_infiniband_rate_bytes_per_second")
#: the recording rule (infra/prometheus/gpudoc-rules.yml) that keeps ``PromQL().triage(*SCREEN_WINDOWS)``
SCREEN_RECORD = "gpudoc:screen"
SCREEN_WINDOWS = ("1h", "24h")
#: the screen's own series, present whenever it was evaluated (so "no suspects" differs from "no rule")
SCREEN_MARKER = "evaluated"
NONZERO_XID, WITH_XID, WITH_JOB = 'err_code!="0"', 'xid!=""', 'hpc_job!=""'
FIRING, CRITICAL = 'alertstate="firing"', 'severity="critical"'
#: the field whose presence says "this GPU reports"
PRESENCE = "DCGM_FI_DEV_GPU_TEMP"
#: clock-event bits that are a symptom (0x4 power cap, 0x8 hw slowdown, 0x20/0x40 thermal, 0x80 brake)
_SYMPTOM_BITS = "((({f} % 256) - ({f} % 4)) - (({f} % 32) - ({f} % 16)))"


def _names(names: tuple[str, ...] | list[str]) -> str:
    return "|".join(sorted(names))


@dataclass(frozen=True)
class PromQL:
    """Builds expressions with the operator's selector added to every series selector."""

    selector: str = ""

    def s(self, metric: str, *matchers: str) -> str:
        """``metric{selector, matchers}``; ``metric`` may be ``{__name__=~"..."}``-style via ``names=``."""
        parts = [m for m in (self.selector, *matchers) if m]
        return f"{metric}{{{','.join(parts)}}}" if parts else metric

    def names(self, pattern: str, *matchers: str) -> str:
        return self.s("", f'__name__=~"{pattern}"', *matchers)

    # ---- inventory ------------------------------------------------------------------------------

    def targets(self) -> str:
        """``up`` of every exporter target of the jobs that export GPUs or node_exporter metrics,
        tagged ``gpudoc_kind="gpu"`` or ``"node"``; a long-dead host keeps its ``up 0``."""
        gpu_jobs = f"group by (job) ({self.s(PRESENCE)})"
        node_jobs = f"group by (job) ({self.s('node_uname_info')} or {self.s('node_infiniband_state_id')})"
        return (f'label_replace({self.s("up")} and on (job) {gpu_jobs}, "gpudoc_kind", "gpu", "", "") or '
                f'label_replace({self.s("up")} and on (job) {node_jobs}, "gpudoc_kind", "node", "", "")')

    def hosts(self, window: str) -> str:
        """Which host an instance is: GPUs seen per (instance, Hostname) over ``window``, and
        node_exporter's nodename per instance."""
        seen = f"last_over_time({self.s(PRESENCE)}[{window}])"
        return (f"count by (instance, Hostname, hostname) (group by (instance, Hostname, hostname, gpu) ({seen})) or "
                f"count by (instance, nodename) (last_over_time({self.s('node_uname_info')}[{window}]))")

    def present_match(self) -> str | None:
        """The ``match[]`` for listing metric names: only needed to keep to the selector's cluster."""
        return self.names("DCGM_.+|node_infiniband_state_id") if self.selector else None

    # ---- per node -------------------------------------------------------------------------------

    def gpu_fields(self, instances: str | None) -> str:
        return self.names(GPU_FIELDS, *_instance(instances))

    def ib_fields(self, instances: str | None) -> str:
        return self.names(_names(IB_FIELDS), *_instance(instances))

    def history(self, instances: str | None) -> str:
        return self.names(_names(HISTORY_FIELDS), *_instance(instances))

    def last_values(self, instances: str | None, window: str) -> str:
        """Each GPU's last core readings within ``window`` and the time of its last sample, tagged:
        what a GPU that stopped reporting read before it went silent."""
        inst = _instance(instances)
        parts = [f'label_replace(last_over_time({self.s(field, *inst)}[{window}]), "gpudoc", "{tag}", "", "")'
                 for tag, field in LAST_VALUE_TAGS.items() if tag != "last_seen"]
        presence = self.s(PRESENCE, *inst)
        parts.append(f'label_replace(timestamp({presence}) or max_over_time(timestamp({presence})[{window}:30s]), '
                     f'"gpudoc", "last_seen", "", "")')
        return " or ".join(parts)

    def ib(self, instances: str | None, window: str) -> str:
        """node_exporter's InfiniBand series and each port's link drops over ``window`` (tagged)."""
        downed = f"increase({self.s('node_infiniband_link_downed_total', *_instance(instances))}[{window}])"
        return f'{self.ib_fields(instances)} or label_replace({downed}, "gpudoc", "downed_last_hour", "", "")'

    def xid_history(self, instances: str | None, window: str) -> str:
        """Per XID series: when it was first seen within ``window`` and, from the count field, how many."""
        inst = _instance(instances)
        gauge = self.s(XID_GAUGE, NONZERO_XID, *inst)
        count = self.s(XID_COUNT, WITH_XID, *inst)
        # subquery steps fall on whole minutes, so a series younger than the last one is taken at its sample
        first_gauge = f"min_over_time(timestamp({gauge})[{window}:1m]) or timestamp({gauge})"
        first_count = f"min_over_time(timestamp({count})[{window}:1m]) or timestamp({count})"
        return (f'label_replace({first_gauge}, "gpudoc", "gauge_first", "", "") or '
                f'label_replace({first_count}, "gpudoc", "count_first", "", "") or '
                f'label_replace(max_over_time({count}[{window}]), "gpudoc", "count_max", "", "")')

    # ---- the whole cluster ------------------------------------------------------------------------

    def summary(self) -> str:
        """Cluster-wide aggregates for ``cluster_status``, one tagged series each."""
        parts = {
            "gpus": f"count({self.s(PRESENCE)})",
            "util": f"avg({self.s('DCGM_FI_DEV_GPU_UTIL')})",
            "temp": f"avg({self.s(PRESENCE)})",
            "fb_used": f"sum({self.s('DCGM_FI_DEV_FB_USED')})",
            "fb_free": f"sum({self.s('DCGM_FI_DEV_FB_FREE')})",
            "fb_reserved": f"sum({self.s('DCGM_FI_DEV_FB_RESERVED')})",
            "fb_total": f"sum({self.s('DCGM_FI_DEV_FB_TOTAL')})",
            "critical_alerts": f"count({self.s('ALERTS', FIRING, CRITICAL)})",
        }
        return " or ".join(f'label_replace({expr}, "gpudoc", "{tag}", "", "")' for tag, expr in parts.items())

    def link_downed_medians(self) -> str:
        return f"quantile by (device, port) (0.5, {self.s('node_infiniband_link_downed_total')})"

    def triage(self, window: str, xid_window: str) -> str:
        """Every instance with something an analyzer could report, tagged with why (``gpudoc``).

        Each condition is looser than the analyzer it stands for (it only has to find the node; the
        analyzer then decides on the node's full facts), and is one term of a single query.
        """
        f = self.s
        temp = f(PRESENCE)
        hot_floor = min(spec.max_operating_temp_c for spec in GPU_MODELS.values()) - OUTLIER_FLOOR_BELOW_MAX_C
        reasons = f("DCGM_FI_DEV_CLOCKS_EVENT_REASONS")
        throttle = _SYMPTOM_BITS.format(f=reasons)
        util_job = f("DCGM_FI_DEV_GPU_UTIL", WITH_JOB)
        terms = {
            "xid": f"{f(XID_GAUGE, NONZERO_XID)} unless on (instance, gpu, err_code) "
                   f"({f(XID_GAUGE)} offset {xid_window})",
            "xid_count": f"max_over_time({f(XID_COUNT, WITH_XID)}[{xid_window}]) > 0",
            "uncorrectable_rows": f"{f('DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS')} > 0",
            "remap_failure": f"{f('DCGM_FI_DEV_ROW_REMAP_FAILURE')} > 0",
            "remap_pending": f"{f('DCGM_FI_DEV_ROW_REMAP_PENDING')} > 0",
            "ecc_dbe": f"{f('DCGM_FI_DEV_ECC_DBE_VOL_TOTAL')} > 0",
            "correctable_rows": f"increase({f('DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS')}[{window}]) > 0",
            "hot": f"{temp} >= {hot_floor + PEER_DELTA_C / 3:g}",
            "hot_vs_node": f"(({temp} - on (instance) group_left () quantile by (instance) (0.5, {temp})) "
                           f">= {PEER_DELTA_C * 2 / 3:g}) and {temp} >= {hot_floor:g}",
            "memory_hot": f"{f('DCGM_FI_DEV_MEMORY_TEMP')} >= 85",
            "clock_events": f"{throttle} > 0",
            "power_cap": f"{f('DCGM_FI_DEV_ENFORCED_POWER_LIMIT')} < on (instance, gpu) group_left () "
                         f"(0.95 * {f('DCGM_FI_DEV_POWER_MGMT_LIMIT_DEF')})",
            "pcie_width": f"{f('DCGM_FI_DEV_PCIE_LINK_WIDTH')} < on (instance, gpu) group_left () "
                          f"{f('DCGM_FI_DEV_PCIE_MAX_LINK_WIDTH')}",
            "pcie_gen": f"({f('DCGM_FI_DEV_PCIE_LINK_GEN')} < on (instance, gpu) group_left () "
                        f"{f('DCGM_FI_DEV_PCIE_MAX_LINK_GEN')}) and on (instance, gpu) {f('DCGM_FI_DEV_GPU_UTIL')} >= 30",
            "pcie_replays": f"increase({f('DCGM_FI_DEV_PCIE_REPLAY_COUNTER')}[{window}]) > 0",
            **{field: f"increase({f(kind)}[{window}]) > 0" for kind, field in NVLINK_ERROR_KINDS.items()},
            "stale_gpu": f"count by (instance) (group by (instance, gpu) (last_over_time({temp}[{window}]))) "
                         f"> count by (instance) (group by (instance, gpu) ({temp}))",
            "all_gpus_stale": f"group by (instance) (last_over_time({temp}[{window}])) unless group by (instance) ({temp})",
            "straggler": f"({util_job} + 30) <= on (hpc_job) group_left () quantile by (hpc_job) (0.5, {util_job})",
            "idle_allocation": f"max_over_time({util_job}[30m]) <= 1",
            "ib_port": f"{f('node_infiniband_state_id')} != 4",
            "ib_downed_recently": f"increase({f('node_infiniband_link_downed_total')}[{window}]) > 0",
            "ib_downed_vs_cluster": f"({f('node_infiniband_link_downed_total')} - on (device, port) group_left () "
                                    f"quantile by (device, port) (0.5, {f('node_infiniband_link_downed_total')})) >= {FLAP_EXCESS}",
        }
        marker = f'label_replace(vector(1), "gpudoc", "{SCREEN_MARKER}", "", "")'
        return " or ".join([*(f'label_replace(max by (instance) ({expr}), "gpudoc", "{tag}", "", "")'
                              for tag, expr in terms.items()), marker])

    def recorded_screen(self) -> str:
        return SCREEN_RECORD


def _instance(instances: str | None) -> tuple[str, ...]:
    return () if instances is None else (f'instance=~"{instances}"',)


def instance_regex(instances: list[str]) -> str:
    """An ``instance=~`` pattern matching exactly these instances, escaped for a PromQL string."""
    pattern = "|".join(re.escape(i) for i in sorted(instances)) or "^$"
    return pattern.replace("\\", "\\\\")
