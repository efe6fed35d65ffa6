"""Node readings written as Prometheus's node_exporter writes them: InfiniBand ports and the host.

Why node_exporter: it is what real clusters run on every host, and its ``infiniband`` collector
(on by default) is where InfiniBand link state and flap counters come from
(``node_infiniband_state_id``, ``node_infiniband_link_downed_total``, labels ``device`` and
``port``). ``node_uname_info`` names the host, which joins a node_exporter ``instance`` to the
``Hostname`` of the GPUs on it. Names, types and help texts are node_exporter 1.x's; numbers are
written as client_golang writes them (``2.5e+10``).
"""

from __future__ import annotations

from gpudoc.tools.models import NodeMetrics
from gpudoc.tools.sim.exposition import Sample, family, go_float, join_lines

_STATE_HELP = "State of the InfiniBand port (0: no change, 1: down, 2: init, 3: armed, 4: active, 5: act defer)"
_PHYSICAL_HELP = ("Physical state of the InfiniBand port (0: no change, 1: sleep, 2: polling, 3: disable, "
                  "4: shift, 5: link up, 6: link error recover, 7: phytest)")
#: the kernel the simulated hosts run
KERNEL_RELEASE = "5.15.0-125-generic"


def render_ports(nodes: list[NodeMetrics], *, with_hostname: bool) -> list[str]:
    """The InfiniBand families of the reachable nodes' ports."""
    ports = [(node, port) for node in nodes if node.reachable for port in node.network or []]

    def samples(value) -> list[Sample]:  # type: ignore[no-untyped-def]
        out: list[Sample] = []
        for node, port in ports:
            number = value(port)
            if number is None:
                continue
            labels = {"device": port.device, "port": str(port.port)}
            if with_hostname:
                labels["Hostname"] = node.hostname
            out.append((labels, go_float(number)))
        return out

    return [
        *family("node_infiniband_link_downed_total", "counter",
                "Number of times the link failed to recover from an error state and went down",
                samples(lambda p: p.link_downed_total)),
        *family("node_infiniband_link_error_recovery_total", "counter",
                "Number of times the link successfully recovered from an error state",
                samples(lambda p: p.link_error_recovery_total)),
        *family("node_infiniband_physical_state_id", "gauge", _PHYSICAL_HELP, samples(lambda p: p.physical_state_id)),
        *family("node_infiniband_rate_bytes_per_second", "gauge", "Maximum signal transfer rate",
                samples(lambda p: None if p.rate_gbps is None else p.rate_gbps * 1e9 / 8)),
        *family("node_infiniband_state_id", "gauge", _STATE_HELP, samples(lambda p: p.state_id)),
    ]


def render_node_exporter(node: NodeMetrics) -> str:
    """One host's node_exporter page (``/metrics/node/<node>/metrics``): uname and InfiniBand."""
    uname = {"domainname": "(none)", "machine": "x86_64", "nodename": node.hostname, "release": KERNEL_RELEASE,
             "sysname": "Linux", "version": "#135-Ubuntu SMP"}
    lines = [
        *render_ports([node], with_hostname=False),
        *family("node_uname_info", "gauge", "Labeled system information as provided by the uname system call.",
                [(uname, "1")]),
    ]
    return join_lines(lines)
