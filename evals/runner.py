"""Running the suite: each case is a conversation with the agent over its own simulated cluster.

Three modes share everything but where the model's answers come from: ``replay`` (the recorded
cassettes; CI), ``live`` (any OpenAI-compatible endpoint, nothing recorded) and ``record`` (live,
and each case's exchanges written to a cassette). A case that cannot run (a stale cassette, an
agent failure) is a failed case with the reason, never the end of the run.

Simulated clusters are shared by cases with the same options (``SourceCache``): the clock is
frozen and the tools only read, so a case sees exactly what it would see on a fresh cluster, and
the suite's several questions about one placement do not rebuild its history each time.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Literal, Protocol, Sequence

from gpudoc import __version__
from gpudoc.config import Settings
from gpudoc.evals.agent_turns import AgentConversation, Observation, Sampling
from gpudoc.evals.cases import EvalCase
from gpudoc.evals.evidence import Reading, readings
from gpudoc.evals.recordings import (
    RecordingManifest,
    cassette_library,
    cassette_name,
    now,
    replay_problem,
    write_manifest,
)
from gpudoc.evals.results import CaseOutcome, EvalRun, JudgeVerdict, RunInfo, Summary, ToolUse, TurnRecord
from gpudoc.evals.scoring import Truth, score_turn
from gpudoc.tools.sim.source import SimSource

Mode = Literal["replay", "live", "record"]


class CaseNotRecorded(Exception):
    """Replay of a case that has no cassette in the recording."""


class CaseTracer(Protocol):
    """Where a case's run is kept besides the result file (LangSmith); see ``langsmith_experiment``."""

    def case(self, case: EvalCase, metadata: dict[str, Any]) -> contextlib.AbstractContextManager[Any]: ...

    def finish_case(self, handle: Any, outcome: CaseOutcome) -> None: ...


class TurnJudge(Protocol):
    async def grade(self, question: str, observation: Observation) -> JudgeVerdict: ...


@dataclass
class RunPlan:
    """How to run: the mode, where the model is, where recordings go, and the optional extras."""

    mode: Mode
    settings: Settings
    recording_dir: Path
    answers_from: str
    test_double: bool
    model: str
    sampling: Sampling = field(default_factory=Sampling)
    sampling_info: dict[str, Any] | None = None  # replay: the recording's sampling, not this run's
    concurrency: int = 1
    tracer: CaseTracer | None = None
    judge: TurnJudge | None = None
    on_case: Callable[[CaseOutcome], None] | None = None
    passthrough: tuple[str, ...] = ()  # URL origins a cassette must let through (LangSmith)


# ----------------------------------------------------------------------------------------------
# Simulated clusters
# ----------------------------------------------------------------------------------------------

class SourceCache:
    """Simulated clusters by their options, least recently used dropped beyond ``size``.

    The suite runs cases grouped by cluster options, so a run builds each distinct cluster once
    even with a small cache; a larger one lets several runs in one process (the tests) share them.
    """

    def __init__(self, size: int = 4) -> None:
        self.size = size
        self._sources: OrderedDict[tuple[Any, ...], SimSource] = OrderedDict()

    @staticmethod
    def key(case: EvalCase) -> tuple[Any, ...]:
        return (case.seed, case.nodes, case.gpu_model, tuple(case.scenarios))

    def get(self, case: EvalCase) -> SimSource:
        key = self.key(case)
        source = self._sources.get(key)
        if source is None:
            source = SimSource.create(seed=case.seed, nodes=case.nodes, gpu_model=case.gpu_model,
                                      scenarios=case.scenarios, realtime=False)
            self._sources[key] = source
        self._sources.move_to_end(key)
        while len(self._sources) > self.size:
            self._sources.popitem(last=False)
        return source

    def clear(self) -> None:
        self._sources.clear()


#: the process's simulated clusters (see ``SourceCache``)
SOURCES = SourceCache()


def truths_of(source: SimSource) -> list[Truth]:
    return [Truth(scenario=t.scenario, subject=t.subject, severity=t.severity, hardware=t.hardware)
            for t in source.ground_truth]


# ----------------------------------------------------------------------------------------------
# One case
# ----------------------------------------------------------------------------------------------


def _record(observation: Observation) -> TurnRecord:
    return TurnRecord(
        question=observation.question, answer=observation.answer,
        tools=[ToolUse(name=c.name, arguments=c.arguments, error_kind=c.error_kind if c.error else None,
                       result_chars=len(c.result), duration_ms=c.duration_ms) for c in observation.tool_calls],
        unverified_numbers=observation.unverified_numbers, round_trips=observation.round_trips,
        tool_rounds=observation.tool_rounds, prompt_tokens=observation.prompt_tokens,
        completion_tokens=observation.completion_tokens, latency_s=observation.latency_s,
        degraded=observation.degraded, degraded_reason=observation.degraded_reason,
    )


@contextlib.contextmanager
def _cassette(plan: RunPlan, case: EvalCase) -> Any:
    if plan.mode == "live":
        yield None
        return
    library = cassette_library(plan.recording_dir, record=plan.mode == "record", passthrough=plan.passthrough)
    with library.use_cassette(cassette_name(case.id)) as cassette:
        yield cassette


