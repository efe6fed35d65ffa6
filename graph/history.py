"""Keeping a conversation within the model's context window.

Why compact first and trim second: once a turn is answered, its tool calls and raw results have
served their purpose; the question and the answer (which quotes the numbers that mattered) are
what later questions refer to. Dropping the rest keeps the stored thread small and the prompt
short for a small model. If the remaining history still does not fit, the oldest turns go.
"""

from __future__ import annotations

from typing import Sequence

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, RemoveMessage, ToolMessage
from langchain_core.messages.utils import count_tokens_approximately, trim_messages

#: room kept for the tool schemas the model is sent with every planning call
TOOL_SCHEMA_ALLOWANCE_TOKENS = 2000


def current_turn_start(messages: Sequence[AnyMessage]) -> int:
    """Index of the last human message: the current turn is it and everything after it."""
    for index in range(len(messages) - 1, -1, -1):
        if isinstance(messages[index], HumanMessage):
            return index
    return 0


def _is_working_message(message: AnyMessage) -> bool:
    return isinstance(message, ToolMessage) or (isinstance(message, AIMessage) and bool(message.tool_calls or message.invalid_tool_calls))


def compact_previous_turns(messages: Sequence[AnyMessage]) -> list[RemoveMessage]:
    """Removals of earlier turns' tool calls and results, leaving their questions and answers."""
    start = current_turn_start(messages)
    return [RemoveMessage(id=m.id) for m in messages[:start] if m.id and _is_working_message(m)]


def fit_to_context(messages: Sequence[AnyMessage], *, budget_tokens: int) -> list[AnyMessage]:
    """The messages to send: the whole current turn, and as many recent earlier turns as fit."""
    start = current_turn_start(messages)
    earlier, current = list(messages[:start]), list(messages[start:])
    earlier = [m for m in earlier if not _is_working_message(m)]
    remaining = budget_tokens - count_tokens_approximately(current)
    if not earlier or remaining <= 0:
        return current
    kept = trim_messages(earlier, max_tokens=remaining, token_counter=count_tokens_approximately,
                         strategy="last", start_on="human", allow_partial=False)
    return [*kept, *current]


def history_budget(context_tokens: int, max_answer_tokens: int, system_prompt: str) -> int:
    """Tokens left for the conversation once the system prompt, tools and the answer are reserved."""
    system_tokens = count_tokens_approximately([("system", system_prompt)])
    return max(1024, context_tokens - max_answer_tokens - system_tokens - TOOL_SCHEMA_ALLOWANCE_TOKENS)
