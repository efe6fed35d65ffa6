"""The job plan: which Slurm job holds which GPUs when, and how hard it works them.

Why a plan instead of a live scheduler: the plan is generated once from the seed (and bent by
the injected faults), then every question (a GPU's utilisation at 11:42, the queue at "now",
a node's ``gres_used``) is answered from it without state, so any time window is reproducible.

Times are seconds relative to the scenario's "now" at creation (negative: in the past).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from gpudoc.tools.sim.topology import Topology

USERS = ["akumar", "jchen", "mgarcia", "spatel", "lnguyen", "rsmith", "okim", "tbrown"]

_NAMES = {
    "train": ["llama3-8b-sft", "gpt-neox-20b-pretrain", "vit-l16-imagenet", "mixtral-moe-ablation",
              "bert-large-mlm", "sdxl-finetune", "whisper-large-v3-ft", "esm2-650m-pretrain",
              "rlhf-ppo-13b", "llama3-70b-lora"],
    "inference": ["vllm-serve-eval", "batch-embed-c4", "triton-bench", "retrieval-index-build"],
    "interactive": ["jupyter", "bash", "interactive", "nsys-profile"],
    "eval": ["mmlu-eval", "humaneval-sweep", "lm-eval-harness", "ckpt-eval-step42k"],
}
# Node layouts: how the 8 GPUs of a node are cut into job-sized blocks.
_LAYOUTS = [[8], [8], [4, 4], [4, 2, 2], [2, 2, 4], [2, 2, 2, 2], [4, 2, 1, 1], [1, 1, 2, 4]]
MINUTE = 60.0
HOUR = 3600.0


@dataclass
class WorkProfile:
    """How a job loads its GPUs; ranges keep the baseline inside domain.md's A100 fleet figures."""

    kind: str
    util: float
    jitter: float
    mem_frac: float
    heat: float
    power_frac: float
    ckpt_period_s: float | None = None
    nvlink_gbps: float = 0.0
    idle_after_s: float | None = None


@dataclass
class PlannedJob:
    key: int
    name: str
    user: str
    partition: str
    alloc: dict[int, list[int]]
    submit: float
    start: float | None
    end: float | None
    final_state: str
    profile: WorkProfile
    exit_code: int | None = None
    pending_reason: str | None = None
    pinned: bool = False
    requested_gpus: int = 0
    job_id: str = ""
    account: str | None = None  # None: the user's usual account

    @property
    def gpus(self) -> int:
        """GPUs held once running; the request while pending."""
        return sum(len(v) for v in self.alloc.values()) or self.requested_gpus

    def runs_at(self, t: float) -> bool:
        return self.start is not None and self.start <= t and (self.end is None or t < self.end)

    def state_at(self, t: float) -> str:
        if self.start is None or self.start > t:
            return "PENDING"
        return "RUNNING" if self.end is None or t < self.end else self.final_state

    def overlaps(self, node: int, gpus: list[int], since: float) -> bool:
        if self.start is None or node not in self.alloc or not set(gpus) & set(self.alloc[node]):
            return False
        return self.end is None or self.end > since


def make_profile(kind: str, rng: random.Random, gpus: int) -> WorkProfile:
    """A job's load profile, drawn within realistic ranges for its kind."""
    if kind == "train":
        return WorkProfile(kind, rng.uniform(88, 98), rng.uniform(1.5, 3.5), rng.uniform(0.7, 0.94),
                           rng.uniform(30, 37), rng.uniform(0.72, 0.84), rng.uniform(18, 40) * MINUTE,
                           rng.uniform(60, 140) if gpus > 1 else 0.0)
    if kind == "eval":
        return WorkProfile(kind, rng.uniform(70, 92), rng.uniform(3, 6), rng.uniform(0.5, 0.8),
                           rng.uniform(25, 32), rng.uniform(0.6, 0.75), None, 20.0 if gpus > 1 else 0.0)
    if kind == "inference":
        return WorkProfile(kind, rng.uniform(30, 65), rng.uniform(6, 12), rng.uniform(0.5, 0.9),
                           rng.uniform(18, 26), rng.uniform(0.45, 0.6))
    return WorkProfile(kind, rng.uniform(8, 35), rng.uniform(5, 10), rng.uniform(0.1, 0.45),
                       rng.uniform(10, 18), rng.uniform(0.3, 0.45))