async def run_case(case: EvalCase, plan: RunPlan) -> CaseOutcome:
    fields = dict(id=case.id, file=case.file, scenarios=case.scenarios, scenario_names=case.scenario_names,
                  tags=case.tags)
    turns: list[TurnRecord] = []
    error: str | None = None
    handle = None
    tracing = plan.tracer.case(case, {"thread_id": f"eval-{case.id}", "source": "sim",
                                      "scenario": ",".join(case.scenarios) or "healthy", "case": case.id}) \
        if plan.tracer else contextlib.nullcontext()
    source = SOURCES.get(case)
    truths = truths_of(source)
    with tracing as handle:
        observations: list[Observation] = []
        conversation: AgentConversation | None = None
        try:
            missing = plan.mode == "replay" and not (plan.recording_dir / cassette_name(case.id)).exists()
            if missing:
                raise CaseNotRecorded(f"no cassette {cassette_name(case.id)} in {plan.recording_dir}; record it with "
                                      f"`gpudoc eval --record --case {case.id}`")
            conversation = AgentConversation(source, plan.settings, thread_id=f"eval-{case.id}", sampling=plan.sampling)
            evidence: list[Reading] = []
            with _cassette(plan, case) as cassette:
                for turn in case.turns:
                    observation = await conversation.ask(turn.question)
                    observations.append(observation)
                    evidence += readings((c.name, c.result) for c in observation.tool_calls if not c.error)
                    record = _record(observation)
                    record.checks = score_turn(turn.expect, observation, truths=truths, evidence=evidence,
                                               live=plan.mode != "replay")
                    turns.append(record)
                    mismatch = replay_problem(observation.llm_errors) if plan.mode == "replay" else None
                    if mismatch:
                        error = f"replay: {mismatch}. Re-record with `gpudoc eval --record`."
                        break
                if cassette is not None and plan.mode == "replay" and error is None and not cassette.all_played:
                    left = len(cassette.data) - cassette.play_count
                    error = (f"replay: {left} recorded exchange(s) were never requested (the agent made fewer "
                             "model calls than when recorded). Re-record with `gpudoc eval --record`.")
            if plan.judge is not None:  # after the cassette: the judge's calls are neither recorded nor replayed
                for record, observation in zip(turns, observations):
                    if not observation.degraded:
                        record.judge = await plan.judge.grade(observation.question, observation)
        except CaseNotRecorded as exc:
            error = str(exc)
        except Exception as exc:  # one broken case must not end the run; it fails with the reason
            mismatch = replay_problem(conversation.model_errors) if conversation and plan.mode == "replay" else None
            error = (f"replay: {mismatch}. Re-record with `gpudoc eval --record`." if mismatch
                     else f"{type(exc).__name__}: {exc}")
        outcome = CaseOutcome.from_turns(turns=turns, error=error, **fields)
        if plan.tracer is not None:
            plan.tracer.finish_case(handle, outcome)
    return outcome


# ----------------------------------------------------------------------------------------------
# The suite
# ----------------------------------------------------------------------------------------------


async def _outcomes(cases: Sequence[EvalCase], plan: RunPlan) -> AsyncIterator[CaseOutcome]:
    if plan.concurrency <= 1 or plan.mode != "live":  # cassettes patch the HTTP client process-wide
        first_seen = {key: index for index, key in reversed(list(enumerate(map(SourceCache.key, cases))))}
        for case in sorted(cases, key=lambda c: first_seen[SourceCache.key(c)]):  # one cluster at a time
            yield await run_case(case, plan)
        return
    gate = asyncio.Semaphore(plan.concurrency)

    async def guarded(case: EvalCase) -> CaseOutcome:
        async with gate:
            return await run_case(case, plan)

    for outcome in asyncio.as_completed([guarded(c) for c in cases]):
        yield await outcome


async def run_suite(cases: Sequence[EvalCase], plan: RunPlan, *, suite_cases: int) -> EvalRun:
    started_at, started = now(), time.perf_counter()
    by_id: dict[str, CaseOutcome] = {}
    async for outcome in _outcomes(cases, plan):
        by_id[outcome.id] = outcome
        if plan.on_case:
            plan.on_case(outcome)
    outcomes = [by_id[c.id] for c in cases]
    if plan.mode == "record":
        write_manifest(plan.recording_dir, RecordingManifest(
            label=plan.recording_dir.name, answers_from=plan.answers_from, test_double=plan.test_double,
            model=plan.model, base_url=plan.settings.llm_base_url,
            sampling=plan.sampling.describe(plan.settings), recorded_at=started_at, gpudoc_version=__version__,
            cases=[c.id for c in cases]), merge=len(cases) < suite_cases)
    info = RunInfo(
        mode=plan.mode, model=plan.model, base_url=None if plan.mode == "replay" else plan.settings.llm_base_url,
        recording=None if plan.mode == "live" else plan.recording_dir.name, answers_from=plan.answers_from,
        test_double=plan.test_double, sampling=plan.sampling_info or plan.sampling.describe(plan.settings),
        started_at=started_at,
        duration_s=round(time.perf_counter() - started, 3), gpudoc_version=__version__, suite_cases=suite_cases,
    )
    return EvalRun(run=info, summary=Summary.of(outcomes), cases=outcomes)
