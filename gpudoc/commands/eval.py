"""``gpudoc eval``: score the agent on the evaluation suite (``evals/suite/*.yaml``).

Why three modes: CI must score the same conversations every time without a GPU (``replay``, the
default, from recorded cassettes); a team choosing a model must score that model (``--live``,
any OpenAI-compatible endpoint); and a recording must be one command away (``--record``). The
scores are judge-free (see ``gpudoc.evals.scoring``); ``--judge`` adds an LLM's opinion beside
them, ``--langsmith`` keeps the run as a LangSmith experiment, ``--report`` writes an HTML page.

``--stub`` points a live run or a recording at the stub vLLM server of ``tests/doubles/`` (a
test double with scripted policies, not a model; needs a source checkout).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import re
import sys
from pathlib import Path
from typing import Any, Iterator

from langsmith import tracing_context

from gpudoc.cli import CliError
from gpudoc.commands.common import add_llm_arguments, int_in_range
from gpudoc.config import Settings, load_settings
from gpudoc.evals.agent_turns import Sampling, probe_model
from gpudoc.evals.cases import SUITE_DIR, EvalCase, SuiteError, load_suite, select
from gpudoc.evals.progress import ProgressBar
from gpudoc.evals.recordings import DEFAULT_RECORDING, REPLAY_BASE_URL, read_manifest, recording_dir
from gpudoc.evals.results import CHECK_ORDER, EvalRun
from gpudoc.evals.runner import RunPlan, run_suite

DEFAULT_MIN_PASS_RATE = 0.9


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval", help="score the agent on the evaluation suite",
        description="Score the agent on the evaluation suite: replay recorded conversations (default), or run "
                    "against a live OpenAI-compatible endpoint (--live), or record new cassettes (--record).",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--live", action="store_true", help="ask the model at --llm-base-url; record nothing")
    mode.add_argument("--record", action="store_true", help="like --live, and write each case's cassette")
    add_llm_arguments(parser)
    parser.add_argument("--stub", nargs="?", const="reference", metavar="POLICY",
                        help="use the stub vLLM server of tests/doubles (a test double, not a model) as the endpoint, "
                             "running POLICY: reference (default), fixed-tool, inventing or keyword; needs a source checkout")
    parser.add_argument("--recording", metavar="NAME|DIR",
                        help=f"cassette set to replay or write: a name under evals/cassettes/ or a directory "
                             f"(default: {DEFAULT_RECORDING} to replay; to record: {DEFAULT_RECORDING} with --stub, "
                             "else one named after the model)")
    picks = parser.add_argument_group("which cases")
    picks.add_argument("--case", action="append", default=[], metavar="ID", help="only this case (repeatable; * wildcards)")
    picks.add_argument("--tag", action="append", default=[], metavar="TAG", help="only cases with this tag (repeatable)")
    picks.add_argument("--suite", type=Path, default=SUITE_DIR, metavar="DIR", help="directory of suite YAML files")
    picks.add_argument("--list", action="store_true", help="list the selected cases and exit")
    sampling = parser.add_argument_group("sampling (--live, --record); --temperature, --top-p, --no-thinking: see "
                                         "language model")
    sampling.add_argument("--concurrency", type=int_in_range(1, 64), default=1,
                          help="cases at once with --live (1..64, default 1); latency then includes waiting "
                               "on the server")
    output = parser.add_argument_group("output")
    output.add_argument("--json", action="store_true", help="print the result as JSON (cases with their scores, summary)")
    output.add_argument("--out", type=Path, metavar="FILE.json", help="also write the JSON result to FILE")
    output.add_argument("--report", type=Path, metavar="FILE.html", help="write a self-contained HTML report")
    output.add_argument("--no-progress", action="store_true", help="no progress bar on the terminal")
    output.add_argument("--verbose", action="store_true",
                        help="also show the agent's own log (tracebacks of failed turns; each case reports its error anyway)")
    output.add_argument("--min-pass-rate", type=float, default=DEFAULT_MIN_PASS_RATE,
                        help=f"exit 1 when fewer cases pass (0..1, default {DEFAULT_MIN_PASS_RATE})")
    extras = parser.add_argument_group("judge and LangSmith")
    extras.add_argument("--judge", action="store_true",
                        help="also let an LLM grade each answer (reported separately; never changes a score)")
    extras.add_argument("--judge-base-url", help="the judge's endpoint (default: the evaluated one, or $LLM_BASE_URL)")
    extras.add_argument("--judge-model", help="the judge's model (default: what its endpoint serves)")
    extras.add_argument("--langsmith", action="store_true",
                        help="keep the run as a LangSmith experiment ($LANGSMITH_ENDPOINT, $LANGSMITH_API_KEY)")
    extras.add_argument("--langsmith-endpoint", help="LangSmith API URL (default: $LANGSMITH_ENDPOINT)")
    extras.add_argument("--langsmith-dataset", default="gpudoc-eval", help="dataset holding the suite")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not 0 <= args.min_pass_rate <= 1:
        raise CliError(f"--min-pass-rate must be between 0 and 1, got {args.min_pass_rate}")
    try:
        suite = load_suite(args.suite)
        cases = select(suite, ids=args.case, tags=args.tag)
    except SuiteError as exc:
        raise CliError(str(exc)) from None
    if args.list:
        for case in cases:
            print(f"{case.id:<34} {','.join(case.scenarios) or 'healthy':<44} {' | '.join(case.questions)}")
        return 0
    live = args.live or args.record
    sampling_given = any(hasattr(args, name) for name in ("llm_temperature", "llm_top_p", "llm_enable_thinking",
                                                           "llm_max_tokens"))
    if not live and (sampling_given or args.stub):
        raise CliError("--temperature, --top-p, --max-tokens, --no-thinking and --stub apply to --live and --record; "
                       "a replay answers what was recorded")
    if args.stub and getattr(args, "llm_base_url", None):
        raise CliError("--stub starts its own endpoint; leave out --llm-base-url (or --stub)")
    if args.concurrency > 1 and not args.live:
        raise CliError("--concurrency applies to --live (recording and replay run one case at a time)")
    with _agent_log(quiet=not args.verbose):
        result = asyncio.run(_evaluate(args, suite, cases))
    _print(result, as_json=args.json)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(result.model_dump_json(indent=2) + "\n")
    if args.report:
        from gpudoc.evals.report_html import write_report

        write_report(result, args.report)
        print(f"report: {args.report}", file=sys.stderr)
    return 0 if result.summary.pass_rate >= args.min_pass_rate else 1


# ----------------------------------------------------------------------------------------------
# Building the run
# ----------------------------------------------------------------------------------------------


def _stub_server(policy_name: str) -> Any:
    """The stub vLLM server with a scripted policy, from a source checkout's tests/doubles."""
    checkout = Path(__file__).resolve().parents[2]
    if not (checkout / "tests" / "doubles" / "stub_vllm.py").exists():
        raise CliError("--stub needs a source checkout of gpudoc (tests/doubles/stub_vllm.py is not here)")
    if str(checkout) not in sys.path:
        sys.path.insert(0, str(checkout))
    from tests.doubles.eval_policies import policy_named
    from tests.doubles.stub_vllm import StubVllmServer

    try:
        return StubVllmServer(policy=policy_named(policy_name), identity=f"stub vLLM, {policy_name} policy")
    except ValueError as exc:
        raise CliError(str(exc)) from None


