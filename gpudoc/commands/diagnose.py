"""``gpudoc diagnose``: deterministic findings about the cluster, as a table or JSON, no LLM involved.

Why a frozen simulator clock: the same seed and scenarios must print the same report, so the
output can be compared across runs, pasted into tickets and used in tests.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import textwrap

from gpudoc.commands.common import add_source_arguments, source_from_args
from gpudoc.commands.options import settings_from_args
from gpudoc.tools.diagnosis.engine import diagnose
from gpudoc.tools.diagnosis.findings import SEVERITY_ORDER, DiagnosisReport


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "diagnose", help="find faults with deterministic rules (no LLM)",
        description="Examine the cluster with deterministic rules and list findings, most severe first.",
    )
    add_source_arguments(parser)
    parser.add_argument("--node", default=None, help="only findings concerning this node (e.g. node-3)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--fail-on", choices=["critical", "warning"], default=None,
        help="exit 1 when a finding at least this severe exists (default: always exit 0)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    report = asyncio.run(_diagnose(args))
    print(report.model_dump_json(indent=2) if args.json else render_table(report))
    if args.fail_on and any(SEVERITY_ORDER[f.severity] <= SEVERITY_ORDER[args.fail_on] for f in report.findings):
        return 1
    return 0


async def _diagnose(args: argparse.Namespace) -> DiagnosisReport:
    source = source_from_args(args, settings_from_args(args), realtime=False)
    try:
        return await diagnose(source, args.node)
    finally:
        await source.aclose()


SEVERITY_LABEL = {"critical": "CRIT", "warning": "WARN", "info": "INFO"}


def render_table(report: DiagnosisReport) -> str:
    """Aligned rows (severity, subject, rule, title), each followed by its evidence and action."""
    width = max(60, min(shutil.get_terminal_size((120, 24)).columns, 160))
    counts = report.counts()
    lines = [
        f"gpudoc diagnose: {report.scope} via {report.source} at {report.generated_at:%Y-%m-%d %H:%M:%S}Z; "
        f"{report.examined()} examined",
        "",
    ]
    if report.findings:
        subject_w = max(7, *(len(f.subject_label) for f in report.findings))
        rule_w = max(4, *(len(f.rule) for f in report.findings))
        lines.append(f"{'SEV':<4}  {'SUBJECT':<{subject_w}}  {'RULE':<{rule_w}}  TITLE")
        indent = " " * 6
        for f in report.findings:
            lines.append(f"{SEVERITY_LABEL[f.severity]:<4}  {f.subject_label:<{subject_w}}  {f.rule:<{rule_w}}  {f.title}")
            for item in f.evidence:
                lines.extend(textwrap.wrap(item, width, initial_indent=indent + "- ", subsequent_indent=indent + "  "))
            if f.action:
                lines.extend(textwrap.wrap(f.action, width, initial_indent=indent + "action: ",
                                           subsequent_indent=indent + "        "))
    else:
        lines.append("No findings.")
    lines.append("")
    lines.append(f"{counts['critical']} critical, {counts['warning']} warning, {counts['info']} info")
    for limitation in report.limitations:
        lines.append(f"not examined: {limitation}")
    return "\n".join(lines)
