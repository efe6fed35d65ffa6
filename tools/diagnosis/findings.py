"""The unit of deterministic diagnosis: one finding about one subject.

Why stable rule ids and subjects: evals, UIs and operators' runbooks key on them ("every
``gpu.xid79_fell_off_bus`` means an RMA ticket"), so they must not change with wording.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from gpudoc.tools.models.text import ComposedText

Severity = Literal["critical", "warning", "info"]

#: what a finding blames; "hardware" means a GPU part (a drain/RMA candidate), "application" a
#: user's program, so that consumers can tell "do not drain" findings apart without parsing text
Category = Literal["hardware", "host", "network", "application", "scheduling", "alerting"]

SEVERITY_ORDER: dict[str, int] = {"critical": 0, "warning": 1, "info": 2}


class Finding(BaseModel):
    """A conclusion drawn from cluster facts without any language model.

    Its text is composed from cleaned cluster values (``ClusterText``, ``ClusterName``); the
    ``ComposedText`` fields make sure no way of putting them together yields a second line, a
    link or an image.
    """

    severity: Severity
    subject: ComposedText = Field(description='"node-3", "node-3/gpu-5" or "job 1234"')
    rule: str = Field(description='stable id, e.g. "gpu.xid79_fell_off_bus"')
    title: ComposedText = Field("", description="one line an operator reads first")
    evidence: list[ComposedText] = Field(default_factory=list, description="facts with their numbers")
    cause: ComposedText = ""
    action: ComposedText = ""
    category: Category = "hardware"
    nodes: list[ComposedText] = Field(default_factory=list, description="nodes the finding concerns")
    gpus: list[ComposedText] = Field(default_factory=list, description='GPUs it concerns, as "node-3/gpu-5"')
    job_id: ComposedText | None = Field(None, description="Slurm job involved, when there is one")

    @property
    def subject_label(self) -> str:
        """The subject as a person reads it: a bare job id says it is a job ("job 1234")."""
        return f"job {self.subject}" if self.job_id is not None and self.subject == self.job_id else self.subject


class DiagnosisReport(BaseModel):
    """All findings of one diagnosis run, most severe first."""

    generated_at: datetime
    source: str
    scope: str = Field("cluster", description='"cluster" or the node id that was examined')
    nodes_examined: int
    gpus_examined: int
    findings: list[Finding] = Field(default_factory=list)
    limitations: list[ComposedText] = Field(
        default_factory=list, description="facts the source could not provide, so were not examined"
    )

    def examined(self) -> str:
        """"8 nodes and 64 GPUs": the scope every rendering of a report states first."""

        def plural(n: int, noun: str) -> str:
            return f"{n} {noun}" + ("" if n == 1 else "s")

        return f"{plural(self.nodes_examined, 'node')} and {plural(self.gpus_examined, 'GPU')}"

    def counts(self) -> dict[str, int]:
        counts = {"critical": 0, "warning": 0, "info": 0}
        for finding in self.findings:
            counts[finding.severity] += 1
        return counts
