"""The answer gpudoc gives when the language model cannot be reached.

Why a deterministic answer rather than an error: this is what a new user sees before pointing
gpudoc at a vLLM, and what an operator gets when the model's own GPUs are the ones in trouble.
The answer is the rule-based diagnosis (scoped to the node the question names), with its
evidence, and it says plainly, first, that no language model wrote it.
"""

from __future__ import annotations

import openai
import httpx

from gpudoc.graph.contracts import ToolCallRecord
from gpudoc.graph.question import named_nodes
from gpudoc.graph.topics import asks_about
from gpudoc.tools.diagnosis.engine import diagnose
from gpudoc.tools.diagnosis.findings import DiagnosisReport, Finding
from gpudoc.tools.compact import free_text
from gpudoc.tools.models import ClusterStatus, NodeMetrics, SlurmSnapshot, clock_event_names, spec_for_model_name
from gpudoc.tools.sources.base import ClusterSource, SourceError, UnknownNodeError

#: rows of the pending-jobs table before the rest is counted instead of listed
PENDING_ROWS = 15

LLM_FAILURES: tuple[type[BaseException], ...] = (openai.APIError, httpx.HTTPError, ConnectionError, TimeoutError)
"""Exceptions that mean "the model endpoint failed", as opposed to a bug in gpudoc."""


def describe_llm_failure(error: BaseException, base_url: str | None) -> str:
    """One line saying what failed and what to check."""
    where = f"LLM endpoint {base_url}" if base_url else "the LLM endpoint"
    if isinstance(error, openai.APITimeoutError) or isinstance(error, TimeoutError):
        return f"{where} timed out; check that vLLM is running and not overloaded (LLM_TIMEOUT_S)."
    if isinstance(error, openai.APIConnectionError) or isinstance(error, (httpx.HTTPError, ConnectionError)):
        return f"{where} is unreachable; start vLLM or set LLM_BASE_URL / --llm-base-url."
    if isinstance(error, openai.APIStatusError):
        detail = (error.message or "").strip().splitlines()[0][:200] if error.message else ""
        return f"{where} answered HTTP {error.status_code}{': ' + detail if detail else ''}."
    return f"{where} failed ({type(error).__name__}: {error})."


def _finding_block(finding: Finding) -> list[str]:
    lines = [f"### {finding.severity.upper()} {finding.subject_label}: {finding.title or finding.rule}"]
    lines += [f"- {item}" for item in finding.evidence]
    if finding.cause:
        lines.append(f"- Likely cause: {finding.cause}")
    if finding.action:
        lines.append(f"- Action: {finding.action}")
    lines.append(f"- Rule: `{finding.rule}`")
    return lines


def render_report(report: DiagnosisReport, reason: str) -> str:
    counts = report.counts()
    scope = "the whole cluster" if report.scope == "cluster" else report.scope
    lines = [
        f"> **Answered without the language model.** {reason} What follows is gpudoc's deterministic "
        f"diagnosis of {scope}, not a model's answer to your question.",
        "",
        f"Examined {report.examined()}: "
        f"{counts['critical']} critical, {counts['warning']} warning, {counts['info']} info findings.",
        "",
    ]
    serious = [f for f in report.findings if f.severity != "info"]
    if not serious:
        lines.append("No critical or warning findings: nothing abnormal in the facts examined.")
    for finding in serious:
        lines += [*_finding_block(finding), ""]
    info = [f for f in report.findings if f.severity == "info"]
    if info:
        lines.append("Info: " + "; ".join(f"{f.subject_label}: {f.title or f.rule}" for f in info))
    return "\n".join(lines).strip() + "\n"


async def degraded_answer(
    source: ClusterSource, question: str, reason: str, evidence: list[ToolCallRecord]
) -> tuple[str, list[Finding]]:
    """The labelled deterministic answer and its findings. Never raises for source failures."""
    node = next(iter(named_nodes(question)), None)
    notes: list[str] = []
    if node:
        try:
            node = await source.resolve_node(node)
        except UnknownNodeError as error:
            notes.append(f"{error} Diagnosing the whole cluster instead.")
            node = None
        except SourceError as error:
            return _nothing_available(reason, error), []
    try:
        report = await diagnose(source, node)
    except SourceError as error:
        return _nothing_available(reason, error), []
    text = render_report(report, reason) + await _current_readings(source, node)
    if asks_about(question, "jobs"):
        text += await _pending_jobs(source)
    if notes:
        text = text.replace("\n\n", "\n\n" + " ".join(notes) + "\n\n", 1)
    gathered = [r for r in evidence if not r.error]
    if gathered:
        text += "\nTool results gathered before the model failed: " + ", ".join(
            map(_call_text, gathered)) + " (see the tool calls).\n"
    return text, list(report.findings)


def _call_text(record: ToolCallRecord) -> str:
    """A tool call as ``name(key=value, ...)``; the model wrote the arguments, so they are cleaned as
    cluster text is (a model that read hostile cluster text may pass it on)."""
    arguments = ", ".join(f"{free_text(str(k), 40)}={free_text(str(v), 60)}" for k, v in record.arguments.items())
    return f"{free_text(record.name, 60)}({arguments})"


