"""What a Prometheus needs to watch the simulated cluster: scrape targets and the past hour.

Why the past hour: a real Prometheus has scraped a cluster for weeks when something goes wrong;
one started next to ``gpudoc sim`` would only see the faults' present, not the hour that led to
them (a GPU that fell off the bus 26 minutes ago would be unknown, a replay counter would have
no slope). So the simulator writes its exporters' history as OpenMetrics, exactly the lines its
endpoints served at each past scrape, for ``promtool tsdb create-blocks-from openmetrics``;
Prometheus then starts on those blocks and continues the same series by scraping.

Conventions shared by the targets and the history (and by the shipped scrape config):
job ``dcgm`` with ``instance="<node>:9400"`` for ``/metrics/gpu/<node>/metrics``, job ``node`` with
``instance="<node>:9100"`` for ``/metrics/node/<node>/metrics``, as on a cluster where each
exporter listens on its default port.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path

from gpudoc.tools.sim.baseline import SCRAPE_S
from gpudoc.tools.sim.dcgm_exporter import DcgmExporter
from gpudoc.tools.sim.exposition import escape
from gpudoc.tools.sim.node_exporter import render_node_exporter
from gpudoc.tools.sim.source import SimSource

GPU_JOB, NODE_JOB = "dcgm", "node"
GPU_PORT, NODE_PORT = 9400, 9100
_SAMPLE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(\{.*\})? (\S+)$")


def instance(node_id: str, job: str) -> str:
    return f"{node_id}:{GPU_PORT if job == GPU_JOB else NODE_PORT}"


def file_sd_targets(source: SimSource, address: str, job: str) -> list[dict[str, object]]:
    """File-based service discovery entries: one target per node's exporter page on ``address``."""
    kind = "gpu" if job == GPU_JOB else "node"
    return [
        {"targets": [address],
         "labels": {"__metrics_path__": f"/metrics/{kind}/{node}/metrics", "instance": instance(node, job)}}
        for node in source.topo.node_ids
    ]


def write_prometheus_dir(source: SimSource, exporter: DcgmExporter, address: str, directory: Path,
                         history_minutes: int, step_s: int = 60) -> dict[str, Path]:
    """Write ``dcgm-targets.json``, ``node-targets.json`` and (unless ``history_minutes`` is 0)
    ``history.om`` into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {"dcgm": directory / "dcgm-targets.json", "node": directory / "node-targets.json",
             "history": directory / "history.om"}
    paths["dcgm"].write_text(json.dumps(file_sd_targets(source, address, GPU_JOB), indent=1))
    paths["node"].write_text(json.dumps(file_sd_targets(source, address, NODE_JOB), indent=1))
    if history_minutes == 0:
        del paths["history"]
        return paths
    with paths["history"].open("w", encoding="utf-8") as out:
        for line in history_openmetrics(source, exporter, history_minutes, step_s):
            out.write(line + "\n")
    return paths


def history_openmetrics(source: SimSource, exporter: DcgmExporter, minutes: int, step_s: int = 60) -> list[str]:
    """The exporters' pages over the last ``minutes`` (one scrape every ``step_s``), as OpenMetrics
    with ``job``/``instance`` labels and timestamps, plus the ``up`` each scrape would have recorded.

    Families are kept together and each series' samples in time order, as OpenMetrics requires; no
    ``# TYPE`` lines, because OpenMetrics would demand ``_total`` names the real exporters lack.
    """
    if minutes <= 0 or step_s < SCRAPE_S:
        raise ValueError("history needs a positive number of minutes and a step of at least 15 s")
    telemetry = source.telemetry
    last = int(source.clock.now().timestamp() // SCRAPE_S) - 1
    first = last - (minutes * 60) // SCRAPE_S
    stride = step_s // SCRAPE_S
    families: dict[str, list[str]] = defaultdict(list)
    for bucket in range(first, last + 1, stride):
        stamp = telemetry.stamp(bucket)
        seconds = f"{bucket * SCRAPE_S}"
        for index, node_id in enumerate(source.topo.node_ids):
            node = telemetry.node_metrics(index, bucket, stamp)
            for job in (GPU_JOB, NODE_JOB):
                extra = f'instance="{escape(instance(node_id, job))}",job="{job}"'
                families["up"].append(f"up{{{extra}}} {1 if node.reachable else 0} {seconds}")
                if not node.reachable:
                    continue
                page = exporter.render_node(node) if job == GPU_JOB else render_node_exporter(node)
                for line in page.splitlines():
                    match = _SAMPLE.match(line)
                    if match is None:
                        continue
                    name, labels, value = match.groups()
                    inner = f"{labels[1:-1]},{extra}" if labels else extra
                    families[name].append(f"{name}{{{inner}}} {value} {seconds}")
    lines = [line for name in families for line in sorted(families[name], key=_series_then_time)]
    lines.append("# EOF")
    return lines


def _series_then_time(line: str) -> tuple[str, float]:
    head, _, stamp = line.rpartition(" ")
    return head.rsplit(" ", 1)[0], float(stamp)
