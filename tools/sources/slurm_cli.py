"""The scheduler's view from the Slurm commands, for gpudoc running on a login or head node.

Why the CLI as well as slurmrestd: many sites run no slurmrestd, but every login node has
``squeue`` and ``sinfo`` with munge already set up. The JSON those commands print is the same
data parser's as slurmrestd's (``squeue --json`` is ``/jobs``), so ``slurm_snapshot`` reads both.

Which command where (Slurm 22.05 lacks some ``--json`` forms; each is tried once, then the
fallback is kept):
- nodes: ``scontrol show node --json`` (23.02+), else ``sinfo --json`` (22.05: the ``/nodes`` data);
- jobs: ``squeue --json``;
- partitions: ``scontrol show partition --json``, else ``scontrol -o show partition``;
- controller: ``sdiag --json`` and ``scontrol ping --json``, else their text forms.
Commands run concurrently, each with a timeout; ``SLURM_CONF`` and the rest of the environment
pass through, so the commands reach the same cluster the operator's shell does.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from gpudoc.tools.models import SlurmSnapshot
from gpudoc.tools.sources.base import SourceError, SourceProtocolError, SourceUnavailableError
from gpudoc.tools.sources.slurm_client import SlurmClient
from gpudoc.tools.sources.slurm_snapshot import Answer, Answers, build_snapshot

#: what a Slurm command prints when it lacks an option (22.05 has no ``scontrol --json``)
_NO_SUCH_OPTION = re.compile(r"unrecognized option|invalid option|unknown option|not supported", re.IGNORECASE)
#: longest piece of a command's stderr quoted in a message
STDERR_MAX_CHARS = 300

TextParser = Callable[[str, str], Answer]


class SlurmCliError(SourceError):
    """A Slurm command is missing or failed."""


class _NoJson(Exception):
    """This Slurm version's command has no ``--json``."""


class SlurmCliClient(SlurmClient):
    """Reads Slurm by running its commands on this host."""

    kind = "Slurm CLI"

    def __init__(self, *, timeout_s: float = 20.0, env: dict[str, str] | None = None,
                 max_age_s: float | None = None):
        super().__init__(**({} if max_age_s is None else {"max_age_s": max_age_s}))
        self.timeout_s = timeout_s
        self.env = {**os.environ, **(env or {})}
        self._json_works: dict[str, bool] = {}

    async def _fetch(self) -> SlurmSnapshot:
        nodes, jobs, partitions, diag, ping = await asyncio.gather(
            self._read("nodes", ["scontrol", "show", "node", "--json"], ["sinfo", "--json"], required=True),
            self._read("jobs", ["squeue", "--json"]),
            self._read("partitions", ["scontrol", "show", "partition", "--json"],
                       ["scontrol", "-o", "show", "partition"], _partitions_from_text),
            self._read("diag", ["sdiag", "--json"], ["sdiag"], _diag_from_text),
            self._read("ping", ["scontrol", "ping", "--json"], ["scontrol", "ping"], _ping_from_text),
        )
        return build_snapshot(
            Answers(nodes=nodes, jobs=jobs, partitions=partitions, diag=diag, ping=ping),
            api="Slurm CLI", origin="the Slurm commands on this host", now=datetime.now(UTC),
        )

    # ---- running commands --------------------------------------------------------------------

    async def _read(self, key: str, command: list[str], fallback: list[str] | None = None,
                    parse: TextParser | None = None, *, required: bool = False) -> Answer:
        """``command``'s JSON; on a Slurm whose command lacks that ``--json``, ``fallback``'s
        (its JSON when ``parse`` is None, else its text through ``parse``). Failures of an
        optional part become the answer's ``error``; of a required one, they are raised."""
        if fallback is None or self._json_works.get(key, True):
            try:
                answer = await self._answer(command, None, required=required, no_json=fallback is not None)
            except _NoJson:
                self._json_works[key] = False
            else:
                self._json_works[key] = True
                return answer
        assert fallback is not None
        return await self._answer(fallback, parse, required=required, no_json=False)

    async def _answer(self, command: list[str], parse: TextParser | None, *, required: bool,
                      no_json: bool) -> Answer:
        what = " ".join(command)
        try:
            text = await self._run(command, raise_no_json=no_json)
            if parse is not None:
                try:
                    return parse(text, what)
                except ValueError as exc:
                    raise SourceProtocolError(f"`{what}` printed output gpudoc cannot read ({exc}).") from None
            return Answer(what, payload=_json_object(text, what))
        except SourceError as exc:
            if required:
                raise
            return Answer(what, error=str(exc))

    async def _run(self, command: list[str], *, raise_no_json: bool = False) -> str:
        what = " ".join(command)
        binary = shutil.which(command[0], path=self.env.get("PATH"))
        if binary is None:
            raise SlurmCliError(
                f"`{command[0]}` is not on this host's PATH; --slurm cli runs the Slurm commands "
                "here (install slurm-client, or use --slurm rest with SLURMRESTD_URL)."
            )
        try:
            process = await asyncio.create_subprocess_exec(
                binary, *command[1:], stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, env=self.env,
            )
        except OSError as exc:
            raise SlurmCliError(f"Cannot run `{what}`: {exc.strerror}.") from None
        try:
            out, err = await asyncio.wait_for(process.communicate(), self.timeout_s)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise SourceUnavailableError(
                f"`{what}` did not finish within {self.timeout_s:g}s. Is slurmctld reachable from "
                "this host (scontrol ping)? Raise SLURM_TIMEOUT_S if it is only slow."
            ) from None
        stderr = " ".join(err.decode(errors="replace").split())
        if raise_no_json and _NO_SUCH_OPTION.search(stderr):
            raise _NoJson(what)
        if process.returncode != 0 or (not out.strip() and "error" in stderr.lower()):
            detail = stderr[:STDERR_MAX_CHARS] + ("…" if len(stderr) > STDERR_MAX_CHARS else "")
            raise SourceUnavailableError(
                f"`{what}` failed (exit {process.returncode}): {detail or 'no message'}. Check that "
                "slurmctld is up (scontrol ping) and SLURM_CONF points at this cluster's slurm.conf."
            )
        return out.decode(errors="replace")


