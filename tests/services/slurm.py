"""A real Slurm 22.05 cluster on this one machine: a private munged, slurmctld, several slurmd
(``-N``) with fake GPU device files, and slurmrestd with JWT, all in one temp dir.

Why private everything: several test runs may share the machine (and a system munged may run).
Our munged has its own key, socket, pid and log files in the temp dir and slurm.conf points
every daemon and client at that socket (``AuthInfo=socket=...``); ports are picked free; the
daemons run in the foreground (``-D``/``-F``) so their pids are ours, and ``stop`` ends them by
pid. Job steps (slurmstepd and the job's own processes) run with the temp dir as their working
directory, so any a killed slurmd left behind are found and ended too.

Usage: ``cluster = SlurmCluster(tmp_dir); cluster.start(); ...; cluster.stop()``; ``env`` has
``SLURM_CONF`` for the CLI; ``token()`` mints a JWT for slurmrestd at ``rest_url``.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from tests.services import free_port, require_binary

T = TypeVar("T")

NODES = ("node-0", "node-1", "node-2", "node-3")
GPUS_PER_NODE = 8
GPU_TYPE = "a100"
#: seconds without an answer before slurmctld marks a slurmd DOWN (short, so tests are quick)
SLURMD_TIMEOUT_S = 5
OPENAPI_PLUGIN = "openapi/v0.0.38"


def require_slurm() -> None:
    """Skip (or fail in CI) unless every Slurm binary the cluster needs is installed."""
    for name, package in (("munged", "munge"), ("slurmctld", "slurmctld"), ("slurmd", "slurmd"),
                          ("slurmrestd", "slurmrestd"), ("squeue", "slurm-client")):
        require_binary(name, package=package, candidates=(f"/usr/sbin/{name}",))
    plugins = tuple(str(path) for path in Path("/usr/lib").glob("*/slurm-wlm/auth_jwt.so"))
    require_binary("auth_jwt.so", package="slurm-wlm-jwt-plugin", candidates=plugins)


class SlurmCluster:
    def __init__(self, root: Path, nodes: tuple[str, ...] = NODES):
        self.root = root
        self.nodes = nodes
        self.host = socket.gethostname().split(".")[0]
        self.user = pwd.getpwuid(os.getuid()).pw_name
        self.conf = root / "slurm.conf"
        self.munge_socket = root / "munge.socket"
        self.ctld_port, self.restd_port = free_port(), free_port()
        self.slurmd_ports = {node: free_port() for node in nodes}
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    # ---- lifecycle -------------------------------------------------------------------------

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.restd_port}"

    def start(self) -> None:
        self._write_files()
        try:
            self._start_munged()
            self._spawn("slurmctld", ["slurmctld", "-D", "-c", "-f", str(self.conf)])
            self.wait_for(lambda: "is UP" in self.cli("scontrol", "ping", check=False).stdout,
                          "slurmctld to answer", timeout=30)
            for node in self.nodes:
                self.start_slurmd(node)
            self.wait_for(lambda: self.node_states() == {n: "idle" for n in self.nodes},
                          "every slurmd to register idle", timeout=30)
            self._start_slurmrestd()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Cancel the jobs, then end every process we started, newest first, by pid."""
        if "slurmctld" in self.processes and self.processes["slurmctld"].poll() is None:
            self.cli("scancel", "--full", "--user", self.user, check=False, timeout=10)
        for name in reversed(list(self.processes)):
            self._end(name)
        for pid in self._job_processes():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def start_slurmd(self, node: str) -> None:
        self._spawn(f"slurmd-{node}", ["slurmd", "-D", "-N", node, "-f", str(self.conf)])

    def kill_slurmd(self, node: str) -> None:
        """What a crashed slurmd looks like to slurmctld: the process is gone without a word."""
        process = self.processes[f"slurmd-{node}"]
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

    # ---- using it --------------------------------------------------------------------------

    def cli(self, *args: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(args, env=self.env, cwd=self.root, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
        return result

    def sbatch(self, *args: str, command: str = "sleep 300") -> str:
        """Submit a batch job running ``command`` in the cluster's dir; returns its job id."""
        jobs = self.root / "jobs"
        jobs.mkdir(exist_ok=True)
        out = self.cli("sbatch", "--parsable", f"--chdir={jobs}", "--output=/dev/null", *args, "--wrap", command)
        return out.stdout.strip().split(";")[0]

    def token(self, user: str | None = None, lifespan_s: int = 3600) -> str:
        out = self.cli("scontrol", "token", f"username={user or self.user}", f"lifespan={lifespan_s}")
        return out.stdout.strip().split("=", 1)[1]

    def node_states(self) -> dict[str, str]:
        out = self.cli("sinfo", "-h", "-N", "-o", "%N %T", check=False).stdout
        return dict(line.split(None, 1) for line in out.splitlines() if line.strip())

    def job_states(self) -> dict[str, str]:
        out = self.cli("squeue", "-h", "-t", "all", "-o", "%i %T", check=False).stdout
        return dict(line.split(None, 1) for line in out.splitlines() if line.strip())

    @staticmethod
    def wait_for(check: Callable[[], T], what: str, timeout: float = 30, every: float = 0.25) -> T:
        """Poll ``check`` until it returns something truthy (no fixed sleeps)."""
        deadline = time.monotonic() + timeout
        while True:
            result = check()
            if result:
                return result
            if time.monotonic() > deadline:
                raise TimeoutError(f"waited {timeout:g}s for {what}")
            time.sleep(every)

    # ---- internals -------------------------------------------------------------------------

    def _write_files(self) -> None:
        root = self.root
        for sub in ("state", "spool", "log", "dev", "jobs"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        root.chmod(0o755)  # slurmrestd runs as nobody and must read slurm.conf
        for index in range(GPUS_PER_NODE):
            (root / "dev" / f"nvidia{index}").touch()
        (root / "munge.key").write_bytes(secrets.token_bytes(1024))
        (root / "munge.key").chmod(0o600)
        (root / "jwt.key").write_bytes(secrets.token_bytes(32))
        (root / "jwt.key").chmod(0o600)
        first, last = self.nodes[0].rsplit("-", 1)[1], self.nodes[-1].rsplit("-", 1)[1]
        node_range = f"node-[{first}-{last}]"
        node_lines = "\n".join(
            f"NodeName={node} NodeHostname={self.host} CPUs=8 RealMemory=8000 "
            f"Gres=gpu:{GPU_TYPE}:{GPUS_PER_NODE} Port={self.slurmd_ports[node]}"
            for node in self.nodes
        )
        self.conf.write_text(f"""\
ClusterName=gpudoc
SlurmctldHost={self.host}
SlurmctldPort={self.ctld_port}
SlurmUser={self.user}
AuthType=auth/munge
AuthInfo=socket={self.munge_socket}
CredType=cred/munge
AuthAltTypes=auth/jwt
AuthAltParameters=jwt_key={root / 'jwt.key'}
StateSaveLocation={root / 'state'}
SlurmdSpoolDir={root / 'spool'}/%n
SlurmdPidFile={root}/slurmd-%n.pid
SlurmctldPidFile={root}/slurmctld.pid
SlurmctldLogFile={root / 'log'}/slurmctld.log
SlurmdLogFile={root / 'log'}/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=500
ReturnToService=2
GresTypes=gpu
SlurmdParameters=config_overrides
SlurmdTimeout={SLURMD_TIMEOUT_S}
MessageTimeout=2
TCPTimeout=2
SchedulerParameters=batch_sched_delay=0,sched_min_interval=200000
MinJobAge=600
JobRequeue=0
MailProg=/bin/true
{node_lines}
PartitionName=gpu Nodes={node_range} Default=YES State=UP MaxTime=1-00:00:00
PartitionName=debug Nodes={self.nodes[0]} State=UP MaxTime=01:00:00
""")
        (root / "gres.conf").write_text(
            f"NodeName={node_range} Name=gpu Type={GPU_TYPE} File={root / 'dev'}/nvidia[0-{GPUS_PER_NODE - 1}]\n"
        )

    def _start_munged(self) -> None:
        root = self.root
        self._spawn("munged", [
            "munged", "-F", "--force", f"--socket={self.munge_socket}", f"--key-file={root / 'munge.key'}",
            f"--pid-file={root / 'munged.pid'}", f"--log-file={root / 'log' / 'munged.log'}",
            f"--seed-file={root / 'munged.seed'}",
        ])

        def works() -> bool:
            if not self.munge_socket.exists():
                return False
            encoded = subprocess.run(["munge", "-n", "-S", str(self.munge_socket)], capture_output=True)
            decoded = subprocess.run(["unmunge", "-S", str(self.munge_socket)], input=encoded.stdout,
                                     capture_output=True)
            return decoded.returncode == 0

        self.wait_for(works, "munged to answer", timeout=15)

    def _start_slurmrestd(self) -> None:
        command = ["slurmrestd", "-f", str(self.conf), "-a", "rest_auth/jwt", "-s", OPENAPI_PLUGIN]
        if os.getuid() == 0:  # slurmrestd refuses to serve as root
            command += ["-u", "nobody", "-g", "nogroup"]
        self._spawn("slurmrestd", [*command, f"127.0.0.1:{self.restd_port}"], extra_env={"SLURM_JWT": "daemon"})

        def listening() -> bool:
            with socket.socket() as probe:
                return probe.connect_ex(("127.0.0.1", self.restd_port)) == 0

        self.wait_for(listening, "slurmrestd to listen", timeout=15)

    def _spawn(self, name: str, command: list[str], extra_env: dict[str, str] | None = None) -> None:
        # the daemons live in /usr/sbin, which a non-root PATH may lack
        command = [shutil.which(command[0]) or f"/usr/sbin/{command[0]}", *command[1:]]
        log = open(self.root / "log" / f"{name}.out", "wb")
        try:
            self.processes[name] = subprocess.Popen(
                command, cwd=self.root, env={**self.env, **(extra_env or {})}, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
            )
        finally:
            log.close()
        time.sleep(0.05)
        if self.processes[name].poll() is not None:
            tail = (self.root / "log" / f"{name}.out").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{name} exited at once ({self.processes[name].returncode}): {tail}")

    def _end(self, name: str) -> None:
        process = self.processes.pop(name)
        if process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def _job_processes(self) -> list[int]:
        """Job steps a dead slurmd left behind: slurmstepd (working in our dir, as its slurmd
        did) and the jobs' own processes (working in ``jobs/``, where ``sbatch`` puts them)."""
        jobs = str(self.root / "jobs")
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                cwd = os.readlink(entry / "cwd")
                command = (entry / "comm").read_text().strip()
            except OSError:
                continue
            if cwd == jobs or (cwd == str(self.root) and command == "slurmstepd"):
                found.append(int(entry.name))
        return found


# ---- the state the tests read --------------------------------------------------------------


@dataclass
class FaultyCluster:
    """What ``make_faulty`` did: job ids by role, and the two broken nodes."""

    jobs: dict[str, str] = field(default_factory=dict)
    drained: str = "node-3"
    drain_reason: str = "XID 79 on gpu-5"
    dead: str = "node-2"
    slurmd_killed_at: float = 0.0


def make_faulty(cluster: SlurmCluster) -> FaultyCluster:
    """A busy cluster in the states operators ask about, produced by Slurm itself:

    - ``train`` (8 GPUs on node-0) and ``eval`` (2 GPUs on node-3) RUNNING, with GPU indices;
    - ``broken`` FAILED with exit code 3, ``quick`` COMPLETED;
    - ``big`` PENDING on Resources, ``next`` PENDING on Priority, ``pinned`` on
      ReqNodeNotAvail (it asks for the drained node), ``held`` on JobHeldUser, ``after`` on
      Dependency;
    - node-3 drained with reason "XID 79 on gpu-5" while ``eval`` still runs (draining);
    - node-2's slurmd killed: node-2 DOWN+NOT_RESPONDING, ``multi`` (node-1 and node-2) NODE_FAIL.
    """
    faults = FaultyCluster()
    jobs = faults.jobs
    jobs["train"] = cluster.sbatch("-J", "llama3-8b-sft", "-A", "ml-research", "--gres=gpu:8", "-w", "node-0")
    jobs["multi"] = cluster.sbatch("-J", "gpt-neox-20b", "-A", "ml-research", "--gres=gpu:8", "-N2", "-w", "node-[1-2]")
    jobs["eval"] = cluster.sbatch("-J", "eval-small", "-A", "eval", "--gres=gpu:2", "-c", "2", "-w", "node-3")
    cluster.wait_for(lambda: all(cluster.job_states().get(jobs[k]) == "RUNNING" for k in ("train", "multi", "eval")),
                     "the first jobs to run")
    jobs["broken"] = cluster.sbatch("-J", "broken-run", "-A", "eval", "-p", "debug", "-t", "1", command="exit 3")
    jobs["quick"] = cluster.sbatch("-J", "quick-ok", "-p", "debug", "-t", "1", command="true")
    cluster.wait_for(lambda: cluster.job_states().get(jobs["broken"]) == "FAILED"
                     and cluster.job_states().get(jobs["quick"]) == "COMPLETED", "the short jobs to end")
    jobs["big"] = cluster.sbatch("-J", "big-train", "-A", "ml-research", "--gres=gpu:8", "-N2")
    jobs["next"] = cluster.sbatch("-J", "next-train", "-A", "ml-research", "--gres=gpu:8")
    cluster.cli("scontrol", "update", f"nodename={faults.drained}", "state=drain", f"reason={faults.drain_reason}")
    jobs["pinned"] = cluster.sbatch("-J", "pinned-n3", "-A", "eval", "--gres=gpu:1", "-w", faults.drained)
    jobs["held"] = cluster.sbatch("-J", "held-job", "-H", "--gres=gpu:1")
    jobs["after"] = cluster.sbatch("-J", "after-big", f"--dependency=afterok:{jobs['big']}", "--gres=gpu:1")
    reasons = {"big": "Resources", "next": "Priority", "pinned": "ReqNodeNotAvail", "held": "JobHeldUser",
               "after": "Dependency"}
    cluster.wait_for(lambda: _reasons(cluster, {jobs[k]: r for k, r in reasons.items()}), "the pending reasons")
    faults.slurmd_killed_at = time.time()
    cluster.kill_slurmd(faults.dead)
    cluster.wait_for(lambda: cluster.node_states().get(faults.dead) == "down*"
                     and cluster.job_states().get(jobs["multi"]) == "NODE_FAIL",
                     f"{faults.dead} to go down and its job to end NODE_FAIL", timeout=60)
    return faults


def _reasons(cluster: SlurmCluster, wanted: dict[str, str]) -> bool:
    out = cluster.cli("squeue", "-h", "-t", "PD", "-o", "%i %r", check=False).stdout
    seen = dict(line.split(None, 1) for line in out.splitlines() if line.strip())
    return all(seen.get(job, "").startswith(reason) for job, reason in wanted.items())
