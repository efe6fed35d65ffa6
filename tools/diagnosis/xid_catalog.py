"""What each XID means and what an operator does about it.

Sources: NVIDIA's XID catalog (docs.nvidia.com/deploy/xid-errors, "Catalog" sheet; a generated copy
lives in leptonai/gpud), NVIDIA's own dcgm-exporter messages, and domain.md §2. Where references
disagree the entry says so rather than picking silently (109).

``kind`` decides how the analyzer treats an XID:
- ``hardware``: the GPU (or its links, memory, firmware) needs attention; ``severity`` applies;
- ``application``: the user's program faulted; never drain for it, unless one GPU keeps failing
  different jobs (the "lemon" rule in ``xid.py``);
- ``secondary``: follows another error and points at it (45, and 154, which carries the driver's
  recovery action for another XID).
"""

from __future__ import annotations

from typing import Literal, NamedTuple

from gpudoc.tools.diagnosis.findings import Severity

XidClass = Literal["hardware", "application", "secondary"]


class XidKind(NamedTuple):
    meaning: str
    rule: str
    severity: Severity
    cause: str
    action: str
    kind: XidClass = "hardware"


def _app(meaning: str) -> XidKind:
    return XidKind(meaning, "gpu.application_xid", "info", "the user's program faulted on the GPU",
                   "do not drain; hand the error to the job's owner (restart the application)", "application")


_RESET = "reset the GPU (drain the node first); contact NVIDIA support or RMA if it recurs"
_NVLINK5 = ("read the error status logged with this XID (dmesg): NVIDIA's NVLink 5 workflow resets the GPU for "
            "fatal statuses and ignores the non-fatal ones; check the link if it repeats")

