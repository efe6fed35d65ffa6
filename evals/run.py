"""Evaluate the agent on scenario questions by replaying recorded model conversations.

Why replay: an evaluation must run in CI without GPUs and give the same scores every time. Each
case's HTTP exchanges with the model server (``POST /v1/chat/completions``, streamed) are kept
as a vcrpy cassette in ``evals/cassettes/``; replay serves them back to the real client path
(``build_chat_model`` -> httpx), over a simulated cluster with a frozen clock, so the tool results
match the ones recorded.

The committed cassettes were recorded from the stub vLLM server (``tests/doubles/stub_vllm.py``,
a keyword-policy test double), not from Nemotron: they check the wiring and the scoring, not the
model's judgement. To score a real model, re-record against it:

    LLM_BASE_URL=http://gpu-box:8000/v1 python -m evals.run --record     # a real vLLM
    python -m evals.run --record                                         # the stub server
    python -m evals.run                                                  # replay (CI)

Scores per case: expected tools called, expected subjects mentioned in the answer, numbers in
the answer found in no tool result (unverified), model round trips.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Sequence

import vcr
from pydantic import BaseModel, Field

from gpudoc.config import Settings
from gpudoc.graph.agent import build_agent
from gpudoc.graph.contracts import TurnResult
from gpudoc.graph.llm import build_chat_model
from gpudoc.graph.runner import run_turn
from gpudoc.tools.sim.source import SimSource

CASSETTES = Path(__file__).parent / "cassettes"
#: where replayed requests "go"; nothing listens there, vcrpy answers from the cassette
REPLAY_BASE_URL = "http://127.0.0.1:9/v1"


class EvalCase(BaseModel):
    id: str
    question: str
    scenarios: list[str]
    expect_tools: list[str] = Field(description="at least one of these tools must be called")
    expect_subjects: list[str] = Field(default_factory=list, description="must be named in the answer")


CASES: tuple[EvalCase, ...] = (
    EvalCase(id="hot-node-2", question="Is node-2 running hot?", scenarios=["thermal-throttle@node-2/gpu-3"],
             expect_tools=["get_gpu_history", "get_node_details"], expect_subjects=["node-2"]),
    EvalCase(id="jobs-pending", question="Why are jobs pending?", scenarios=["pending-on-drained"],
             expect_tools=["get_slurm_jobs", "get_slurm_status"]),
    EvalCase(id="rma", question="Which GPUs need an RMA?", scenarios=["xid79-fell-off-bus@node-3/gpu-5"],
             expect_tools=["diagnose_cluster"], expect_subjects=["node-3/gpu-5"]),
)


class CaseScore(BaseModel):
    id: str
    tools_called: list[str]
    expected_tool_called: bool
    subjects_mentioned: list[str]
    subjects_missing: list[str]
    unverified_numbers: list[str]
    llm_round_trips: int
    degraded: bool

    @property
    def passed(self) -> bool:
        return self.expected_tool_called and not self.subjects_missing and not self.degraded


def _question_matcher(recorded: vcr.request.Request, current: vcr.request.Request) -> None:
    """Replay only the conversation recorded for the same question (a stale cassette fails loudly)."""
    def last_question(request: vcr.request.Request) -> str:
        body = json.loads(request.body or b"{}")
        users = [m.get("content") for m in body.get("messages", []) if m.get("role") == "user"]
        return str(users[-1]) if users else ""

    assert last_question(recorded) == last_question(current), "the cassette was recorded for another question"


def cassette_recorder(record: bool) -> vcr.VCR:
    recorder = vcr.VCR(
        cassette_library_dir=str(CASSETTES),
        record_mode="all" if record else "none",
        match_on=["method", "path", "question"],
        filter_headers=["authorization"],
        decode_compressed_response=True,
    )
    recorder.register_matcher("question", _question_matcher)
    return recorder


def score(case: EvalCase, result: TurnResult) -> CaseScore:
    called = [c.name for c in result.tool_calls if not c.error]
    answer = result.answer.lower()
    mentioned = [s for s in case.expect_subjects if s.lower() in answer]
    return CaseScore(
        id=case.id, tools_called=called, expected_tool_called=any(t in called for t in case.expect_tools),
        subjects_mentioned=mentioned, subjects_missing=[s for s in case.expect_subjects if s not in mentioned],
        unverified_numbers=result.unverified_numbers, llm_round_trips=result.llm_round_trips,
        degraded=result.degraded,
    )


async def run_case(case: EvalCase, *, base_url: str, recorder: vcr.VCR) -> CaseScore:
    settings = Settings(LLM_BASE_URL=base_url, LLM_MAX_RETRIES=0)
    source = SimSource.create(seed=42, nodes=8, scenarios=case.scenarios, realtime=False)
    agent = build_agent(source=source, llm=build_chat_model(settings), settings=settings)
    with recorder.use_cassette(f"{case.id}.yaml"):
        result = await run_turn(agent, case.question, thread_id=f"eval-{case.id}")
    return score(case, result)


async def run_all(cases: Sequence[EvalCase], *, record: bool, base_url: str | None) -> list[CaseScore]:
    recorder = cassette_recorder(record)
    if not record:
        return [await run_case(c, base_url=REPLAY_BASE_URL, recorder=recorder) for c in cases]
    if base_url:
        return [await run_case(c, base_url=base_url, recorder=recorder) for c in cases]
    from tests.doubles.stub_vllm import StubVllmServer  # recording without a real model: the stub server

    with StubVllmServer() as stub_url:
        return [await run_case(c, base_url=stub_url, recorder=recorder) for c in cases]


def render(scores: Sequence[CaseScore]) -> str:
    lines = [f"{'case':<14} {'pass':<5} {'round trips':<12} {'unverified':<11} tools"]
    for s in scores:
        lines.append(f"{s.id:<14} {'yes' if s.passed else 'NO':<5} {s.llm_round_trips:<12} "
                     f"{len(s.unverified_numbers):<11} {', '.join(s.tools_called)}"
                     + (f"  missing subjects: {', '.join(s.subjects_missing)}" if s.subjects_missing else ""))
    passed = sum(s.passed for s in scores)
    lines.append(f"{passed}/{len(scores)} cases passed")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Score the agent on recorded scenario conversations.")
    parser.add_argument("--record", action="store_true",
                        default=os.environ.get("GPUDOC_RECORD_CASSETTES") == "1",
                        help="re-record the cassettes (against LLM_BASE_URL if set, else the stub server)")
    parser.add_argument("--llm-base-url", default=os.environ.get("LLM_BASE_URL"), help="model server to record from")
    parser.add_argument("--case", action="append", default=[], help="only these case ids")
    parser.add_argument("--json", action="store_true", help="print the scores as JSON")
    args = parser.parse_args(argv)
    cases = [c for c in CASES if not args.case or c.id in args.case]
    scores = asyncio.run(run_all(cases, record=args.record, base_url=args.llm_base_url))
    print(json.dumps([s.model_dump() | {"passed": s.passed} for s in scores], indent=2) if args.json else render(scores))
    return 0 if all(s.passed for s in scores) else 1


if __name__ == "__main__":
    sys.exit(main())