def _json_object(text: str, what: str) -> dict[str, Any]:
    try:
        payload = json.loads(text)
    except ValueError as exc:
        raise SourceProtocolError(f"`{what}` printed malformed JSON ({exc}; starts {text[:60]!r}).") from None
    if not isinstance(payload, dict):
        raise SourceProtocolError(f"`{what}` printed a {type(payload).__name__}, not a JSON object.")
    return payload


# ---- text forms (Slurm 22.05) ------------------------------------------------------------------


def _fields(line: str) -> dict[str, str]:
    """``Key=Value Key2=Value2`` as scontrol -o prints it (values contain no spaces here)."""
    return dict(part.split("=", 1) for part in line.split() if "=" in part)


def _minutes(text: str | None) -> int | None:
    """Slurm's time limits: ``UNLIMITED``, ``60``, ``01:00:00``, ``1-00:00:00``."""
    if not text or text.upper() in ("UNLIMITED", "NONE", "INFINITE"):
        return None
    days, _, clock = text.rpartition("-")
    parts = [int(p) for p in clock.split(":")]
    hours, minutes, seconds = ([0] * (3 - len(parts)) + parts) if len(parts) > 1 else (0, parts[0], 0)
    return int(days or 0) * 1440 + hours * 60 + minutes + (1 if seconds else 0)


def _partitions_from_text(text: str, what: str) -> Answer:
    """``scontrol -o show partition`` (one ``PartitionName=... Nodes=...`` line each) as
    v0.0.38's ``/partitions`` items, so one shape reads both."""
    partitions = []
    for line in text.splitlines():
        fields = _fields(line)
        if "PartitionName" not in fields:
            continue
        partitions.append({
            "name": fields["PartitionName"],
            "nodes": "" if fields.get("Nodes") == "(null)" else fields.get("Nodes", ""),
            "state": fields.get("State", "UNKNOWN"),
            "total_cpus": fields.get("TotalCPUs"),
            "max_time_limit": _minutes(fields.get("MaxTime")),
        })
    if not partitions and text.strip():
        raise ValueError("no PartitionName= lines")
    return Answer(what, payload={"partitions": partitions})


#: sdiag's text labels -> the names ``/diag`` uses (top section, then "Main schedule" and backfill)
_SDIAG_LABELS = {
    "Server thread count": "server_thread_count", "Agent queue size": "agent_queue_size",
    "DBD Agent queue size": "dbd_agent_queue_size", "Jobs submitted": "jobs_submitted",
    "Jobs started": "jobs_started", "Jobs completed": "jobs_completed", "Jobs canceled": "jobs_canceled",
    "Jobs failed": "jobs_failed",
}
_SDIAG_MAIN = {"Last cycle": "schedule_cycle_last", "Max cycle": "schedule_cycle_max",
               "Mean cycle": "schedule_cycle_mean", "Last queue length": "schedule_queue_length"}
_SDIAG_BACKFILL = {"Last cycle": "bf_cycle_last", "Total backfilled jobs (since last slurm start)": "bf_backfilled_jobs"}
_EPOCH = re.compile(r"\((\d+)\)\s*$")


def _diag_from_text(text: str, what: str) -> Answer:
    """``sdiag``'s report as the ``statistics`` object of ``/diag``."""
    stats: dict[str, Any] = {}
    section = _SDIAG_LABELS
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("Main schedule statistics"):
            section = _SDIAG_MAIN
        elif line.startswith("Backfilling stats"):
            section = _SDIAG_BACKFILL
        elif line.startswith("Remote Procedure Call"):
            break
        label, sep, value = line.partition(":")
        if not sep:
            continue
        value = value.strip()
        if line.startswith("Data since") and (m := _EPOCH.search(line)):
            stats["req_time_start"] = int(m.group(1))
        elif section is _SDIAG_BACKFILL and label == "Last cycle when" and (m := _EPOCH.search(line)):
            stats["bf_when_last_cycle"] = int(m.group(1))
        elif label.strip() in section and value.split()[0].isdigit():
            stats[section[label.strip()]] = int(value.split()[0])
    if not stats:
        raise ValueError("no statistics in it")
    return Answer(what, payload={"statistics": stats})


_PING = re.compile(r"Slurmctld\((\w+)\) at (\S+) is (\w+)")


def _ping_from_text(text: str, what: str) -> Answer:
    """``scontrol ping``: ``Slurmctld(primary) at head1 is UP`` per controller."""
    pings = [{"mode": m.group(1), "hostname": m.group(2), "pinged": m.group(3)} for m in _PING.finditer(text)]
    if not pings:
        raise ValueError("no controller in it")
    return Answer(what, payload={"pings": pings})

