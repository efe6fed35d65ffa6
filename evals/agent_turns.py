"""The evaluations' one connection to the agent: build it, ask it a question, observe the turn.

Why one small module: the agent (``graph/``) changes more often than the evaluations. Everything
the evals need from it goes through here, by its public turn API (``graph/runner.run_turn`` and
the ``TurnResult`` of ``graph/contracts``) plus the constructors the CLI uses (``build_agent``,
``build_chat_model``, ``llm_available``). If the turn API changes, this is the file to adjust.

What a turn yields beyond ``TurnResult``: tokens (from the model's ``usage_metadata``, counted by
a callback on the model), wall-clock latency, and the exceptions the model client raised (the
agent turns a failing model into a degraded answer; the evals need to know why, e.g. a request
that matches no recorded cassette).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from langchain_core.callbacks import AsyncCallbackHandler
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage, SystemMessage
from langchain_core.outputs import LLMResult
from langgraph.checkpoint.memory import InMemorySaver

from gpudoc.config import Settings
from gpudoc.graph.agent import build_agent
from gpudoc.graph.contracts import ToolCallRecord
from gpudoc.graph.llm import LlmProbe, build_chat_model, content_text, llm_available
from gpudoc.graph.runner import run_turn
from gpudoc.tools.sources.base import ClusterSource


@dataclass(frozen=True)
class Sampling:
    """Sampling the evaluated model is asked for; None leaves the agent's own setting."""

    temperature: float | None = None
    top_p: float | None = None
    enable_thinking: bool | None = None

    def describe(self, settings: Settings) -> dict[str, Any]:
        return {"temperature": settings.llm_temperature if self.temperature is None else self.temperature,
                "top_p": settings.llm_top_p if self.top_p is None else self.top_p,
                "max_tokens": settings.llm_max_tokens,
                "enable_thinking": settings.llm_enable_thinking if self.enable_thinking is None else self.enable_thinking}


@dataclass
class Observation:
    """One turn as the evaluations see it (tool results kept whole for the scorer)."""

    question: str
    answer: str
    tool_calls: list[ToolCallRecord]
    unverified_numbers: list[str]
    round_trips: int
    tool_rounds: int
    degraded: bool
    degraded_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    llm_errors: list[BaseException] = field(default_factory=list)


class _TurnMeter(AsyncCallbackHandler):
    """Counts the tokens the server reports and keeps the exceptions the model client raised."""

    def __init__(self) -> None:
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.errors: list[BaseException] = []

    async def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        for generations in response.generations:
            for generation in generations:
                usage = getattr(getattr(generation, "message", None), "usage_metadata", None) or {}
                self.prompt_tokens += int(usage.get("input_tokens", 0))
                self.completion_tokens += int(usage.get("output_tokens", 0))

    async def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self.errors.append(error)


def _model(settings: Settings, sampling: Sampling, callbacks: list[Any]) -> BaseChatModel:
    model = build_chat_model(settings, enable_thinking=sampling.enable_thinking)
    if sampling.temperature is not None:
        model.temperature = sampling.temperature
    if sampling.top_p is not None:
        model.top_p = sampling.top_p
    model.callbacks = callbacks
    return model


class AgentConversation:
    """One thread with the agent over ``source``: each ``ask`` is a turn; history is kept in memory."""

    def __init__(self, source: ClusterSource, settings: Settings, *, thread_id: str,
                 sampling: Sampling = Sampling()) -> None:
        self.thread_id = thread_id
        self._meter = _TurnMeter()
        self._agent = build_agent(source=source, llm=_model(settings, sampling, [self._meter]), settings=settings,
                                  checkpointer=InMemorySaver())

    @property
    def model_errors(self) -> list[BaseException]:
        """The exceptions the model client raised during the last turn (also when the turn failed)."""
        return list(self._meter.errors)

    async def ask(self, question: str) -> Observation:
        meter = self._meter
        meter.prompt_tokens = meter.completion_tokens = 0
        meter.errors = []
        started = time.perf_counter()
        result = await run_turn(self._agent, question, thread_id=self.thread_id)
        return Observation(
            question=question, answer=result.answer, tool_calls=list(result.tool_calls),
            unverified_numbers=list(result.unverified_numbers), round_trips=result.llm_round_trips,
            tool_rounds=result.tool_rounds, degraded=result.degraded, degraded_reason=result.degraded_reason,
            prompt_tokens=meter.prompt_tokens, completion_tokens=meter.completion_tokens,
            latency_s=round(time.perf_counter() - started, 4), llm_errors=list(meter.errors),
        )


async def probe_model(settings: Settings) -> LlmProbe:
    """Whether the endpoint serves the model, which, and whether the server says it is a test double."""
    return await llm_available(settings)


async def complete(settings: Settings, system: str, prompt: str) -> str:
    """One plain completion (no tools, no thinking) with the agent's model client: the judge's call."""
    model = build_chat_model(settings, enable_thinking=False)
    reply = await model.ainvoke([SystemMessage(system), HumanMessage(prompt)])
    return content_text(reply.content)
