"""GPU history rendered for the model: what ``get_gpu_history`` returns.

Why summaries rather than series: an hour of one node is 8 x 60 samples of six fields; a small
model reads the raw series poorly and slowly. What an operator needs from a history is its
range, where it ends, where it is heading, which limits it crossed and which counters moved,
plus a few points to draw. The statistics and flags come from ``tools/history_stats.py``; this
module adds the chart points and fits the result to the output budget.

Shape for one node (``get_gpu_history(node_id="node-2")``), stable for the chat page's chart::

    {"node":"node-2",
     "range":{"start":"2025-01-31T11:01:00Z","end":"2025-01-31T12:00:00Z","minutes":60},
     "duration_note":"duration_minutes 5000 clamped to 1440",        # only when clamped
     "model":"NVIDIA A100-SXM4-80GB",
     "limits_c":{"max_operating":85.0,"slowdown":89.0,"shutdown":92.0},  # absent if model unknown
     "point_fields":["time","temp_c","util_pct","power_w"],
     "gpus":[
       {"gpu":3,"samples":60,
        "temp_c":{"min":70.1,"avg":79.4,"max":89.2,"last":89.2,"per_10min":3.1,"trend":"rising"},
        "util_pct":{"min":73.1,"avg":76.0,"max":79.4,"last":78.9,"trend":"flat"},
        "power_w":{...same keys as util_pct...},
        "mem_used_mib":{"min":60100,"max":61200,"last":61200},
        "sm_clock_mhz":{"min":705,"avg":1200,"last":705,"per_10min":-76,"trend":"falling"},  # if known
        "counters":{"corr_remapped_rows":{"start":0,"end":12,"delta":12}}, # only counters that moved
        "flags":["temp >= 85.0 °C (max operating) for 14 min, first 11:47, peak 89.2 °C"],
        "points":[["11:05",71.2,93,312], ...]}]}                          # up to CHART_POINTS

``points`` rows follow ``point_fields``: the clock time (UTC, ``HH:MM``) at the end of a
bucket, then the bucket's mean temperature (0.1 °C), utilisation (%) and power (W), the last
two as integers, which is all a chart resolves. Buckets split the node's window into
``CHART_POINTS`` equal spans of time (fewer, per ``CHART_POINT_STEPS``, when a busy node's
summary needs the room), oldest first, so all GPUs of a node share the same time labels; a
series that stopped early has no rows after it stopped (place points by time, not by index).
What ``per_10min``, ``trend`` and the flags mean is said in ``tools/history_stats.py``.

For all nodes the result is one line per node (``summarise_node_overview``) instead, so it
scales to large clusters; each entry says which GPUs to look at with ``node_id``.
"""

from __future__ import annotations

from datetime import datetime
from statistics import fmean
from typing import Any, Sequence

from gpudoc.tools.compact import dumps, fit_list, fit_to_budget, hhmm, iso, payload_budget, r1, rint, without_none
from gpudoc.tools.history_stats import TREND_FLAT_PER_10MIN, GpuHistoryFacts, summarise_gpu_series, window_range
from gpudoc.tools.models import GpuModelSpec, GpuSample, GpuSeries, spec_for_model_name

POINT_FIELDS: tuple[str, ...] = ("time", "temp_c", "util_pct", "power_w")
CHART_POINTS = 12
#: Point counts tried in turn when a node's history would exceed the output budget.
CHART_POINT_STEPS: tuple[int, ...] = (CHART_POINTS, 10, 8, 6)


def chart_points(
    samples: Sequence[GpuSample],
    count: int = CHART_POINTS,
    window: tuple[datetime, datetime] | None = None,
) -> list[list[Any]]:
    """Bucket means for a chart, rows in ``POINT_FIELDS`` order, oldest first.

    Buckets split ``window`` (the node's whole window; by default the series' own span) into
    ``count`` equal spans of time, so every GPU of a node gets the same time labels, and a
    series that stopped early simply has no rows after it stopped.
    """
    if not samples or count < 1:
        return []
    start, end = window or (samples[0].timestamp, samples[-1].timestamp)
    span = (end - start).total_seconds()
    if span <= 0:
        return [_row(samples[-1].timestamp, samples)]
    buckets: list[list[GpuSample]] = [[] for _ in range(count)]
    for sample in samples:
        position = int((sample.timestamp - start).total_seconds() / span * count)
        buckets[min(max(position, 0), count - 1)].append(sample)
    return [
        _row(start + (end - start) * (index + 1) / count, chunk)
        for index, chunk in enumerate(buckets)
        if chunk
    ]


def _row(moment: datetime, chunk: Sequence[GpuSample]) -> list[Any]:
    return [
        hhmm(moment),
        r1(fmean(s.temperature_c for s in chunk)),
        rint(fmean(s.utilization_pct for s in chunk)),
        rint(fmean(s.power_w for s in chunk)),
    ]