async def _current_readings(source: ClusterSource, node: str | None) -> str:
    """The readings an operator asks about first, so a "how hot / how busy" question gets numbers.

    A node question gets one row per GPU with its limits; a cluster question the one-glance status.
    Best effort: a source failure here leaves the diagnosis above as the whole answer.
    """
    try:
        if node:
            return _node_table(await source.node_metrics(node))
        return _cluster_lines(await source.cluster_status())
    except SourceError:
        return ""


def _node_table(node: NodeMetrics) -> str:
    if not node.reachable:
        return f"\n{node.node_id} is not reporting: no current readings.\n"
    spec = spec_for_model_name(node.gpus[0].model) if node.gpus else None
    limits = (
        f" Limits ({spec.name}): max operating {spec.max_operating_temp_c:g} °C, slowdown "
        f"{spec.slowdown_temp_c:g} °C, power {spec.power_limit_w:g} W."
        if spec
        else ""
    )
    rows = [
        f"\nCurrent readings of {node.node_id} at {node.timestamp:%H:%M}Z.{limits}",
        "",
        "| GPU | temp °C | util % | power W | SM MHz | clock events |",
        "|---|---|---|---|---|---|",
    ]
    for gpu in node.gpus:
        if gpu.stale:
            rows.append(f"| {gpu.index} | stale | stale | stale | stale | not reporting |")
            continue
        clock = f"{gpu.sm_clock_mhz:.0f}" if gpu.sm_clock_mhz is not None else "n/a"
        events = ", ".join(n for n in clock_event_names(gpu.clock_event_reasons) if n != "gpu_idle") or "none"
        rows.append(
            f"| {gpu.index} | {_cell_number(gpu.temperature_c, 1)} | {_cell_number(gpu.utilization_pct, 0)} "
            f"| {_cell_number(gpu.power_w, 0)} | {clock} | {events} |"
        )
    return "\n".join(rows) + "\n"


def _cluster_lines(status: ClusterStatus) -> str:
    line = (
        f"\nCluster now: {status.node_count} nodes, {status.gpu_count} GPUs, average GPU utilisation "
        f"{status.avg_utilization_pct:.1f} %, average temperature {status.avg_temperature_c:.1f} °C, "
        f"GPU memory {status.memory_used_gb:.0f} of {status.memory_total_gb:.0f} GB in use"
    )
    if status.slurm and status.slurm.jobs_running is not None and status.slurm.jobs_pending is not None:
        line += f"; Slurm: {status.slurm.jobs_running} jobs running, {status.slurm.jobs_pending} pending"
    return line + ".\n"


async def _pending_jobs(source: ClusterSource) -> str:
    """The queue behind a "why are jobs pending?" question: who waits, for how much, and why."""
    try:
        snapshot = await source.slurm()
    except SourceError as error:
        return f"\nThe Slurm queue could not be read: {error}\n"
    if snapshot is None:
        return "\nThis cluster reports no Slurm scheduler.\n"
    return _pending_table(snapshot)


def _count(value: int | None) -> str:
    return "not reported" if value is None else str(value)


def _cell_number(value: float | None, digits: int) -> str:
    """A reading as a table cell; one the source sent unreadable is "not reported", never 0."""
    return "not reported" if value is None else f"{value:.{digits}f}"


def _cell(text: str, limit: int) -> str:
    """Scheduler text as one markdown table cell: one line, bounded, no column breaks."""
    return (free_text(text, limit) or "").replace("|", "\\|")


def _pending_table(snapshot: SlurmSnapshot) -> str:
    if snapshot.jobs is None:
        pending, running = (_count(snapshot.queue.pending), _count(snapshot.queue.running))
        return (f"\nSlurm queue: {pending} pending, {running} running "
                "(this source has no job list, so reasons are not shown).\n")
    pending = sorted((j for j in snapshot.jobs if j.state == "PENDING"), key=lambda j: j.submit_time)
    if not pending:
        return "\nNo jobs are pending in Slurm.\n"
    rows = [
        f"\nPending jobs ({len(pending)}), longest waiting first:",
        "",
        "| job | user | partition | GPUs | reason | waiting |",
        "|---|---|---|---|---|---|",
    ]
    for job in pending[:PENDING_ROWS]:
        waited = max(0, round((snapshot.timestamp - job.submit_time).total_seconds() / 60))
        rows.append(
            f"| {job.job_id} | {_cell(job.user, 32)} | {_cell(job.partition, 32)} | {job.gpus} | "
            f"{_cell(job.pending_reason or 'unknown', 60)} | {waited} min |"
        )
    if len(pending) > PENDING_ROWS:
        rows.append(f"\n{len(pending) - PENDING_ROWS} more pending jobs not listed.")
    return "\n".join(rows) + "\n"


def _nothing_available(reason: str, error: SourceError) -> str:
    return (
        f"> **Answered without the language model.** {reason}\n\n"
        f"The deterministic diagnosis could not run either: the cluster source failed ({error}). "
        "Check the data source (GPUDOC_SOURCE, BACKEND_BASE_URL) and the LLM endpoint.\n"
    )
