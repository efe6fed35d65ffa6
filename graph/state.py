"""The graph's state: the conversation plus what the current turn has gathered.

Why per-turn fields are plain (last value wins) rather than accumulating reducers: each new
question must start from empty evidence, zero counters and no findings, while the conversation
itself (``messages``) accumulates across turns in the checkpointer. The ``start_turn`` node
resets them; the other nodes write complete new values.
"""

from __future__ import annotations

from typing import Annotated, Any

from langchain_core.messages import AnyMessage
from langgraph.graph.message import add_messages
from typing_extensions import TypedDict


class AgentState(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]
    # --- the current turn (reset by start_turn) ---
    question: str
    evidence: list[dict[str, Any]]  # ToolCallRecord dicts, in call order
    findings: list[dict[str, Any]]  # Finding dicts, from diagnosis results
    rounds: int  # tool rounds executed (model-planned or scheduled by reflect)
    llm_round_trips: int
    reasoning: str
    next_step: str  # reflect's routing decision: "plan" | "call_tools" | "answer" | "finish"
    round_limit_reached: bool
    retried: list[str]  # call keys reflect already retried after a transient failure
    degraded: bool
    degraded_reason: str | None
    answer: str
    unverified_numbers: list[str]


TURN_RESET: dict[str, Any] = {
    "evidence": [],
    "findings": [],
    "rounds": 0,
    "llm_round_trips": 0,
    "reasoning": "",
    "next_step": "",
    "round_limit_reached": False,
    "retried": [],
    "degraded": False,
    "degraded_reason": None,
    "answer": "",
    "unverified_numbers": [],
}
"""The per-turn fields as a new question starts them."""