class JobPlan:
    """All jobs of the simulation, with lookups by GPU and time."""

    def __init__(self, topo: Topology, rng: random.Random):
        self.topo = topo
        self.rng = rng
        self.jobs: list[PlannedJob] = []
        self._index: dict[tuple[int, int], list[PlannedJob]] | None = None

    # ---- building ----------------------------------------------------------------------
    def add(self, *, kind: str, alloc: dict[int, list[int]], submit: float, start: float | None,
            end: float | None = None, final_state: str = "COMPLETED", name: str | None = None,
            user: str | None = None, partition: str | None = None, exit_code: int | None = None,
            pending_reason: str | None = None, profile: WorkProfile | None = None,
            pinned: bool = False, requested_gpus: int = 0, account: str | None = None) -> PlannedJob:
        gpus = sum(len(v) for v in alloc.values()) or requested_gpus or 1
        job = PlannedJob(
            key=len(self.jobs), name=name or self.rng.choice(_NAMES[kind]), user=user or self.rng.choice(USERS),
            partition=partition or self._partition_for(kind, list(alloc)), alloc=alloc, submit=round(submit),
            start=None if start is None else round(start), end=None if end is None else round(end), final_state=final_state, profile=profile or make_profile(kind, self.rng, gpus),
            exit_code=exit_code if exit_code is not None else (0 if final_state == "COMPLETED" else None),
            pending_reason=pending_reason, pinned=pinned, requested_gpus=requested_gpus, account=account,
        )
        self.jobs.append(job)
        self._index = None
        return job

    def _partition_for(self, kind: str, nodes: list[int]) -> str:
        parts = self.topo.partitions()
        if kind == "interactive" and nodes and all(n in parts["debug"] for n in nodes):
            return "debug"
        if kind == "train" and nodes and all(n in parts["long"] for n in nodes) and self.rng.random() < 0.3:
            return "long"
        return "gpu"

    def evict(self, node: int, gpus: list[int], since: float) -> None:
        """Make these GPUs free from ``since`` on: unpinned jobs using them never existed there.

        A multi-node job losing this node keeps running on its other nodes (as a job of its
        own), so evicting never leaves a neighbour idle by accident.
        """
        kept: list[PlannedJob] = []
        for job in self.jobs:
            if job.pinned or not job.overlaps(node, gpus, since):
                kept.append(job)
                continue
            rest = {n: g for n, g in job.alloc.items() if n != node}
            if rest:
                job.alloc = rest
                kept.append(job)
        self.jobs = kept
        self._index = None

    def pinned_gpus(self, node: int, since: float) -> set[int]:
        return {g for j in self.jobs if j.pinned and j.overlaps(node, list(range(8)), since)
                for g in j.alloc.get(node, [])}

    def _pinned_end(self, node: int, gpus: range, since: float) -> float:
        """When the last pinned job holding any of ``gpus`` on ``node`` after ``since`` ends."""
        ends = [j.end for j in self.jobs
                if j.pinned and j.end is not None and j.overlaps(node, list(gpus), since)]
        return max(ends, default=since)

    def ensure_job(self, node: int, gpu: int, since: float, *, block: int, kind: str, start: float,
                   min_gpus: int = 1, reuse: bool = True, **job_fields: object) -> PlannedJob:
        """The job running on (node, gpu) since ``since``, pinned so later faults keep it.

        With ``reuse``, the baseline job there is taken when it started early enough and holds at
        least ``min_gpus`` GPUs on the node. Otherwise room is made (evicting unpinned jobs) and a
        job starting at ``start`` is added on the ``block``-aligned GPUs around ``gpu``. A job
        another fault already pinned there is shared.
        """
        current = self.running_at(node, gpu, 0.0)
        if current is not None and (current.pinned or (
                reuse and current.start is not None and current.start <= since
                and len(current.alloc.get(node, [])) >= min_gpus)):
            current.pinned = True
            return current
        first = (gpu // block) * block
        block_gpus = range(first, first + block)
        taken = self.pinned_gpus(node, start)
        if gpu in taken or sum(g not in taken for g in block_gpus) < min_gpus:
            # Another fault's job held these GPUs (it has ended, or it would have been shared
            # above): start once it is gone, so no GPU ever runs two jobs at once.
            start = max(start, self._pinned_end(node, block_gpus, start) + 60.0)
            taken = self.pinned_gpus(node, start)
        wanted = sorted(g for g in block_gpus if g not in taken) or [gpu]
        self.evict(node, wanted, start)
        job_fields.setdefault("submit", start - 300.0)
        return self.add(kind=kind, alloc={node: wanted}, start=start, pinned=True,
                        **job_fields)  # type: ignore[arg-type]

    def ensure_multinode(self, node: int, since: float, start: float, **job_fields: object) -> PlannedJob:
        """A running job spanning ``node`` and a neighbour (when the cluster has one), pinned."""
        for job in self.jobs_on(node, 0.0):
            if len(job.alloc) > 1 and job.start is not None and job.start <= since:
                job.pinned = True
                return job
        partner = node + 1 if node + 1 < self.topo.nodes else node - 1
        alloc = {}
        for n in sorted({node, partner} if partner >= 0 else {node}):
            free = [g for g in range(8) if g not in self.pinned_gpus(n, start)]
            self.evict(n, free, start)
            alloc[n] = free
        job_fields.setdefault("submit", start - 900.0)
        return self.add(kind="train", alloc=alloc, start=start, pinned=True,
                        **job_fields)  # type: ignore[arg-type]

    def end_job(self, job: PlannedJob, at: float, state: str, exit_code: int | None) -> None:
        """End a job at ``at`` unless it already ended earlier."""
        if job.end is not None and job.end <= at:
            return
        job.end, job.final_state, job.exit_code = at, state, exit_code
        self._index = None

    def finalize(self) -> None:
        """Assign Slurm job ids in submit order, as slurmctld would."""
        first = 10231 + self.rng.randrange(0, 400)
        for offset, job in enumerate(sorted(self.jobs, key=lambda j: (j.submit, j.key))):
            job.job_id = str(first + offset * 3 + self.rng.randrange(0, 3))

    # ---- lookups -----------------------------------------------------------------------
    def _by_gpu(self) -> dict[tuple[int, int], list[PlannedJob]]:
        if self._index is None:
            index: dict[tuple[int, int], list[PlannedJob]] = {}
            for job in self.jobs:
                if job.start is None:
                    continue
                for n, gpus in job.alloc.items():
                    for g in gpus:
                        index.setdefault((n, g), []).append(job)
            for jobs in index.values():
                jobs.sort(key=lambda j: j.start or 0.0)
            self._index = index
        return self._index

    def gpu_jobs(self, node: int, gpu: int) -> list[PlannedJob]:
        """Jobs that ever ran on this GPU, by start time."""
        return self._by_gpu().get((node, gpu), [])

    def running_at(self, node: int, gpu: int, t: float) -> PlannedJob | None:
        for job in self.gpu_jobs(node, gpu):
            if job.runs_at(t):
                return job
        return None

    def jobs_on(self, node: int, t: float) -> list[PlannedJob]:
        """Jobs running on a node at ``t``."""
        return [j for j in self.jobs if node in j.alloc and j.runs_at(t)]

    def by_id(self, job_id: str) -> PlannedJob | None:
        return next((j for j in self.jobs if j.job_id == job_id), None)


def generate_baseline(topo: Topology, seed: int) -> JobPlan:
    """A busy-but-healthy cluster: most GPUs held by running jobs, some idle, a realistic queue."""
    rng = random.Random(f"gpudoc-sim-plan:{seed}:{topo.nodes}")
    plan = JobPlan(topo, rng)
    node = 0
    while node < topo.nodes:
        if node + 1 < topo.nodes and rng.random() < 0.2:
            _long_job(plan, rng, {node: list(range(8)), node + 1: list(range(8))}, "train")
            node += 2
            continue
        _fill_node(plan, rng, node)
        node += 1
    _queue(plan, rng, topo)
    return plan


def _long_job(plan: JobPlan, rng: random.Random, alloc: dict[int, list[int]], kind: str) -> PlannedJob:
    start = -rng.uniform(2, 40) * HOUR
    return plan.add(kind=kind, alloc=alloc, submit=start - rng.uniform(1, 90) * MINUTE, start=start)


def _fill_node(plan: JobPlan, rng: random.Random, node: int) -> None:
    blocks, first, any_running = rng.choice(_LAYOUTS), 0, False
    for i, size in enumerate(blocks):
        gpus = list(range(first, first + size))
        first += size
        last_block = i == len(blocks) - 1
        kind = rng.choice(["train", "train", "eval", "inference"] if size >= 4 else
                          ["train", "inference", "interactive", "eval"])
        roll = rng.random()
        if roll < 0.22 and not (last_block and not any_running):
            if rng.random() < 0.6:  # a job finished in the last hour: busy, then idle
                end = -rng.uniform(5, 50) * MINUTE
                start = end - rng.uniform(0.5, 6) * HOUR
                plan.add(kind=kind, alloc={node: gpus}, submit=start - rng.uniform(1, 30) * MINUTE, start=start,
                         end=end, final_state=rng.choice(["COMPLETED", "COMPLETED", "CANCELLED", "FAILED", "TIMEOUT"]),
                         exit_code=None)
            continue
        any_running = True
        if roll < 0.4:  # started within the last hour, after an earlier job on these GPUs ended
            start = -rng.uniform(8, 50) * MINUTE
            prev_end = start - rng.uniform(1, 4) * MINUTE
            prev_start = prev_end - rng.uniform(1, 8) * HOUR
            plan.add(kind=kind, alloc={node: gpus}, submit=prev_start - 600, start=prev_start, end=prev_end,
                     final_state=rng.choice(["COMPLETED", "COMPLETED", "FAILED", "CANCELLED"]))
            plan.add(kind=kind, alloc={node: gpus}, submit=start - rng.uniform(5, 120) * MINUTE, start=start)
        else:
            _long_job(plan, rng, {node: gpus}, kind)


def _queue(plan: JobPlan, rng: random.Random, topo: Topology) -> None:
    """Pending jobs with the reasons an operator sees every day."""
    big = 16 if topo.nodes > 1 else 8
    pending = [("Resources", big, "train"), ("Priority", 8, "train"), ("Priority", 4, "eval"),
               ("QOSMaxGRESPerUser", 8, "train"), ("Dependency", 2, "eval"), ("Priority", 1, "interactive")]
    for reason, gpus, kind in pending:
        plan.add(kind=kind, alloc={}, submit=-rng.uniform(3, 150) * MINUTE, start=None, pending_reason=reason,
                 partition="gpu", requested_gpus=gpus,
                 user="mgarcia" if reason == "QOSMaxGRESPerUser" else None)
