"""The graph's state: the conversation, plus what the current turn gathers and decides, typed.

Why reducers: nodes return what they add (this round's tool records, one more model round trip,
the new findings) and the reducers accumulate it, so no node rebuilds a list it read. The
conversation (``messages``) accumulates across turns in the checkpointer; the per-turn channels
accumulate within a turn, and ``start_turn`` starts them afresh with LangGraph's ``Overwrite``
(``fresh_turn``), which bypasses the reducer for that one write.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any

from langchain_core.messages import AnyMessage
from langgraph.graph.message import add_messages
from langgraph.types import Overwrite
from pydantic import BaseModel, Field
from typing_extensions import TypedDict

from gpudoc.graph.contracts import GroundingReport, StatedNumber, TokenUsage, ToolCallRecord
from gpudoc.graph.question import QuestionFacts
from gpudoc.tools.diagnosis.findings import Finding


def merge_findings(old: list[Finding], new: list[Finding]) -> list[Finding]:
    """Findings of the turn, one per (subject, rule): the first report of a finding stands."""
    merged = {(f.subject, f.rule): f for f in old}
    for finding in new:
        merged.setdefault((finding.subject, finding.rule), finding)
    return list(merged.values())


def join_paragraphs(old: str, new: str) -> str:
    return "\n\n".join(part for part in (old, new) if part)


class TurnOutcome(BaseModel):
    """How the turn ended: the answer exactly as it was streamed, and what kind of answer it is."""

    answer: str
    degraded: bool = Field(False, description="written by gpudoc's deterministic diagnosis, not by the model")
    degraded_reason: str | None = None
    cut_short: bool = Field(False, description="the model's answer stopped early; the answer ends with a note")


class AgentState(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]
    # --- the current turn, set by start_turn ---
    question: str
    facts: QuestionFacts
    # --- accumulated during the turn (reducers; start_turn overwrites them) ---
    evidence: Annotated[list[ToolCallRecord], operator.add]  # every tool call, in call order
    findings: Annotated[list[Finding], merge_findings]  # from results of tools with the findings role
    rounds: Annotated[int, operator.add]  # tool rounds executed (model-planned or scheduled by reflect)
    llm_round_trips: Annotated[int, operator.add]
    tokens: Annotated[TokenUsage, operator.add]
    reasoning: Annotated[str, join_paragraphs]
    retried: Annotated[list[str], operator.add]  # call keys reflect already retried after a transient failure
    # --- decided during the turn (last value wins) ---
    round_limit_reached: bool
    llm_failure: str | None  # why the model could not be used; the degraded node answers instead
    outcome: TurnOutcome | None
    grounding: GroundingReport | None


def fresh_turn() -> dict[str, Any]:
    """The update that starts a turn: every per-turn channel empty, bypassing the reducers."""
    return {
        "evidence": Overwrite([]),
        "findings": Overwrite([]),
        "rounds": Overwrite(0),
        "llm_round_trips": Overwrite(0),
        "tokens": Overwrite(TokenUsage()),
        "reasoning": Overwrite(""),
        "retried": Overwrite([]),
        "round_limit_reached": False,
        "llm_failure": None,
        "outcome": None,
        "grounding": None,
    }


#: the types the checkpointer stores inside this state (its deserialisation allow-list)
CHECKPOINT_TYPES: tuple[type, ...] = (ToolCallRecord, Finding, QuestionFacts, TurnOutcome, TokenUsage,
                                      GroundingReport, StatedNumber)
