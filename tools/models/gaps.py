"""Signal gaps: what a source cannot see about a node, and what would make it visible.

Why a fact of its own: every optional reading is ``None`` when a source does not report it, and
``None`` alone cannot tell "this exporter is configured without row-remap fields" from "this GPU
has no remapped rows". A ``SignalGap`` on a node says which signal is missing, why, and how an
operator turns it on, so the tools and the diagnosis can say "not examined: remap pending (enable
DCGM_FI_DEV_ROW_REMAP_PENDING with infra/dcgm-exporter/gpudoc-counters.csv)" instead of a silent
"no finding". Sources fill ``NodeMetrics.gaps``; the diagnosis lists each distinct gap once.
"""

from __future__ import annotations

from gpudoc.tools.models.base import Model


class SignalGap(Model):
    """One signal a source does not report for a node (the same gap usually holds cluster-wide)."""

    signal: str
    """what is missing, in operator words with the metric name: ``"row remap pending
    (DCGM_FI_DEV_ROW_REMAP_PENDING)"``"""
    reason: str
    """why: ``"off in dcgm-exporter's default counters"``, ``"not carried by the GPU Watchdog API"``"""
    remedy: str | None = None
    """how to get it, when there is a way: ``"add it to the exporter's counters CSV (-f
    infra/dcgm-exporter/gpudoc-counters.csv)"``"""

    def describe(self) -> str:
        """One line for reports: ``"<signal>: <reason>; <remedy>"``."""
        text = f"{self.signal}: {self.reason}"
        return f"{text}; {self.remedy}" if self.remedy else text