@contextlib.contextmanager
def _agent_log(*, quiet: bool) -> Iterator[None]:
    """Keep the agent's tracebacks off the terminal: a failed turn is reported on its case."""
    logger = logging.getLogger("gpudoc.graph")
    previous = logger.level
    if quiet:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(previous)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "model"


@contextlib.contextmanager
def _endpoint(args: argparse.Namespace) -> Iterator[str | None]:
    """The base URL of a live run: ``--stub``'s own stub vLLM server, or the one configured."""
    if args.stub:
        server = _stub_server(args.stub)
        with server as url:
            yield url
    else:
        yield getattr(args, "llm_base_url", None)


def _who_answers(served: str, double: str | None, base_url: str, *, own_stub: bool) -> tuple[str, str]:
    """(model label, who wrote the answers) of a live run; a server that says it is a test double is named so.

    Why the server's word and not only ``--stub``: a stub started by hand serves the model id
    gpudoc asks for, and a run against it must not be recorded as that model.
    """
    if double is None:
        return served, f"{served} at {base_url}"
    where = "" if own_stub else f" at {base_url}"
    return f"{double} (test double)", f"{double}{where} (a test double, not a model)"


async def _evaluate(args: argparse.Namespace, suite: list[EvalCase], cases: list[EvalCase]) -> EvalRun:
    if args.live or args.record:
        with _endpoint(args) as base_url:
            settings = load_settings(LLM_BASE_URL=base_url, LLM_MODEL=getattr(args, "llm_model", None),
                                     LLM_MAX_TOKENS=getattr(args, "llm_max_tokens", None))
            if args.record:
                settings = settings.model_copy(update={"llm_max_retries": 0})  # one exchange per request
            probe = await probe_model(settings)
            if not probe.available or probe.model is None:
                raise CliError(f"no model to evaluate: {probe.error}")
            served, double = probe.model, probe.test_double
            settings = settings.model_copy(update={"llm_model": served})
            label = args.recording or (DEFAULT_RECORDING if args.stub else _slug(double or served))
            model, answers_from = _who_answers(served, double, settings.llm_base_url, own_stub=bool(args.stub))
            plan = RunPlan(mode="record" if args.record else "live", settings=settings,
                           recording_dir=recording_dir(label), answers_from=answers_from,
                           test_double=double is not None, model=model, concurrency=args.concurrency,
                           sampling=Sampling(temperature=getattr(args, "llm_temperature", None),
                                             top_p=getattr(args, "llm_top_p", None),
                                             enable_thinking=False if getattr(args, "llm_enable_thinking", None) is False
                                             else None))
            return await _run(args, plan, suite, cases)
    directory = recording_dir(args.recording or DEFAULT_RECORDING)
    try:
        manifest = read_manifest(directory)
    except FileNotFoundError as exc:
        raise CliError(str(exc)) from None
    settings = Settings(LLM_BASE_URL=REPLAY_BASE_URL, LLM_MAX_RETRIES=0, LLM_MODEL=manifest.model)
    plan = RunPlan(mode="replay", settings=settings, recording_dir=directory,
                   answers_from=f"replay of '{manifest.label}', recorded {manifest.recorded_at:%Y-%m-%d} from "
                                f"{manifest.answers_from}",
                   test_double=manifest.test_double, model=manifest.model, sampling_info=manifest.sampling)
    return await _run(args, plan, suite, cases)


