"""What an operator's question is about, as structured facts: topics, and the nodes, GPUs and jobs it names.

Why resolve names against the cluster: "node 3", "Node-3" and "node3" are one node, and
"node-9" on an eight-node cluster is none. The agent scopes its follow-up calls to nodes that
exist, and when the operator named one that does not, it answers with the valid ids instead of
asking the model to try again (only the operator can fix that).
"""

from __future__ import annotations

import re

from pydantic import BaseModel, Field

from gpudoc.graph.topics import topics_in
from gpudoc.tools.capabilities import Topic
from gpudoc.tools.render_slurm import normalise_job_state
from gpudoc.tools.sources.base import ClusterSource, SourceError, UnknownNodeError

_NODE = re.compile(r"\bnode[-_ ]?(\d+)\b", re.IGNORECASE)
_GPU = re.compile(r"\bgpu[-_ #]?(\d+)\b", re.IGNORECASE)
_GPU_ON_NODE = re.compile(r"\s*(?:on|of|in|at|@)\s+node[-_ ]?(\d+)\b", re.IGNORECASE)
_JOB = re.compile(r"\bjob(?:\s+id)?\s*#?\s*(\d+)\b", re.IGNORECASE)
_JOB_STATE_WORDS = {"pending": "PENDING", "running": "RUNNING", "failed": "FAILED", "completed": "COMPLETED",
                    "cancelled": "CANCELLED", "canceled": "CANCELLED", "timeout": "TIMEOUT", "preempted": "PREEMPTED"}


class QuestionFacts(BaseModel):
    """The structured reading of one question."""

    topics: list[Topic] = Field(default_factory=list, description="parts of the cluster it asks about")
    nodes: list[str] = Field(default_factory=list, description="node ids it names that exist")
    unknown_nodes: list[str] = Field(default_factory=list, description="node ids it names that do not exist")
    gpus: list[str] = Field(default_factory=list, description='GPUs it names: "node-2/gpu-3", or "gpu-3" alone')
    unknown_gpus: list[str] = Field(default_factory=list, description="GPUs it names that the node does not have")
    job_ids: list[str] = Field(default_factory=list, description="Slurm job ids it names (that exist, when the "
                               "source lists jobs)")
    unknown_jobs: list[str] = Field(default_factory=list, description="job ids it names that the scheduler lacks")
    job_states: list[str] = Field(default_factory=list, description="job states it asks about (PENDING, ...)")

    @property
    def node(self) -> str | None:
        """The node the question is about, when it names exactly one that exists."""
        return self.nodes[0] if len(self.nodes) == 1 else None

    @property
    def about_cluster(self) -> bool:
        """Whether answering needs cluster evidence (it asks about a topic or names something)."""
        return bool(self.topics or self.nodes or self.unknown_nodes or self.gpus or self.unknown_gpus
                    or self.job_ids or self.unknown_jobs)


def _node_mentions(question: str) -> list[tuple[int, str]]:
    return [(m.start(), f"node-{int(m.group(1))}") for m in _NODE.finditer(question)]


def named_nodes(question: str) -> list[str]:
    """The node ids a question names (``node-3``, ``node 3``, ``node3``), normalised, unchecked."""
    return list(dict.fromkeys(node for _, node in _node_mentions(question)))


async def read_question(question: str, source: ClusterSource | None) -> QuestionFacts:
    """Topics by word, names checked against ``source``; never raises (a failing source leaves names unchecked)."""
    topics = topics_in(question)
    mentions = _node_mentions(question)
    nodes: list[str] = []
    unknown: list[str] = []
    for _, named in mentions:
        resolved = await _resolve(source, named)
        target = nodes if resolved else unknown
        value = resolved or named
        if value not in target:
            target.append(value)
    gpus: list[str] = []
    for match in _GPU.finditer(question):
        after = _GPU_ON_NODE.match(question, match.end())
        preceding = [node for position, node in mentions if position < match.start()]
        if after:  # "GPU 3 on node-2"
            node = f"node-{int(after.group(1))}"
        else:  # "node-2/gpu-3", "node-2 GPU 3", or the one node the question names
            node = preceding[-1] if preceding else (nodes[0] if len(nodes) == 1 else None)
        label = f"gpu-{int(match.group(1))}"
        gpu = f"{node}/{label}" if node and node in nodes else label
        if gpu not in gpus:
            gpus.append(gpu)
    gpus, unknown_gpus = await _checked_gpus(source, gpus)
    job_ids, unknown_jobs = await _checked_jobs(source, list(dict.fromkeys(m.group(1) for m in _JOB.finditer(question))))
    states: list[str] = []
    if "jobs" in topics or job_ids:
        for word in re.findall(r"[a-z]+", question.lower()):
            state = _JOB_STATE_WORDS.get(word)
            if state and normalise_job_state(state) not in states:
                states.append(normalise_job_state(state))
    return QuestionFacts(topics=topics, nodes=nodes, unknown_nodes=unknown, gpus=gpus, unknown_gpus=unknown_gpus,
                         job_ids=job_ids, unknown_jobs=unknown_jobs, job_states=states)


async def _checked_gpus(source: ClusterSource | None, gpus: list[str]) -> tuple[list[str], list[str]]:
    """GPUs named with their node, split by whether the node has them (unchecked when the source is down)."""
    known: list[str] = []
    unknown: list[str] = []
    for gpu in gpus:
        node, _, label = gpu.rpartition("/")
        if not node or source is None:
            known.append(gpu)
            continue
        try:
            indices = {g.index for g in (await source.node_metrics(node)).gpus}
        except SourceError:
            known.append(gpu)
            continue
        (known if not indices or int(label.removeprefix("gpu-")) in indices else unknown).append(gpu)
    return known, unknown


async def _checked_jobs(source: ClusterSource | None, job_ids: list[str]) -> tuple[list[str], list[str]]:
    """Job ids split by whether the scheduler lists them (unchecked when it lists no jobs or is down)."""
    if not job_ids or source is None:
        return job_ids, []
    try:
        snapshot = await source.slurm()
    except SourceError:
        return job_ids, []
    if snapshot is None or snapshot.jobs is None:
        return job_ids, []
    listed = {job.job_id for job in snapshot.jobs}
    return [j for j in job_ids if j in listed], [j for j in job_ids if j not in listed]


async def _resolve(source: ClusterSource | None, named: str) -> str | None:
    if source is None:
        return named
    try:
        return await source.resolve_node(named)
    except UnknownNodeError:
        return None
    except SourceError:
        return named  # the source is down: keep the name as written; the tools will say more
