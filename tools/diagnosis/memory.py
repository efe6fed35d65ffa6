"""HBM health from row remapping (A100/H100): uncorrectable remaps, pending remaps, failures, trends.

Why remaps and not retired pages: on A100/H100 a failing HBM row is remapped to a spare; the
remap applies at the next GPU reset (``remap_pending``), and when a bank has no spare left the
remap fails, which is an RMA condition (domain.md §3, §7.2-7.4).
"""

from __future__ import annotations

from gpudoc.tools.diagnosis.facts import ClusterFacts, counter_climb
from gpudoc.tools.diagnosis.findings import Finding
from gpudoc.tools.diagnosis.rules import finding, gpu_subject, num
from gpudoc.tools.models import GpuMetrics, GpuSeries

#: correctable remapped rows gained within the history window that make a trend worth a warning
CORRECTABLE_ROWS_TREND = 2


def analyze_memory(facts: ClusterFacts) -> list[Finding]:
    findings: list[Finding] = []
    for node in facts.nodes:
        for gpu in node.gpus:
            findings.extend(_gpu_memory_findings(gpu, facts.series(gpu.node_id, gpu.index)))
    return findings


def _rows(gpu: GpuMetrics) -> str:
    parts = []
    if gpu.correctable_remapped_rows is not None:
        parts.append(f"correctable remapped rows {gpu.correctable_remapped_rows}")
    if gpu.uncorrectable_remapped_rows is not None:
        parts.append(f"uncorrectable remapped rows {gpu.uncorrectable_remapped_rows}")
    if gpu.remap_pending is not None:
        parts.append(f"remap pending {'yes' if gpu.remap_pending else 'no'}")
    if gpu.ecc_dbe_volatile:
        parts.append(f"volatile double-bit ECC {gpu.ecc_dbe_volatile}")
    return ", ".join(parts)


def _gpu_memory_findings(gpu: GpuMetrics, series: GpuSeries | None) -> list[Finding]:
    subject = gpu_subject(gpu.node_id, gpu.index)
    findings: list[Finding] = []
    uncorrectable = gpu.uncorrectable_remapped_rows or 0
    if gpu.remap_failure:
        findings.append(finding(
            "gpu.row_remap_failure", "critical", subject, "HBM row remap failure: no spare row left",
            ["row remap failure flag set", _rows(gpu)],
            "an HBM bank ran out of spare rows; the failing memory cannot be repaired",
            "keep the node drained, run field diagnostics (dcgmi diag -r 3), open an RMA",
        ))
    elif uncorrectable > 0 and gpu.remap_pending:
        findings.append(finding(
            "gpu.ecc_uncorrectable", "critical", subject,
            "uncorrectable HBM error, row remap waiting for a GPU reset",
            [_rows(gpu)],
            "an uncorrectable memory error; the bad row is only replaced after a reset",
            "drain the node and reset the GPU so the remap applies; RMA if errors recur",
        ))
    elif gpu.remap_pending:
        findings.append(finding(
            "gpu.remap_pending", "warning", subject, "row remap pending: GPU needs a reset", [_rows(gpu)],
            "an HBM row was marked for remapping; it takes effect at the next reset",
            "reset the GPU at the next convenient time (drain, wait for jobs, nvidia-smi -r)",
        ))
    elif gpu.ecc_dbe_volatile:
        findings.append(finding(
            "gpu.ecc_uncorrectable", "critical", subject, "double-bit ECC errors since the last reset",
            [_rows(gpu)], "uncorrectable memory errors", "drain the node and reset the GPU",
        ))
    elif uncorrectable > 0 and gpu.remap_pending is None:
        findings.append(finding(
            "gpu.remapped_rows_in_use", "warning", subject,
            f"{uncorrectable} uncorrectable remapped row(s); whether a remap still waits for a reset is unknown",
            [_rows(gpu), "remap pending state not reported (DCGM_FI_DEV_ROW_REMAP_PENDING is off in "
             "dcgm-exporter's default counters)"],
            "uncorrectable memory errors, repaired by remapping once the GPU is reset",
            "check nvidia-smi -q -d ROW_REMAPPER on the node; reset the GPU if a remap is pending; "
            "enable DCGM_FI_DEV_ROW_REMAP_PENDING (infra/dcgm-exporter/gpudoc-counters.csv)",
        ))
    elif uncorrectable > 0:
        findings.append(finding(
            "gpu.remapped_rows_in_use", "info", subject,
            f"{uncorrectable} uncorrectable remapped row(s) in use (applied)", [_rows(gpu)],
            "earlier memory errors that were repaired by remapping",
            "nothing now; an increase is a reason to drain and reset",
        ))
    trend = _correctable_trend(gpu, series)
    if trend is not None:
        first, last, minutes = trend
        evidence = [f"correctable remapped rows {first} -> {last} (+{last - first}) in {num(minutes, 0)} min"]
        if gpu.ecc_sbe_volatile is not None:
            evidence.append(f"volatile single-bit ECC count {gpu.ecc_sbe_volatile}")
        findings.append(finding(
            "gpu.ecc_correctable_storm", "warning", subject, "correctable HBM errors rising",
            evidence,
            "a weakening HBM region producing correctable errors; a precursor of uncorrectable ones",
            "watch the trend; plan a reset and field diagnostics; drain if uncorrectable errors appear",
        ))
    return findings


def _correctable_trend(gpu: GpuMetrics, series: GpuSeries | None) -> tuple[int, int, float] | None:
    climb = counter_climb(series, "correctable_remapped_rows")
    if climb is None:
        return None
    last = climb.last
    if gpu.correctable_remapped_rows is not None and not gpu.stale:
        last = max(last, gpu.correctable_remapped_rows)
    if last - climb.first < CORRECTABLE_ROWS_TREND:
        return None
    return climb.first, last, climb.minutes