async def _judge(args: argparse.Namespace, plan: RunPlan) -> Any:
    from gpudoc.evals.judge import LlmJudge

    base_url = args.judge_base_url or (plan.settings.llm_base_url if plan.mode != "replay" else None)
    settings = load_settings(LLM_BASE_URL=base_url, LLM_MODEL=args.judge_model)
    probe = await probe_model(settings)
    if not probe.available or probe.model is None:
        raise CliError(f"no judge model: {probe.error} (set --judge-base-url)")
    return LlmJudge(settings.model_copy(update={"llm_model": probe.model}))


async def _run(args: argparse.Namespace, plan: RunPlan, suite: list[EvalCase], cases: list[EvalCase]) -> EvalRun:
    if args.judge:
        plan.judge = await _judge(args, plan)
    experiment = None
    if args.langsmith:
        from gpudoc.evals.langsmith_experiment import LangSmithExperiment, LangSmithUnavailable

        try:
            experiment = LangSmithExperiment.start(
                suite, model=plan.model, dataset_name=args.langsmith_dataset, api_url=args.langsmith_endpoint,
                run_metadata={"mode": plan.mode, "model": plan.model, "answers_from": plan.answers_from,
                              "test_double": plan.test_double, "recording": plan.recording_dir.name})
        except LangSmithUnavailable as exc:
            raise CliError(str(exc)) from None
        plan.tracer = experiment
        plan.passthrough = (experiment.api_origin,)
    progress = ProgressBar(len(cases), enabled=False if args.no_progress else None)
    plan.on_case = lambda outcome: progress.advance(outcome.id, outcome.passed)
    # Traced only with --langsmith: ambient LANGSMITH_TRACING would send the agent's runs to some
    # project, and while a cassette is in use that traffic would be replayed or recorded with it.
    tracing = contextlib.nullcontext() if experiment else tracing_context(enabled=False)
    try:
        with tracing:
            result = await run_suite(cases, plan, suite_cases=len(suite))
    finally:
        progress.close()
    if plan.judge is not None:
        result.run.judge_model = plan.judge.model
    if experiment is not None:
        experiment.close(result)
        result.run.langsmith_experiment = experiment.project_name
    return result


# ----------------------------------------------------------------------------------------------
# Printing
# ----------------------------------------------------------------------------------------------


def _failed_checks(case: Any) -> str:
    if case.error:
        return case.error
    failed = [name for name in CHECK_ORDER if case.scores.get(name) is False]
    details = [c.detail for t in case.turns for c in t.checks if c.passed is False and c.detail]
    return ", ".join(failed) + (f" ({details[0][:110]})" if details else "")


def _print(result: EvalRun, *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result.model_dump(mode="json"), indent=2))
        return
    print(f"{'case':<34} {'pass':<5} {'score':<6} {'trips':<6} {'tokens':<7} failed")
    for case in result.cases:
        trips = "+".join(str(t.round_trips) for t in case.turns) or "-"
        tokens = sum(t.tokens for t in case.turns)
        print(f"{case.id:<34} {'yes' if case.passed else 'NO':<5} {case.score:<6.2f} {trips:<6} {tokens:<7} "
              f"{'' if case.passed else _failed_checks(case)}")
    summary, info = result.summary, result.run
    print(f"\n{summary.passed}/{summary.cases} cases passed ({summary.pass_rate:.1%}); "
          f"{info.mode}: {info.answers_from}")
    print("by scenario: " + ", ".join(f"{k} {v.passed}/{v.cases}" for k, v in summary.by_scenario.items()))
    if summary.judge:
        print(f"judge ({info.judge_model}, reported separately): mean score {summary.judge.mean_score}, "
              f"pass {summary.judge.pass_rate}, {summary.judge.errors} ungraded")
    if info.langsmith_experiment:
        print(f"LangSmith experiment: {info.langsmith_experiment}")
