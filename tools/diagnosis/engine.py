"""Deterministic diagnosis: gather the facts once, run every analyzer, merge, sort.

Why pure ``analyze``: the CLI, the LLM tool ``diagnose_cluster`` and the agent's no-LLM answer all
need the same conclusions; keeping the rules free of I/O makes them testable on hand-built facts.
"""

from __future__ import annotations

from typing import Callable

from gpudoc.tools.diagnosis.alerts import analyze_alerts
from gpudoc.tools.diagnosis.facts import ClusterFacts, gather_facts
from gpudoc.tools.diagnosis.findings import DiagnosisReport, Finding
from gpudoc.tools.diagnosis.jobs import analyze_jobs
from gpudoc.tools.diagnosis.memory import analyze_memory
from gpudoc.tools.diagnosis.merge import merge_findings
from gpudoc.tools.diagnosis.network import analyze_network
from gpudoc.tools.diagnosis.node_health import analyze_node_health
from gpudoc.tools.diagnosis.nvlink import analyze_nvlink
from gpudoc.tools.diagnosis.pcie import analyze_pcie
from gpudoc.tools.diagnosis.power import analyze_power
from gpudoc.tools.diagnosis.scheduler import analyze_scheduler
from gpudoc.tools.diagnosis.thermal import analyze_thermal
from gpudoc.tools.diagnosis.xid import analyze_xids
from gpudoc.tools.sources.base import ClusterSource

Analyzer = Callable[[ClusterFacts], list[Finding]]

ANALYZERS: tuple[Analyzer, ...] = (
    analyze_xids,
    analyze_memory,
    analyze_thermal,
    analyze_power,
    analyze_pcie,
    analyze_nvlink,
    analyze_node_health,
    analyze_network,
    analyze_jobs,
    analyze_scheduler,
    analyze_alerts,
)


def analyze(facts: ClusterFacts, node: str | None = None) -> list[Finding]:
    """All findings for the cluster (or those concerning ``node``), merged, most severe first.

    ``node`` must already be a real node id; the whole cluster is analysed either way, because
    some rules compare a node with its peers.
    """
    findings = merge_findings([f for analyzer in ANALYZERS for f in analyzer(facts)])
    if node is not None:
        findings = [f for f in findings if node in f.nodes]
    return findings


async def diagnose(source: ClusterSource, node: str | None = None) -> DiagnosisReport:
    """Diagnose the cluster behind ``source``; ``UnknownNodeError`` for a node it does not have."""
    if node is not None:
        node = await source.resolve_node(node)
    facts = await gather_facts(source, node=node)
    examined = [n for n in facts.nodes if node is None or n.node_id == node]
    nodes_examined = len(facts.node_ids) if facts.node_ids is not None else len(examined)
    gpus_examined = facts.gpus_total if facts.gpus_total is not None else sum(len(n.gpus) for n in examined)
    return DiagnosisReport(
        generated_at=facts.collected_at,
        source=facts.source,
        scope=node or "cluster",
        nodes_examined=nodes_examined,
        gpus_examined=gpus_examined,
        findings=analyze(facts, node),
        limitations=facts.limitations,
    )
