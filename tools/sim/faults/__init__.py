"""The injected faults: how each scenario bends the job plan, the signals and the Slurm state.

Each fault is an onset some minutes before "now" (times are seconds relative to the anchor) and
the signals domain.md §7 lists, developing from there: a temperature ramp, a counter climbing,
a series going stale, an XID with its kernel-log line, the job failing, the node drained.
Faults only touch their own GPU/node, so several can coexist; when two faults land on the same
GPU they share its job.

Layout: ``base`` (the ``Fault`` hooks and the records they return), ``gpu`` (GPU hardware),
``node`` (a host or its network), ``jobs`` (workloads, users and the scheduler), ``catalog``
(scenario name -> fault class, ``build_fault``).
"""

from gpudoc.tools.sim.faults.base import Fault, NodeCondition, XidRecord
from gpudoc.tools.sim.faults.catalog import FAULTS, build_fault

__all__ = ["FAULTS", "Fault", "NodeCondition", "XidRecord", "build_fault"]
