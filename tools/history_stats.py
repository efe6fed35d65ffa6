"""GPU history reduced to statistics and flags: the evidence in ``get_gpu_history``'s answer.

Deterministic numbers from one GPU's samples: range, average and last value, the least-squares
slope and the trend it means, counters that moved, and flags (facts with their numbers) for time
spent at or above the model's temperature limits, long stretches at 0 % utilisation and a series
that stopped before the others. ``tools/render_history.py`` shapes these into what the model sees.

``per_10min`` is the least-squares slope in units per 10 minutes, given only when ``trend`` is
``rising`` or ``falling`` (the slope beats ``TREND_FLAT_PER_10MIN``); a ``flat`` trend has no
slope. Utilisation counts as 0 % for a flag after ``ZERO_UTIL_MIN_MINUTES`` or more. Absent facts
(no clock history, no counters) are omitted, never zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from statistics import fmean, median
from typing import Any, Sequence

from gpudoc.tools.compact import hhmm, r1, rint
from gpudoc.tools.models import GpuModelSpec, GpuSample, GpuSeries

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
