"""GPU history summarised as evidence: what ``get_gpu_history`` returns.

Why summaries rather than series: an hour of one node is 8 x 60 samples of six fields; a small
model reads the raw series poorly and slowly. What an operator needs from a history is its
range, where it ends, where it is heading, which limits it crossed and which counters moved,
plus a few points to draw. Those are computed here, deterministically.

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
``per_10min`` is the least-squares slope in units per 10 minutes,
given only when ``trend`` is ``rising`` or ``falling`` (the slope beats
``TREND_FLAT_PER_10MIN``); a ``flat`` trend has no slope. Flags are facts with their numbers:
temperature at or above the model's limits, utilisation at 0 % for ``ZERO_UTIL_MIN_MINUTES``
or more, a series that stopped before the others. Absent facts (no clock history, no
counters) are omitted, never zero.

For all nodes the result is one line per node (``summarise_node_overview``) instead, so it
scales to large clusters; each entry says which GPUs to look at with ``node_id``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from statistics import fmean, median
from typing import Any, Sequence

from gpudoc.tools.compact import dumps, fit_list, fit_to_budget, hhmm, iso, payload_budget, r1, rint, without_none
from gpudoc.tools.models import GpuModelSpec, GpuSample, GpuSeries, spec_for_model_name

POINT_FIELDS: tuple[str, ...] = ("time", "temp_c", "util_pct", "power_w")
CHART_POINTS = 12
#: Point counts tried in turn when a node's history would exceed the output budget.
CHART_POINT_STEPS: tuple[int, ...] = (CHART_POINTS, 10, 8, 6)

#: A slope smaller than this (units per 10 minutes) is "flat": sensor noise, not a trend.
TREND_FLAT_PER_10MIN: dict[str, float] = {
    "temp_c": 1.0,
    "util_pct": 5.0,
    "power_w": 10.0,
    "sm_clock_mhz": 50.0,
}

#: Utilisation below this counts as "0 %" (domain.md §7.12: a hang shows 0 % for 10+ minutes).
ZERO_UTIL_PCT = 1.0
ZERO_UTIL_MIN_MINUTES = 10.0

#: Counters whose movement over the window is evidence (row remaps, link and bus errors).
COUNTER_NAMES: dict[str, str] = {
    "correctable_remapped_rows": "corr_remapped_rows",
    "nvlink_error_count": "nvlink_errors",
    "pcie_replay_count": "pcie_replays",
}


@dataclass
class GpuHistoryFacts:
    """One GPU's summary plus the few numbers the per-node overview ranks by."""

    gpu: int
    summary: dict[str, Any]
    temp_max: float
    temp_last: float
    temp_per_10min: float | None
    zero_util_minutes: float
    whole_window_idle: bool
    flags: list[str] = field(default_factory=list)


def _minutes_since(start: datetime, moment: datetime) -> float:
    return (moment - start).total_seconds() / 60.0


def sample_interval_minutes(samples: Sequence[GpuSample]) -> float:
    """The typical spacing of a series (median gap), 1 minute when it cannot be told."""
    if len(samples) < 2:
        return 1.0
    gaps = [_minutes_since(a.timestamp, b.timestamp) for a, b in zip(samples, samples[1:])]
    positive = [gap for gap in gaps if gap > 0]
    return median(positive) if positive else 1.0


def slope_per_10min(minutes: Sequence[float], values: Sequence[float]) -> float | None:
    """Least-squares slope in units per 10 minutes; ``None`` for fewer than 2 distinct times."""
    if len(values) < 2:
        return None
    mean_t = fmean(minutes)
    mean_v = fmean(values)
    spread = sum((t - mean_t) ** 2 for t in minutes)
    if spread == 0:
        return None
    covariance = sum((t - mean_t) * (v - mean_v) for t, v in zip(minutes, values))
    return covariance / spread * 10.0


def trend_word(per_10min: float | None, flat_below: float) -> str | None:
    if per_10min is None:
        return None
    if per_10min >= flat_below:
        return "rising"
    if per_10min <= -flat_below:
        return "falling"
    return "flat"


def metric_stats(
    minutes: Sequence[float],
    values: Sequence[float],
    metric: str,
    *,
    integer: bool = False,
    keys: tuple[str, ...] = ("min", "avg", "max", "last"),
) -> dict[str, Any]:
    """Statistics of one metric over a window, plus its trend.

    ``per_10min`` is given only when the trend is rising or falling: a flat slope is noise.
    """
    fmt = rint if integer else r1
    available = {
        "min": lambda: min(values),
        "avg": lambda: fmean(values),
        "max": lambda: max(values),
        "last": lambda: values[-1],
    }
    stats: dict[str, Any] = {key: fmt(available[key]()) for key in keys}
    slope = slope_per_10min(minutes, values)
    word = trend_word(slope, TREND_FLAT_PER_10MIN[metric])
    if slope is not None and word != "flat":
        stats["per_10min"] = fmt(slope)
    if word is not None:
        stats["trend"] = word
    return stats


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


def _stretches(flags: Sequence[bool]) -> list[tuple[int, int]]:
    """Index ranges ``[first, last]`` of consecutive ``True`` values."""
    runs: list[tuple[int, int]] = []
    begin: int | None = None
    for index, flag in enumerate(flags):
        if flag and begin is None:
            begin = index
        elif not flag and begin is not None:
            runs.append((begin, index - 1))
            begin = None
    if begin is not None:
        runs.append((begin, len(flags) - 1))
    return runs