def summarise_node_overview(
    node_id: str, facts: Sequence[GpuHistoryFacts], max_flags: int = 4
) -> dict[str, Any]:
    """One node's history in one entry, for the all-nodes view (no chart points)."""
    temp_avgs = [f.summary["temp_c"]["avg"] for f in facts]
    util_avgs = [f.summary["util_pct"]["avg"] for f in facts]
    power_avgs = [f.summary["power_w"]["avg"] for f in facts]
    power_maxes = [f.summary["power_w"]["max"] for f in facts]
    hottest = max(facts, key=lambda f: f.temp_max)
    entry: dict[str, Any] = {
        "node": node_id,
        "gpus": len(facts),
        "temp_c": {"avg": r1(fmean(temp_avgs)), "max": r1(hottest.temp_max)},
        "util_pct_avg": r1(fmean(util_avgs)),
        "power_w": {"avg": r1(fmean(power_avgs)), "max": r1(max(power_maxes))},
        "hottest_gpu": {
            "gpu": hottest.gpu,
            "max_c": r1(hottest.temp_max),
            "last_c": r1(hottest.temp_last),
            "per_10min": hottest.temp_per_10min,
        },
    }
    rising = [
        f.gpu
        for f in facts
        if f.temp_per_10min is not None and f.temp_per_10min >= TREND_FLAT_PER_10MIN["temp_c"]
    ]
    if rising:
        entry["temp_rising_gpus"] = rising
    idle = [f.gpu for f in facts if f.whole_window_idle]
    if idle:
        entry["idle_whole_window_gpus"] = idle
    flags = [
        f"gpu-{f.gpu}: {flag}"
        for f in facts
        for flag in f.flags
        if not (f.whole_window_idle and flag.startswith("util 0% for the whole window"))
    ]
    if flags:
        entry["flags"] = flags[:max_flags] + (
            [f"+{len(flags) - max_flags} more; pass node_id to see them"] if len(flags) > max_flags else []
        )
    return entry


def overview_priority(entry: dict[str, Any]) -> tuple[float, ...]:
    """Sort key for the all-nodes view: flagged nodes first, then rising, then hottest."""
    return (
        -len(entry.get("flags", [])),
        -len(entry.get("temp_rising_gpus", [])),
        -entry["temp_c"]["max"],
    )


def _range(series: Sequence[GpuSeries], minutes: int) -> dict[str, Any]:
    bounds = window_range(series)
    if bounds is None:
        return {"minutes": minutes}
    return {"start": iso(bounds[0]), "end": iso(bounds[1]), "minutes": minutes}


def _limits(spec: GpuModelSpec | None) -> dict[str, float] | None:
    if spec is None:
        return None
    return {
        "max_operating": spec.max_operating_temp_c,
        "slowdown": spec.slowdown_temp_c,
        "shutdown": spec.shutdown_temp_c,
    }


def render_node_history(
    node_id: str,
    series: Sequence[GpuSeries],
    model: str | None,
    minutes: int,
    duration_note: str | None = None,
) -> dict[str, Any]:
    """``get_gpu_history`` for one node, in the shape of the module docstring."""
    spec = spec_for_model_name(model)
    bounds = window_range(series)
    header = without_none(
        {
            "node": node_id,
            "range": _range(series, minutes),
            "duration_note": duration_note,
            "model": model,
            "limits_c": _limits(spec),
            "point_fields": list(POINT_FIELDS),
        }
    )
    if bounds is None:
        return {**header, "gpus": [], "note": "the source returned no samples for this window"}
    summarised = [
        (one, facts.summary)
        for one in sorted(series, key=lambda s: s.gpu_index)
        if (facts := summarise_gpu_series(one, spec, bounds[1])) is not None
    ]

    # Over budget: fewer chart points first, since the statistics and flags are the evidence.
    for points in CHART_POINT_STEPS:
        gpus = [
            {**summary, "points": chart_points(one.samples, points, bounds)} for one, summary in summarised
        ]
        payload = {**header, "gpus": gpus}
        if len(dumps(payload)) <= payload_budget():
            return payload
    without_points = sorted(
        ({k: v for k, v in g.items() if k != "points"} for g in gpus),
        key=lambda g: -len(g.get("flags", [])),
    )

    def build(shown: int) -> dict[str, Any]:
        left_out = (
            ""
            if shown == len(gpus)
            else f"; showing {shown} of {len(gpus)} GPUs, flagged first; "
            "get_node_details(node_id) lists every GPU"
        )
        return {
            **header,
            "truncated": f"chart points dropped to fit the size budget{left_out}",
            "gpus": without_points[:shown],
        }

    return fit_to_budget(build, len(gpus))


def render_all_nodes_history(
    series: Sequence[GpuSeries],
    models: dict[str, str | None],
    minutes: int,
    duration_note: str | None = None,
) -> dict[str, Any]:
    """``get_gpu_history`` without a node: one entry per node, flagged and hottest first."""
    bounds = window_range(series)
    header = without_none(
        {
            "range": _range(series, minutes),
            "duration_note": duration_note,
            "scope": "all nodes, one entry per node; pass node_id for per-GPU statistics and chart points",
        }
    )
    if bounds is None:
        return {**header, "per_node": [], "note": "the source returned no samples for this window"}
    by_node: dict[str, list[GpuSeries]] = {}
    for one in series:
        by_node.setdefault(one.node_id, []).append(one)
    entries = []
    for node_id, node_series in by_node.items():
        spec = spec_for_model_name(models.get(node_id))
        facts = [f for f in (summarise_gpu_series(s, spec, bounds[1]) for s in node_series) if f is not None]
        if facts:
            entries.append(summarise_node_overview(node_id, facts))
    ranked = sorted(entries, key=overview_priority)

    return fit_list(
        header,
        "per_node",
        ranked,
        lambda shown: f"showing {shown} of {len(ranked)} nodes: flagged first, then rising "
        "temperature, then hottest; pass node_id to see one node",
    )
