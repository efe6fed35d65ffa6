"""``prometheus``: cluster facts from a Prometheus fed by dcgm-exporter and node_exporter.

Why it is gpudoc's main real source: almost every GPU cluster exports GPU health with NVIDIA's
dcgm-exporter into Prometheus, InfiniBand with node_exporter, and alerts through Prometheus rules
and Alertmanager. This source reads exactly those, with the exporters' real names and labels.

How it stays fast on a thousand nodes: the diagnosis first screens the cluster with one PromQL
expression (``diagnosis_scope``; read from the ``gpudoc:screen`` recording rule when Prometheus
keeps it, at most one rule interval old), then reads readings, XIDs, InfiniBand and history only for the nodes
named, one query each, in parallel; cluster figures are aggregated in Prometheus. Every query of
one snapshot is evaluated at the same instant and sent once (``client``). Scheduler facts come
from a Slurm source composed with this one; on its own it reports no Slurm.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any, Sequence

from gpudoc.tools.models import (
    AlertEvent,
    AlertRule,
    ClusterStatus,
    GpuMetrics,
    GpuSeries,
    NodeMetrics,
    Silence,
    SlurmSnapshot,
    SlurmSummary,
)
from gpudoc.tools.sources.base import ClusterSource, DiagnosisScope, SourceError, UnknownNodeError
from gpudoc.tools.sources.notes import note
from gpudoc.tools.sources.prometheus.alerting import alert_events, mark_silenced, rules_from, silences_from
from gpudoc.tools.sources.prometheus.client import PrometheusClient
from gpudoc.tools.sources.prometheus.inventory import Inventory, load_inventory
from gpudoc.tools.sources.prometheus.promql import HISTORY_FIELDS, LAST_VALUE_TAGS, PRESENCE, SCREEN_MARKER, PromQL
from gpudoc.tools.sources.prometheus.readings import (
    GpuReading,
    gpu_metrics,
    gpu_series,
    group_gpus,
    ib_ports,
    xid_events,
)
from gpudoc.tools.sources.prometheus.signals import signal_gaps

#: a GPU or host seen within this window but silent now is stale / down rather than unknown
SEEN_WINDOW = "1h"
XID_LOOKBACK_H = 24
ALERT_HISTORY_H = 24
ALERT_STEP_S = 60.0
#: metric names present within this long count as exported
NAMES_WINDOW_S = 900.0
#: points a whole-cluster history may return before its step is widened
MAX_HISTORY_POINTS = 2_000_000


class PrometheusSource(ClusterSource):
    """Read-only facts from one Prometheus-compatible API (and optionally its Alertmanager)."""

    name = "prometheus"
    screens_cluster = True
    reports_gaps = True

    def __init__(self, client: PrometheusClient, *, selector: str = ""):
        self.client = client
        self.promql = PromQL(selector.strip().strip("{}").strip())

    # ---- plumbing -------------------------------------------------------------------------------

    async def _query(self, expr: str) -> list[dict[str, Any]]:
        return await self.client.query(expr)

    async def _inventory(self) -> Inventory:
        return await load_inventory(self._query, self.promql, SEEN_WINDOW)

    async def _gaps(self) -> list[str]:
        """The signals the exporters lack, each also noted for whoever reads these facts."""
        names = await self.client.label_values("__name__", self.promql.present_match(), NAMES_WINDOW_S)
        gaps = signal_gaps(set(names))
        for line in gaps:
            note(line)
        return gaps

    def _stamp(self) -> datetime:
        return datetime.fromtimestamp(self.client.now(), UTC)

    async def _known(self, node_id: str) -> Inventory:
        inventory = await self._inventory()
        if node_id not in inventory.nodes:
            raise UnknownNodeError(node_id, inventory.node_ids)
        return inventory

    # ---- nodes -------------------------------------------------------------------------------------

    async def node_ids(self) -> list[str]:
        return (await self._inventory()).node_ids

    async def current_metrics(self) -> list[NodeMetrics]:
        inventory = await self._inventory()
        return await self._read(inventory, inventory.node_ids, everything=True)

    async def node_metrics(self, node_id: str) -> NodeMetrics:
        inventory = await self._known(node_id)
        return (await self._read(inventory, [node_id]))[0]

    async def nodes_metrics(self, node_ids: Sequence[str]) -> list[NodeMetrics]:
        inventory = await self._inventory()
        return await self._read(inventory, [n for n in node_ids if n in inventory.nodes])

    async def _read(self, inventory: Inventory, node_ids: list[str], *, everything: bool = False) -> list[NodeMetrics]:
        if not node_ids:
            return []
        instances = None if everything else inventory.instances_of(node_ids)
        now = self.client.now()
        q = self.promql
        fields, last, xids, ib, gaps = await asyncio.gather(
            self._query(q.gpu_fields(instances)), self._query(q.last_values(instances, SEEN_WINDOW)),
            self._query(q.xid_history(instances, f"{XID_LOOKBACK_H}h")), self._query(q.ib(instances, SEEN_WINDOW)),
            self._gaps(),
        )
        current, previous = group_gpus(fields, inventory), group_gpus(last, inventory, LAST_VALUE_TAGS)
        events = xid_events(xids, inventory, now - XID_LOOKBACK_H * 3600)
        ports = ib_ports(ib, inventory)
        xids_visible = not any(line.startswith("XID errors") for line in gaps)
        stamp = datetime.fromtimestamp(now, UTC)
        nodes = []
        for node_id in node_ids:
            targets = inventory.nodes[node_id]
            if targets.gpu_exporter_down and targets.reachable:
                note(f"{node_id}: its dcgm-exporter is not answering Prometheus (up 0), so its GPUs read as stale; "
                     "restart dcgm-exporter on the node and check nv-hostengine")
            if not targets.reachable:
                nodes.append(NodeMetrics(node_id=node_id, hostname=node_id, timestamp=stamp, reachable=False))
                continue
            gpus = self._gpus(node_id, current, previous, events, xids_visible, stamp)
            driver = next((r.labels["DCGM_FI_DRIVER_VERSION"] for k, r in current.items()
                           if k[0] == node_id and "DCGM_FI_DRIVER_VERSION" in r.labels), None)
            nodes.append(NodeMetrics(
                node_id=node_id, hostname=node_id, timestamp=stamp, reachable=True, gpus=gpus,
                network=ports.get(node_id) if node_id in ports or targets.node else None,
                driver_version=driver,
            ))
        return nodes

    @staticmethod
    def _gpus(node_id: str, current: dict[tuple[str, int], GpuReading], previous: dict[tuple[str, int], GpuReading],
              events: dict[tuple[str, int], list[Any]], xids_visible: bool, stamp: datetime) -> list[GpuMetrics]:
        gpus = []
        for key in sorted({k for k in (*current, *previous) if k[0] == node_id}, key=lambda k: k[1]):
            reading = current.get(key)
            live = reading is not None and PRESENCE in reading.values
            last_seen = stamp
            if not live:
                # silent now: its last readings, plus what the exporter still says (its last XID)
                stale = previous.get(key) or GpuReading()
                seen = stale.values.pop("last_seen", None)
                last_seen = datetime.fromtimestamp(seen, UTC) if seen else stamp
                for name, value in (reading.values.items() if reading else ()):
                    stale.add(name, reading.labels, value)  # type: ignore[union-attr]
                reading = stale
            assert reading is not None
            gpu = gpu_metrics(key, reading, xid_events=events.get(key, []) if xids_visible else None,
                              stale=not live, last_seen=last_seen)
            if gpu is not None:
                gpus.append(gpu)
        return gpus

    # ---- history -------------------------------------------------------------------------------------

    async def gpu_history(self, node_id: str | None = None, duration_minutes: int = 60) -> list[GpuSeries]:
        if duration_minutes <= 0:
            raise ValueError("duration_minutes must be a positive number of minutes")
        if node_id is None:
            inventory = await self._inventory()
            return await self._history(inventory, None, duration_minutes)
        inventory = await self._known(node_id)
        return await self._history(inventory, [node_id], duration_minutes)

    async def nodes_history(self, node_ids: Sequence[str], duration_minutes: int = 60) -> list[GpuSeries]:
        inventory = await self._inventory()
        wanted = [n for n in node_ids if n in inventory.nodes]
        return await self._history(inventory, wanted, duration_minutes) if wanted else []

    async def _history(self, inventory: Inventory, node_ids: list[str] | None, minutes: int) -> list[GpuSeries]:
        seconds = minutes * 60
        gpus = sum(t.gpus_seen for n, t in inventory.nodes.items() if node_ids is None or n in node_ids)
        step = max(15.0, seconds / 120, seconds * max(gpus, 1) * len(HISTORY_FIELDS) / MAX_HISTORY_POINTS)
        instances = None if node_ids is None else inventory.instances_of(node_ids)
        rows = await self.client.query_range(self.promql.history(instances), seconds, round(step))
        return gpu_series(rows, inventory)

    # ---- the screen ------------------------------------------------------------------------------------

    async def diagnosis_scope(self, history_minutes: int, node: str | None = None) -> DiagnosisScope:
        q = self.promql
        inventory, _, medians = await asyncio.gather(
            self._inventory(), self._gaps(), self._query(q.link_downed_medians())
        )
        reasons: dict[str, list[str]] = {}
        if node is None:
            for row in await self._screen(history_minutes):
                reasons.setdefault(inventory.node_of(row["metric"]), []).append(row["metric"].get("gpudoc", "?"))
            for name, targets in inventory.nodes.items():
                if not targets.reachable:
                    reasons.setdefault(name, []).append("host_down")
                elif targets.gpu_exporter_down:
                    reasons.setdefault(name, []).append("gpu_exporter_down")
            focus = [n for n in inventory.node_ids if n in reasons]
        else:
            focus = [node]
        return DiagnosisScope(
            focus=focus, node_ids=inventory.node_ids,
            gpu_count=sum(t.gpus_seen for t in inventory.nodes.values() if t.reachable),
            reasons={n: sorted(set(r)) for n, r in reasons.items()},
            link_downed_medians={f"{row['metric'].get('device')}/{row['metric'].get('port', '1')}":
                                 float(row["value"][1]) for row in medians},
        )

    async def _screen(self, history_minutes: int) -> list[dict[str, Any]]:
        """The screen's rows, from the recording rule when Prometheus keeps it (a selector aside: the
        recorded screen spans every cluster of that Prometheus), else evaluated now."""
        if not self.promql.selector:
            recorded = await self._query(self.promql.recorded_screen())
            if any(row["metric"].get("gpudoc") == SCREEN_MARKER for row in recorded):
                return [row for row in recorded if "instance" in row["metric"]]
        rows = await self._query(self.promql.triage(f"{history_minutes}m", f"{XID_LOOKBACK_H}h"))
        return [row for row in rows if "instance" in row["metric"]]

    # ---- the cluster at a glance -------------------------------------------------------------------------

    async def cluster_status(self) -> ClusterStatus:
        inventory, rows, slurm = await asyncio.gather(
            self._inventory(), self._query(self.promql.summary()), self.slurm()
        )
        v = {row["metric"].get("gpudoc", ""): float(row["value"][1]) for row in rows}
        reachable = [t for t in inventory.nodes.values() if t.reachable]
        expected = sum(t.gpus_seen for t in reachable)
        live = int(v.get("gpus", 0))
        total_mib = v.get("fb_total") or (v.get("fb_used", 0) + v.get("fb_free", 0) + v.get("fb_reserved", 0))
        healthy = (len(reachable) == len(inventory.nodes) and not any(t.gpu_exporter_down for t in reachable)
                   and live >= expected and not v.get("critical_alerts"))
        return ClusterStatus(
            healthy=healthy, node_count=len(inventory.nodes), gpu_count=max(expected, live),
            avg_utilization_pct=round(v.get("util", 0.0), 1), avg_temperature_c=round(v.get("temp", 0.0), 1),
            memory_used_gb=round(v.get("fb_used", 0.0) / 1024, 1), memory_total_gb=round(total_mib / 1024, 1),
            slurm=SlurmSummary.of(slurm) if slurm is not None else None, last_updated=self._stamp(),
        )

    async def slurm(self) -> SlurmSnapshot | None:
        """Prometheus holds no scheduler state; a Slurm source composed with this one provides it."""
        return None

    # ---- alerting ------------------------------------------------------------------------------------------

    async def alert_rules(self) -> list[AlertRule]:
        return rules_from(await self.client.api_get("/api/v1/rules", {"type": "alert"}))

    async def alert_history(self, limit: int = 50) -> list[AlertEvent]:
        if limit <= 0:
            return []
        firing = self.promql.s("ALERTS", 'alertstate="firing"')
        inventory, history, active = await asyncio.gather(
            self._inventory(), self.client.query_range(firing, ALERT_HISTORY_H * 3600, ALERT_STEP_S),
            self.client.api_get("/api/v1/alerts"),
        )
        events, labels_of = alert_events(history, active, inventory, self.client.now(), ALERT_STEP_S)
        if self.client.alertmanager_url is not None:
            try:
                events = mark_silenced(events, labels_of, await self.client.alertmanager("/api/v2/alerts"))
            except SourceError:
                pass  # silences are extra knowledge; alerts stand without them (silences() reports the failure)
        return events[:limit]

    async def silences(self) -> list[Silence] | None:
        if self.client.alertmanager_url is None:
            return None
        return silences_from(await self.client.alertmanager("/api/v2/silences"))

    async def aclose(self) -> None:
        await self.client.aclose()