XID_CATALOG: dict[int, XidKind] = {
    # --- the user's program (NVIDIA: restart the application) ---------------------------------------
    8: _app("GPU stopped processing (channel idle timeout)"),
    13: _app("graphics engine exception"),
    31: _app("GPU memory page fault"),
    32: _app("invalid or corrupted push buffer stream"),
    39: _app("copy engine exception"),
    40: _app("copy engine exception"),
    41: _app("copy engine exception"),
    43: _app("GPU stopped processing"),
    68: _app("video decoder (NVDEC0) exception"),
    69: _app("graphics engine class error"),
    # --- follows another error ----------------------------------------------------------------------
    45: XidKind("preemptive cleanup after a previous error", "gpu.secondary_xid", "info",
                "XID 45 follows another error (a fatal XID, a killed process)",
                "look for the primary XID (48/79/74/...) near it", "secondary"),
    154: XidKind("GPU recovery action changed", "gpu.recovery_action", "warning",
                 "the driver set the recovery another XID needs (reset, reboot or drain)",
                 "read the recovery action in the kernel log or nvidia-smi -q and carry it out", "secondary"),
    # --- the GPU stopped answering --------------------------------------------------------------------
    46: XidKind("GPU stopped processing (GPU timeout)", "gpu.gpu_timeout", "critical",
                "the GPU stopped making progress (hardware or firmware hang)", _RESET),
    79: XidKind("GPU has fallen off the bus", "gpu.xid79_fell_off_bus", "critical",
                "the GPU stopped responding on PCIe (power, PCIe, thermal or GPU failure)",
                "drain and reboot the node; check PCIe seating, power and cooling; RMA if it recurs"),
    119: XidKind("GSP RPC timeout", "gpu.gsp_error", "critical",
                 "the GPU System Processor stopped answering the driver",
                 "reset the GPU; reboot the node if the reset hangs"),
    120: XidKind("GSP error", "gpu.gsp_error", "critical", "the GPU System Processor reported an error",
                 "reset the GPU; reboot the node if the reset hangs"),
    143: XidKind("GPU initialization failure", "gpu.init_failure", "critical",
                 "the GPU failed to initialise (firmware, power or hardware)",
                 "reset the GPU; if it does not come back, inspect the hardware and open an RMA"),
    158: XidKind("GPU fatal timeout", "gpu.gpu_timeout", "critical",
                 "the GPU stopped making progress (hardware or firmware hang)",
                 "reset the GPU; reboot the node if the reset fails; contact NVIDIA support if it recurs"),
    # --- memory -----------------------------------------------------------------------------------------
    48: XidKind("double-bit ECC error", "gpu.ecc_uncorrectable", "critical", "uncorrectable HBM memory error",
                "drain the node and reset the GPU; RMA if uncorrectable errors recur"),
    63: XidKind("row remap / page retirement event", "gpu.ecc_correctable_storm", "warning",
                "HBM rows being remapped after memory errors",
                "reset the GPU at a convenient time so the remap applies; watch the trend"),
    64: XidKind("row remap / retirement failure", "gpu.row_remap_failure", "critical",
                "HBM row remapping failed: no spare row left in a bank, the failing memory cannot be repaired",
                "keep the node drained, run field diagnostics (dcgmi diag -r 3), open an RMA"),
    92: XidKind("high single-bit ECC error rate", "gpu.ecc_correctable_storm", "warning",
                "HBM producing many correctable errors", "watch the correctable-error trend; plan a reset"),
    94: XidKind("contained ECC error", "gpu.ecc_uncorrectable", "warning",
                "uncorrectable HBM error contained to one application",
                "only that application died; reset the GPU when convenient"),
    95: XidKind("uncontained ECC error", "gpu.ecc_uncorrectable", "critical",
                "uncorrectable HBM error that could not be contained", "drain the node and reset the GPU"),
    140: XidKind("unrecovered ECC error", "gpu.ecc_uncorrectable", "critical",
                 "an uncorrectable memory error escaped containment", _RESET),
    156: XidKind("resource retirement event", "gpu.resource_retirement", "warning",
                 "the GPU marked a faulty internal resource for retirement; it applies at the next reset",
                 "reset the GPU at the next convenient time"),
    157: XidKind("resource retirement failure", "gpu.resource_retirement", "warning",
                 "the GPU could not retire a faulty internal resource",
                 "contact NVIDIA support if it repeats; plan field diagnostics (dcgmi diag -r 3)"),
    171: XidKind("uncorrectable DRAM error (detail of XID 48)", "gpu.ecc_uncorrectable", "critical",
                 "uncorrectable HBM (DRAM) memory error", "drain the node and reset the GPU; RMA if it recurs"),
    172: XidKind("uncorrectable SRAM error (detail of XID 48)", "gpu.ecc_uncorrectable", "critical",
                 "uncorrectable error in the GPU's on-chip SRAM", "drain the node and reset the GPU; RMA if it recurs"),
    # --- firmware and security ------------------------------------------------------------------------
    61: XidKind("internal micro-controller breakpoint/warning (older drivers; NVIDIA's current catalog "
                "lists 61 as unused, newer drivers report halts as 62)", "gpu.microcontroller_halt", "warning",
                "a GPU micro-controller stopped at a breakpoint", "reset the GPU if it repeats and report it to NVIDIA"),
    62: XidKind("micro-controller halt", "gpu.microcontroller_halt", "critical",
                "GPU internal micro-controller fault", "reset the GPU and report it to NVIDIA support"),
    109: XidKind("context-switch timeout (severity disputed: NVIDIA's catalog asks for a GPU reset, "
                 "leptonai/gpud treats it as a warning)", "gpu.context_switch_timeout", "warning",
                 "the GPU failed to switch contexts in time (a hung application, the driver or the GPU)",
                 "reset the GPU if the job hung or it repeats on this GPU; contact NVIDIA support if it persists"),
    110: XidKind("security fault error", "gpu.security_fault", "critical",
                 "the GPU's security engine detected a fault",
                 "reset the GPU and reboot the node; inspect the hardware (RMA) if it recurs"),
    # --- power ------------------------------------------------------------------------------------------
    54: XidKind("auxiliary power is not connected to the GPU board", "gpu.power_cabling", "critical",
                "the board's auxiliary power cable is loose or missing, so the GPU runs power-limited",
                "drain the node and reseat the GPU's power cables; check the PSU"),
    # --- NVLink -------------------------------------------------------------------------------------------
    74: XidKind("NVLink error", "gpu.nvlink_error", "critical", "NVLink link or fabric fault",
                "check NVLink error counters, reset the GPU/fabric; a persistent error is hardware"),
    136: XidKind("NVLink link training failed (ALI)", "gpu.nvlink_error", "critical",
                 "an NVLink link failed to train (cable, connector or signal integrity)",
                 "reset the GPU; investigate the link's signal integrity if it repeats"),
    144: XidKind("NVLink 5: SAW error", "gpu.nvlink_error", "warning", "an NVLink 5 unit reported an error", _NVLINK5),
    145: XidKind("NVLink 5: RLW error", "gpu.nvlink_error", "warning", "an NVLink 5 unit reported an error", _NVLINK5),
    146: XidKind("NVLink 5: TLW error", "gpu.nvlink_error", "warning", "an NVLink 5 unit reported an error", _NVLINK5),
    147: XidKind("NVLink 5: TREX error", "gpu.nvlink_error", "warning", "an NVLink 5 unit reported an error", _NVLINK5),
    148: XidKind("NVLink 5: NVLPW_CTRL error", "gpu.nvlink_error", "warning",
                 "an NVLink 5 unit reported an error", _NVLINK5),
    149: XidKind("NVLink 5: NETIR error (link down or bit-error events)", "gpu.nvlink_error", "critical",
                 "an NVLink 5 link went down or crossed its bit-error threshold",
                 "reset the GPU; check the link's cables and signal integrity if it repeats"),
    150: XidKind("NVLink 5: MSE error", "gpu.nvlink_error", "warning", "an NVLink 5 unit reported an error", _NVLINK5),
    155: XidKind("NVLink: software-defined error", "gpu.nvlink_error", "warning",
                 "the NVLink software stack reported an error", "reset the GPU; investigate the software if it repeats"),
}

APPLICATION_XIDS = frozenset(x for x, k in XID_CATALOG.items() if k.kind == "application")
#: XIDs whose alerts must page someone: the shipped Prometheus rule ``GpuXidCritical`` matches these
CRITICAL_XIDS = frozenset(x for x, k in XID_CATALOG.items() if k.kind == "hardware" and k.severity == "critical")


def xid_kind(xid: int) -> XidKind | None:
    return XID_CATALOG.get(xid)
