"""Small SVG charts written as text: horizontal bars, stacked bars, chip rows, a scatter plot.

Why hand-written SVG: the evaluation report must be one self-contained file that opens anywhere
(no remote scripts, no plotting library, no JavaScript), and these four shapes are all it needs.
Every label goes through ``html.escape``: case ids are ours, but answers and tool arguments quote
cluster text written by users.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape
from typing import Sequence

PASS = "#2e7d32"
FAIL = "#c62828"
NEUTRAL = "#9e9e9e"
GRID = "#e0e0e0"
#: one colour per tool, in TOOL_NAMES order; unknown tools get NEUTRAL
TOOL_COLOURS = ("#1565c0", "#00838f", "#6a1b9a", "#ef6c00", "#ad1457", "#5d4037", "#2e7d32", "#9e9d24", "#283593")


def _svg(width: int, height: int, body: str, label: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
            f'height="{height}" role="img" aria-label="{escape(label)}">{body}</svg>')


def _text(x: float, y: float, text: str, *, anchor: str = "start", size: int = 12, fill: str = "#212121",
          css: str = "") -> str:
    klass = f' class="{css}"' if css else ""
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" fill="{fill}"{klass}>'
            f"{escape(text)}</text>")


def _bar(x: float, y: float, width: float, height: float, fill: str, tooltip: str) -> str:
    """One bar of a bar chart, with its value as a hover tooltip (``tooltip`` is escaped here,
    since it quotes labels). Why shared: every bar chart of the report must look and hover alike."""
    return (f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" height="{height:.1f}" '
            f'fill="{fill}"><title>{escape(tooltip)}</title></rect>')


@dataclass(frozen=True)
class Bar:
    label: str
    value: float  # 0..1
    note: str = ""


def rate_bars(bars: Sequence[Bar], *, title: str, width: int = 560, row: int = 22) -> str:
    """Horizontal bars of rates (0..1): green from 90 %, amber from 50 %, red below; 90 % dashed."""
    label_w, value_w = 190, 70
    plot_w = width - label_w - value_w
    height = row * len(bars) + 28
    parts = [_text(label_w, 14, "0%", anchor="middle", size=10, fill="#616161"),
             _text(label_w + plot_w, 14, "100%", anchor="middle", size=10, fill="#616161")]
    for tick in (0.0, 0.5, 0.9, 1.0):
        x = label_w + plot_w * tick
        parts.append(f'<line x1="{x:.1f}" y1="20" x2="{x:.1f}" y2="{height - 4}" stroke="{GRID}" '
                     f'stroke-dasharray="{"4 3" if tick == 0.9 else "0"}"/>')
    for index, bar in enumerate(bars):
        y = 22 + index * row
        colour = PASS if bar.value >= 0.9 else "#f9a825" if bar.value >= 0.5 else FAIL
        parts.append(_text(label_w - 8, y + row * 0.65, bar.label, anchor="end"))
        parts.append(_bar(label_w, y + 3, max(plot_w * bar.value, 1.5), row - 7, colour,
                          f"{bar.label}: {bar.value:.0%} {bar.note}"))
        parts.append(_text(label_w + plot_w + 6, y + row * 0.65, f"{bar.value:.0%} {bar.note}", size=11))
    return _svg(width, height, "".join(parts), title)


@dataclass(frozen=True)
class Stack:
    label: str
    passed: int
    failed: int


def stacked_bars(stacks: Sequence[Stack], *, title: str, width: int = 560, row: int = 22) -> str:
    """Passed (green) and failed (red) counts per row, scaled to the largest row."""
    label_w, value_w = 110, 80
    plot_w = width - label_w - value_w
    most = max((s.passed + s.failed for s in stacks), default=1) or 1
    height = row * len(stacks) + 8
    parts = []
    for index, stack in enumerate(stacks):
        y = 4 + index * row
        passed_w = plot_w * stack.passed / most
        failed_w = plot_w * stack.failed / most
        parts.append(_text(label_w - 8, y + row * 0.65, stack.label, anchor="end"))
        parts.append(_bar(label_w, y + 3, passed_w, row - 7, PASS, f"{stack.label}: {stack.passed} passed"))
        parts.append(_bar(label_w + passed_w, y + 3, failed_w, row - 7, FAIL, f"{stack.label}: {stack.failed} failed"))
        parts.append(_text(label_w + passed_w + failed_w + 6, y + row * 0.65, f"{stack.passed}/{stack.passed + stack.failed}",
                           size=11))
    return _svg(width, height, "".join(parts), title)


@dataclass(frozen=True)
class Chip:
    tool: str
    failed: bool = False
    gap_before: bool = False  # a new turn starts here


def chip_rows(rows: Sequence[tuple[str, bool, Sequence[Chip]]], tools: Sequence[str], *, title: str,
              width: int = 1100, row: int = 18) -> str:
    """One row per case: its tool calls in order as coloured chips (outlined red: the call failed)."""
    label_w, chip_w, gap = 250, 26, 10
    colours = {tool: TOOL_COLOURS[i % len(TOOL_COLOURS)] for i, tool in enumerate(tools)}
    legend_h = 26
    height = legend_h + row * len(rows) + 6
    parts = []
    x = 4
    for tool in tools:
        parts.append(f'<rect x="{x}" y="6" width="12" height="12" fill="{colours[tool]}"/>')
        parts.append(_text(x + 16, 16, tool, size=10))
        x += 22 + 6.2 * len(tool)
    for index, (label, passed, chips) in enumerate(rows):
        y = legend_h + index * row
        parts.append(_text(label_w - 22, y + row * 0.7, label, anchor="end", size=11))
        parts.append(f'<circle cx="{label_w - 12}" cy="{y + row / 2:.1f}" r="4" fill="{PASS if passed else FAIL}"/>')
        x = label_w
        for chip in chips:
            x += gap if chip.gap_before else 0
            stroke = f' stroke="{FAIL}" stroke-width="2"' if chip.failed else ""
            parts.append(f'<rect class="chip" x="{x}" y="{y + 2}" width="{chip_w - 3}" height="{row - 5}" rx="3" '
                         f'fill="{colours.get(chip.tool, NEUTRAL)}"{stroke}><title>{escape(chip.tool)}'
                         f'{" (failed)" if chip.failed else ""}</title></rect>')
            x += chip_w
    return _svg(width, height, "".join(parts), title)


@dataclass(frozen=True)
class Point:
    label: str
    x: float
    y: float
    passed: bool


def scatter(points: Sequence[Point], *, title: str, x_label: str, y_label: str, width: int = 560,
            height: int = 300) -> str:
    """Points on linear axes from zero, green passed, red failed, with five ticks per axis."""
    left, bottom, top, right = 56, 40, 12, 16
    plot_w, plot_h = width - left - right, height - top - bottom
    x_max = nice_ceiling(max((p.x for p in points), default=1))
    y_max = nice_ceiling(max((p.y for p in points), default=1))
    parts = [f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#616161"/>',
             f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#616161"/>']
    for step in range(5):
        fx, fy = left + plot_w * step / 4, top + plot_h - plot_h * step / 4
        parts.append(f'<line x1="{fx:.1f}" y1="{top}" x2="{fx:.1f}" y2="{top + plot_h}" stroke="{GRID}"/>')
        parts.append(f'<line x1="{left}" y1="{fy:.1f}" x2="{left + plot_w}" y2="{fy:.1f}" stroke="{GRID}"/>')
        parts.append(_text(fx, top + plot_h + 14, _compact(x_max * step / 4), anchor="middle", size=10))
        parts.append(_text(left - 6, fy + 4, _compact(y_max * step / 4), anchor="end", size=10))
    parts.append(_text(left + plot_w / 2, height - 6, x_label, anchor="middle", size=11))
    parts.append(f'<text x="14" y="{top + plot_h / 2:.1f}" font-size="11" text-anchor="middle" '
                 f'transform="rotate(-90 14 {top + plot_h / 2:.1f})">{escape(y_label)}</text>')
    for point in points:
        cx = left + plot_w * point.x / x_max
        cy = top + plot_h - plot_h * point.y / y_max
        parts.append(f'<circle class="point" cx="{cx:.1f}" cy="{cy:.1f}" r="4" fill="{PASS if point.passed else FAIL}" '
                     f'fill-opacity="0.75"><title>{escape(point.label)}: {_compact(point.x)} {escape(x_label)}, '
                     f'{_compact(point.y)} {escape(y_label)}</title></circle>')
    return _svg(width, height, "".join(parts), title)


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 4, 6, 8 x 10^k at or above ``value``: an axis with four round ticks."""
    if value <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(value))
    return next(step * magnitude for step in (1, 2, 4, 6, 8, 10) if step * magnitude >= value)


def _compact(value: float) -> str:
    if value >= 10_000:
        return f"{value / 1000:.0f}k"
    if value >= 1000:
        return f"{value / 1000:.1f}k"
    if value >= 10:
        return f"{value:.0f}"
    return f"{value:.2g}"
