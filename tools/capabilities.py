"""What a tool is for, as data the agent routes on: the tool's ``metadata["gpudoc"]``.

Why metadata rather than tool names: the agent takes any list of LangChain tools
(``build_agent(tools=...)``). Deciding "the question asks about temperatures and no tool that
covers temperatures has run yet" or "a critical finding names node-3: fetch that node's details"
must work for a tool called ``node_temps`` with an argument ``host`` as well as for the nine
cluster tools. A tool without this metadata is still called by the model; the agent's own
follow-ups simply never schedule it.
"""

from __future__ import annotations

from typing import Any, Literal

from langchain_core.tools import BaseTool
from pydantic import BaseModel, ConfigDict, Field

METADATA_KEY = "gpudoc"

#: parts of an operator's question a tool can answer; ``gpudoc.graph.topics`` recognises them
Topic = Literal["overview", "usage", "thermal", "health", "jobs", "alerts"]
#: things a question can name that a tool can take as an argument
EntityKind = Literal["node", "job_state"]
#: jobs the agent gives a tool when it schedules one itself
Role = Literal["node_details", "findings"]


class ToolCapabilities(BaseModel):
    """What a tool covers, which of its arguments take which named thing, and its roles."""

    model_config = ConfigDict(frozen=True)

    covers: frozenset[Topic] = Field(default=frozenset(), description="topics its successful result answers")
    schedules: frozenset[Topic] = Field(
        default=frozenset(), description="topics the agent may call it for when no evidence covers them yet"
    )
    arguments: dict[EntityKind, str] = Field(
        default_factory=dict, description="argument name taking each kind of named thing (node id, job state)"
    )
    requires: frozenset[EntityKind] = Field(default=frozenset(), description="arguments it cannot run without")
    roles: frozenset[Role] = Field(
        default=frozenset(),
        description="node_details: the call that examines one node; findings: its result carries findings",
    )

    def as_metadata(self) -> dict[str, Any]:
        return {METADATA_KEY: self.model_dump(mode="json")}

    @classmethod
    def of(cls, tool: BaseTool) -> "ToolCapabilities":
        """The tool's declared capabilities; none for a tool that declares nothing."""
        raw = (tool.metadata or {}).get(METADATA_KEY)
        return cls.model_validate(raw) if raw else cls()
