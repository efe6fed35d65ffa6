"""The Slurm controller itself (``/diag``, ``sdiag``, ``/ping``): when the queue does not move
because slurmctld is unwell rather than because the cluster is full.

Why these figures: slurmctld not answering stops everything; its agent queue (RPCs it must
still deliver, mostly to unreachable nodes) and its slurmdbd queue (accounting it could not
hand over) grow when something it talks to is gone; and a scheduling cycle that takes seconds
means pending jobs are examined rarely. Thresholds are conservative: an idle test cluster and a
busy healthy one both stay quiet.
"""

from __future__ import annotations

from gpudoc.tools.diagnosis.facts import ClusterFacts
from gpudoc.tools.diagnosis.findings import Finding
from gpudoc.tools.diagnosis.rules import finding, num

#: RPCs waiting to be delivered by slurmctld's agent before it is a backlog
AGENT_QUEUE_WARN = 100
#: messages waiting for slurmdbd before accounting is falling behind
DBD_QUEUE_WARN = 1000
#: a main scheduling cycle this long (microseconds) is slow
SLOW_CYCLE_US = 2_000_000

SUBJECT = "slurmctld"


def analyze_scheduler(facts: ClusterFacts) -> list[Finding]:
    health = facts.slurm.scheduler if facts.slurm else None
    if health is None:
        return []
    where = f" on {health.controller}" if health.controller else ""
    if health.responding is False:
        return [finding(
            "sched.controller_unhealthy", "critical", SUBJECT, f"slurmctld{where} does not answer pings",
            [f"ping of slurmctld{where} ({health.mode or 'primary'}) failed"],
            "the controller is down, hung or unreachable: no job starts or ends are recorded",
            "check slurmctld on the head node (systemctl status slurmctld, its log); fail over to the backup if configured",
            nodes=[],
        )]
    problems = []
    if health.agent_queue_size is not None and health.agent_queue_size >= AGENT_QUEUE_WARN:
        problems.append((f"agent queue {health.agent_queue_size} RPCs waiting (>= {AGENT_QUEUE_WARN})",
                         "slurmctld keeps retrying messages, usually to nodes that stopped answering"))
    if health.dbd_agent_queue_size is not None and health.dbd_agent_queue_size >= DBD_QUEUE_WARN:
        problems.append((f"slurmdbd queue {health.dbd_agent_queue_size} messages waiting (>= {DBD_QUEUE_WARN})",
                         "slurmdbd (or its database) is not taking accounting records"))
    if health.schedule_cycle_last_us is not None and health.schedule_cycle_last_us >= SLOW_CYCLE_US:
        problems.append((f"last scheduling cycle {num(health.schedule_cycle_last_us / 1e6, 1)} s "
                         f"(mean {num((health.schedule_cycle_mean_us or 0) / 1e6, 1)} s)",
                         "scheduling cycles are slow, so pending jobs are examined rarely"))
    if not problems:
        return []
    return [finding(
        "sched.controller_unhealthy", "warning", SUBJECT, f"slurmctld{where} is backed up",
        [text for text, _ in problems], "; ".join(cause for _, cause in problems),
        "read sdiag and the slurmctld log; bring back or remove the unreachable nodes it retries; check slurmdbd",
        nodes=[],
    )]
