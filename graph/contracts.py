"""What the agent hands to its callers: the typed result of one turn and the events of its stream.

Why a contract module: the CLI (`gpudoc ask`, `gpudoc chat`), LangServe at `/agent`, the original
`POST /api/agent/chat` and the chat page all consume the same turn. They depend on these models,
never on the graph's internal state layout.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, Field, computed_field

from gpudoc.tools.diagnosis.findings import Finding


class ToolCallRecord(BaseModel):
    """One tool call of a turn, as the original API's ``toolCalls`` entries carry it (plus timing)."""

    id: str
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    result: str = Field("", description="the tool's output text (compact JSON) or the error message")
    error: bool = False
    error_kind: str | None = Field(
        None,
        description="why it failed: malformed_arguments, unknown_tool, repeated, bad_arguments, "
        "unknown_node, timeout, unavailable or failed",
    )
    duration_ms: float = 0.0


FindingRecord = Finding  # the graph reports the analyzers' findings unchanged


class TokenUsage(BaseModel):
    """Tokens the turn's model calls consumed, as the server reported them (0 when it did not)."""

    input_tokens: int = 0
    output_tokens: int = 0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: "TokenUsage") -> "TokenUsage":
        return TokenUsage(input_tokens=self.input_tokens + other.input_tokens,
                          output_tokens=self.output_tokens + other.output_tokens)


class StatedNumber(BaseModel):
    """A quantity the answer states: as written, its unit and the subject it is said of."""

    text: str = Field(description="as written, e.g. '88.6'")
    unit: str | None = Field(None, description="temperature, power, percent, memory, frequency, duration, count")
    subject: str | None = Field(None, description='what it is said of: "node-2/gpu-3", "node-2", or none')


class GroundingReport(BaseModel):
    """The numbers of an answer checked against the turn's tool results (``gpudoc.graph.grounding``).

    A number is verified when a value in the evidence has a compatible unit and subject and equals
    it within the precision it was written with.
    """

    checked: int = 0
    verified: int = 0
    unverified: list[StatedNumber] = Field(default_factory=list)


class TurnResult(BaseModel):
    """The outcome of one question: ``gpudoc ask --json`` prints exactly this."""

    answer: str
    tool_calls: list[ToolCallRecord] = Field(default_factory=list)
    findings: list[FindingRecord] = Field(default_factory=list)
    degraded: bool = Field(False, description="True when produced without the language model")
    degraded_reason: str | None = None
    answer_cut_short: bool = Field(
        False, description="the model's answer stopped early (the model failed or ran out of output tokens); "
        "the answer ends with a note saying so")
    reasoning: str = Field("", description="the model's thinking (reasoning_content), if any")
    unverified_numbers: list[str] = Field(
        default_factory=list, description="numbers in the answer that no tool result of the turn supports"
    )
    grounding: GroundingReport = Field(default_factory=GroundingReport,
                                       description="the check behind unverified_numbers")
    llm_round_trips: int = 0
    tool_rounds: int = Field(0, description="rounds of tool calls (planned by the model or by reflect)")
    tokens: TokenUsage = Field(default_factory=TokenUsage, description="tokens of the turn's model calls")
    thread_id: str | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def unverified_count(self) -> int:
        return len(self.unverified_numbers)


# ----------------------------------------------------------------------------------------------
# Stream events, in the order a turn produces them. `type` is the discriminator on the wire.
# ----------------------------------------------------------------------------------------------


class TokenEvent(BaseModel):
    """A piece of the answer. The pieces of a turn, joined, are exactly ``TurnResult.answer``."""

    type: Literal["token"] = "token"
    text: str


class ReasoningEvent(BaseModel):
    type: Literal["reasoning"] = "reasoning"
    text: str


class ToolStartEvent(BaseModel):
    type: Literal["tool_start"] = "tool_start"
    id: str
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class ToolEndEvent(BaseModel):
    type: Literal["tool_end"] = "tool_end"
    id: str
    name: str
    result: str
    error: bool = False
    duration_ms: float = 0.0


class StatusEvent(BaseModel):
    """Progress the UI can show while no tokens flow ("planning", "round 2", "degraded: ...")."""

    type: Literal["status"] = "status"
    stage: str
    detail: str = ""


class DoneEvent(BaseModel):
    type: Literal["done"] = "done"
    result: TurnResult


class ErrorEvent(BaseModel):
    type: Literal["error"] = "error"
    message: str


AgentEvent = Annotated[
    Union[TokenEvent, ReasoningEvent, ToolStartEvent, ToolEndEvent, StatusEvent, DoneEvent, ErrorEvent],
    Field(discriminator="type"),
]