def _run_minutes(samples: Sequence[GpuSample], run: tuple[int, int], interval: float) -> float:
    first, last = run
    return _minutes_since(samples[first].timestamp, samples[last].timestamp) + interval


def temperature_flags(samples: Sequence[GpuSample], spec: GpuModelSpec | None, interval: float) -> list[str]:
    """Time spent at or above the model's temperature limits, highest limit reached only."""
    if spec is None:
        return []
    limits = (
        ("shutdown", spec.shutdown_temp_c),
        ("slowdown", spec.slowdown_temp_c),
        ("max operating", spec.max_operating_temp_c),
    )
    temps = [s.temperature_c for s in samples]
    for label, limit in limits:
        over = [t >= limit for t in temps]
        runs = _stretches(over)
        if not runs:
            continue
        minutes = sum(_run_minutes(samples, run, interval) for run in runs)
        first = samples[runs[0][0]].timestamp
        return [
            f"temp >= {limit:.1f} °C ({label}) for {minutes:.0f} min, "
            f"first {hhmm(first)}, peak {max(temps):.1f} °C"
        ]
    return []


def zero_util_stretch(samples: Sequence[GpuSample], interval: float) -> tuple[float, str | None]:
    """Longest run at 0 % utilisation, in minutes, and its flag when it is long enough to matter."""
    runs = _stretches([s.utilization_pct < ZERO_UTIL_PCT for s in samples])
    if not runs:
        return 0.0, None
    longest = max(runs, key=lambda run: _run_minutes(samples, run, interval))
    minutes = _run_minutes(samples, longest, interval)
    if minutes < ZERO_UTIL_MIN_MINUTES:
        return minutes, None
    if longest == (0, len(samples) - 1):
        return minutes, f"util 0% for the whole window ({minutes:.0f} min)"
    start, end = samples[longest[0]].timestamp, samples[longest[1]].timestamp
    return minutes, f"util 0% for {minutes:.0f} min ({hhmm(start)}-{hhmm(end)})"


def counter_changes(samples: Sequence[GpuSample]) -> dict[str, dict[str, int]]:
    """Counters that moved over the window: start, end and delta."""
    changes: dict[str, dict[str, int]] = {}
    for attribute, label in COUNTER_NAMES.items():
        values = [getattr(s, attribute) for s in samples if getattr(s, attribute) is not None]
        if len(values) < 1 or values[-1] == values[0]:
            continue
        changes[label] = {"start": values[0], "end": values[-1], "delta": values[-1] - values[0]}
    return changes


def summarise_gpu_series(
    series: GpuSeries, spec: GpuModelSpec | None, window_end: datetime
) -> GpuHistoryFacts | None:
    """One GPU's history as evidence (chart points are added per node); ``None`` without samples."""
    samples = series.samples
    if not samples:
        return None
    start = samples[0].timestamp
    minutes = [_minutes_since(start, s.timestamp) for s in samples]
    interval = sample_interval_minutes(samples)

    temps = [s.temperature_c for s in samples]
    summary: dict[str, Any] = {
        "gpu": series.gpu_index,
        "samples": len(samples),
        "temp_c": metric_stats(minutes, temps, "temp_c"),
        "util_pct": metric_stats(minutes, [s.utilization_pct for s in samples], "util_pct"),
        "power_w": metric_stats(minutes, [s.power_w for s in samples], "power_w"),
        "mem_used_mib": {
            "min": rint(min(s.memory_used_mib for s in samples)),
            "max": rint(max(s.memory_used_mib for s in samples)),
            "last": rint(samples[-1].memory_used_mib),
        },
    }
    clocks = [(t, s.sm_clock_mhz) for t, s in zip(minutes, samples) if s.sm_clock_mhz is not None]
    if clocks:
        summary["sm_clock_mhz"] = metric_stats(
            [t for t, _ in clocks],
            [c for _, c in clocks],
            "sm_clock_mhz",
            integer=True,
            keys=("min", "avg", "last"),  # the max is the boost clock: no evidence
        )
    counters = counter_changes(samples)
    if counters:
        summary["counters"] = counters

    flags = temperature_flags(samples, spec, interval)
    idle_minutes, idle_flag = zero_util_stretch(samples, interval)
    if idle_flag:
        flags.append(idle_flag)
    silent_for = _minutes_since(samples[-1].timestamp, window_end)
    if silent_for > max(2 * interval, 2.0):
        flags.append(
            f"series stopped at {hhmm(samples[-1].timestamp)} ({silent_for:.0f} min before the window end)"
        )
    if flags:
        summary["flags"] = flags

    return GpuHistoryFacts(
        gpu=series.gpu_index,
        summary=summary,
        temp_max=max(temps),
        temp_last=temps[-1],
        temp_per_10min=r1(slope_per_10min(minutes, temps)),
        zero_util_minutes=idle_minutes,
        whole_window_idle=bool(idle_flag and "whole window" in idle_flag),
        flags=flags,
    )


def window_range(series: Sequence[GpuSeries]) -> tuple[datetime, datetime] | None:
    """First and last sample time over all series, ``None`` when there are no samples."""
    starts = [s.samples[0].timestamp for s in series if s.samples]
    ends = [s.samples[-1].timestamp for s in series if s.samples]
    if not starts:
        return None
    return min(starts), max(ends)


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
