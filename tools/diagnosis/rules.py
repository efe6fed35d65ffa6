"""The catalogue of diagnosis rules: stable ids, what each blames, and how findings combine.

Why one table: rule ids are a public contract (runbooks and evals key on them), and merging
needs to know which findings describe the same root cause. ``group`` names that root cause;
within a group on one subject only the most severe finding survives and absorbs the others'
evidence. ``supporting`` rules are corroborating signals (a stale series, a drained node, a
firing alert): they fold into a primary finding about the same GPU or node when one exists and
stand alone only when nothing explains them.
"""

from __future__ import annotations

from typing import NamedTuple

from gpudoc.tools.diagnosis.findings import Category, Finding, Severity


class RuleInfo(NamedTuple):
    group: str
    category: Category
    supporting: bool = False


#: Order matters: the earlier rule is the more specific explanation, within a group and among
#: supporting findings of equal severity.
RULES: dict[str, RuleInfo] = {
    # GPU lost from the bus / stopped answering
    "gpu.xid79_fell_off_bus": RuleInfo("gpu_lost", "hardware"),
    "gpu.gsp_error": RuleInfo("gsp", "hardware"),
    "gpu.microcontroller_halt": RuleInfo("microcontroller", "hardware"),
    "gpu.context_switch_timeout": RuleInfo("context_switch", "hardware"),
    "gpu.gpu_timeout": RuleInfo("gpu_timeout", "hardware"),
    "gpu.init_failure": RuleInfo("init_failure", "hardware"),
    "gpu.security_fault": RuleInfo("security_fault", "hardware"),
    "gpu.power_cabling": RuleInfo("power_cabling", "hardware"),
    "gpu.resource_retirement": RuleInfo("resource_retirement", "hardware"),
    "gpu.stale_metrics": RuleInfo("gpu_lost", "hardware", supporting=True),
    # HBM memory
    "gpu.row_remap_failure": RuleInfo("hbm", "hardware"),
    "gpu.ecc_uncorrectable": RuleInfo("hbm", "hardware"),
    # a correctable-error climb on a GPU that already has an HBM finding is the same failing memory
    "gpu.ecc_correctable_storm": RuleInfo("hbm", "hardware"),
    "gpu.remap_pending": RuleInfo("hbm", "hardware"),
    "gpu.remapped_rows_in_use": RuleInfo("hbm", "hardware"),
    # interconnects
    "gpu.nvlink_error": RuleInfo("nvlink", "hardware"),
    "gpu.pcie_link_degraded": RuleInfo("pcie", "hardware"),
    "gpu.pcie_replays": RuleInfo("pcie", "hardware"),
    # cooling and power
    "gpu.thermal_slowdown": RuleInfo("thermal", "hardware"),
    "gpu.hot_vs_peers": RuleInfo("thermal", "hardware"),
    "gpu.memory_hot": RuleInfo("thermal", "hardware"),
    "gpu.power_brake": RuleInfo("power", "hardware"),
    "node.power_brake": RuleInfo("power", "host"),
    "gpu.power_cap_below_default": RuleInfo("power", "hardware"),
    "node.power_cap_below_default": RuleInfo("power", "host"),
    # XIDs outside the catalog, or ones that follow another error
    "gpu.unknown_xid": RuleInfo("unknown_xid", "hardware"),
    "gpu.fabric_manager": RuleInfo("fabric", "hardware"),
    "gpu.recovery_action": RuleInfo("recovery_action", "hardware", supporting=True),
    "gpu.secondary_xid": RuleInfo("secondary_xid", "hardware", supporting=True),
    # user programs
    "gpu.lemon_suspect": RuleInfo("application", "hardware"),
    "gpu.application_xid": RuleInfo("application", "application"),
    # hosts
    "node.host_down": RuleInfo("host", "host"),
    "node.no_telemetry": RuleInfo("host", "host"),
    "node.slurm_not_responding": RuleInfo("host", "host"),
    "node.gres_count_low": RuleInfo("node_state", "host", supporting=True),
    # a drain whose reason names an XID: the suspected GPU fault, which explains the jobs waiting
    # on the node (critical when telemetry confirms the XID, a warning to confirm otherwise)
    "node.drained_for_xid": RuleInfo("node_state", "hardware", supporting=True),
    # jobs waiting on a drained node say more than the drain alone, so it absorbs the drain
    "sched.pending_on_unavailable_nodes": RuleInfo("pending", "scheduling", supporting=True),
    "node.drained": RuleInfo("node_state", "host", supporting=True),
    # network
    "net.ib_port_down": RuleInfo("infiniband", "network"),
    "net.ib_link_flapping": RuleInfo("infiniband", "network"),
    # jobs and scheduling
    "job.straggler": RuleInfo("straggler", "application"),
    "job.gpus_idle": RuleInfo("idle", "scheduling"),
    # a NODE_FAIL right after an XID on the job's node: the job died of that GPU fault
    "job.node_fail_after_xid": RuleInfo("node_fail", "hardware", supporting=True),
    "job.node_fail": RuleInfo("node_fail", "host", supporting=True),
    "sched.qos_limit": RuleInfo("qos", "scheduling"),
    "sched.jobs_waiting": RuleInfo("queue", "scheduling"),
    "sched.controller_unhealthy": RuleInfo("controller", "scheduling"),
    # alerting
    "alert.active": RuleInfo("alert", "alerting", supporting=True),
}

RULE_ORDER: dict[str, int] = {rule: position for position, rule in enumerate(RULES)}


def node_of(subject: str) -> str | None:
    """``"node-3/gpu-5"`` -> ``"node-3"``; a job id -> ``None``."""
    if subject.startswith("job") or subject.isdigit():
        return None
    return subject.split("/gpu-", 1)[0]


def gpu_subject(node_id: str, index: int) -> str:
    return f"{node_id}/gpu-{index}"


def finding(
    rule: str,
    severity: Severity,
    subject: str,
    title: str,
    evidence: list[str],
    cause: str,
    action: str,
    *,
    nodes: list[str] | None = None,
    gpus: list[str] | None = None,
    job_id: str | None = None,
) -> Finding:
    """Build a ``Finding`` for a catalogued rule; category, nodes and GPUs follow from the rule and subject."""
    info = RULES[rule]  # KeyError here is a programming error: every rule id must be catalogued
    if nodes is None:
        own = node_of(subject)
        nodes = [own] if own else []
    if gpus is None:
        gpus = [subject] if "/gpu-" in subject else []
    return Finding(
        severity=severity,
        subject=subject,
        rule=rule,
        title=title,
        evidence=evidence,
        cause=cause,
        action=action,
        category=info.category,
        nodes=nodes,
        gpus=gpus,
        job_id=job_id,
    )


def num(value: float, digits: int = 1) -> str:
    """Format a reading compactly: 88.60 -> "88.6", 89.0 -> "89"."""
    text = f"{value:.{digits}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def reading(value: float | None, unit: str, digits: int = 1) -> str:
    """A reading with its unit (``"212 W"``), or "not reported" where the source sent it unreadable."""
    return "not reported" if value is None else f"{num(value, digits)}{unit}"
