"""Judge-free scoring of one turn: tools, facts, forbidden claims, grounding and budgets.

Why these checks, and why each is hard to pass by accident:

- **tools**: every required any-of set has a call that answered (succeeded, or told the model the
  node does not exist), about the asked node when one is named;
- **facts**: the answer names the subject (``node-3/gpu-5``), the root cause (rule id, XID or a
  specific term) and the key number *with its unit*, where the number must be one this run's
  tool results hold for that subject (see ``evidence``) - a model that did not look cannot state
  it, and one that invents a plausible value does not match;
- **says**: statements a correct answer must make (e.g. that a node does not exist);
- **forbidden**: calling the cluster healthy while a critical fault exists; on a negative control,
  calling anything faulty or recommending a hardware action; a hardware action for a GPU or node
  with no fault; the case's own forbidden patterns;
- **grounding**: no number in the answer that the agent found in no tool result
  (``TurnResult.unverified_numbers``, the agent's own check, used as it is);
- **budgets**: model round trips, tokens, and (live runs only) latency.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

from gpudoc.evals.agent_turns import Observation
from gpudoc.evals.answer_text import (
    claims_fault,
    claims_healthy,
    hardware_actions,
    mentions,
    names_cause,
    stated_with_unit,
)
from gpudoc.evals.cases import TRUTH, Expectations, ToolRequirement
from gpudoc.evals.evidence import Reading, candidates
from gpudoc.evals.results import Check

#: a failed call that still answered the question it asked: the node does not exist
ANSWERING_ERRORS = frozenset({"unknown_node"})


@dataclass(frozen=True)
class Truth:
    """What the simulator injected: the subject at fault, how bad, whether it is hardware."""

    scenario: str
    subject: str
    severity: str | None
    hardware: bool


def _node_of_argument(arguments: dict) -> str | None:
    for name in ("node_id", "node"):
        value = arguments.get(name)
        if value is None:
            continue
        digits = re.findall(r"\d+", str(value))
        return f"node-{int(digits[-1])}" if digits else str(value)
    return None


def _satisfies(requirement: ToolRequirement, observation: Observation) -> bool:
    for call in observation.tool_calls:
        if call.name not in requirement.any_of:
            continue
        if call.error and call.error_kind not in ANSWERING_ERRORS:
            continue
        node = _node_of_argument(call.arguments)
        if requirement.node is None or node is None or node == requirement.node:
            return True
    return False


def check_tools(expect: Expectations, observation: Observation) -> Check:
    if not expect.tools:
        return Check(name="tools", passed=None)
    missing = [r for r in expect.tools if not _satisfies(r, observation)]
    called = ", ".join(f"{c.name}{'!' + c.error_kind if c.error_kind else ''}" for c in observation.tool_calls)
    if missing:
        wanted = "; ".join(" or ".join(r.any_of) + (f" (about {r.node})" if r.node else "") for r in missing)
        return Check(name="tools", passed=False, detail=f"missing: {wanted}; called: {called or 'none'}")
    return Check(name="tools", passed=True, detail=called)


def resolve_subjects(subjects: Sequence[str], truths: Sequence[Truth]) -> list[str]:
    """Subjects with ``truth`` replaced by what the simulator injected (job ids of job scenarios)."""
    resolved: list[str] = []
    for subject in subjects:
        extra = [t.subject for t in truths if t.subject != "cluster"] if subject == TRUTH else [subject]
        resolved += [s for s in extra if s not in resolved]
    return resolved


def check_subjects(expect: Expectations, answer: str, truths: Sequence[Truth]) -> Check:
    if not expect.subjects:
        return Check(name="subjects", passed=None)
    subjects = resolve_subjects(expect.subjects, truths)
    missing = [s for s in subjects if not mentions(answer, s)]
    if missing:
        return Check(name="subjects", passed=False, detail=f"not named: {', '.join(missing)}")
    return Check(name="subjects", passed=True, detail=", ".join(subjects))


def check_cause(expect: Expectations, answer: str) -> Check:
    if expect.cause is None:
        return Check(name="cause", passed=None)
    cause = expect.cause
    named = names_cause(answer, rules=cause.rules, xids=cause.xids, terms=cause.terms)
    if named is None:
        wanted = [*cause.rules, *(f"XID {x}" for x in cause.xids), *(f"/{t}/" for t in cause.terms)]
        return Check(name="cause", passed=False, detail=f"names none of: {', '.join(wanted)}")
    return Check(name="cause", passed=True, detail=named)


def check_number(expect: Expectations, answer: str, evidence: Sequence[Reading], truths: Sequence[Truth]) -> Check:
    if expect.number is None:
        return Check(name="number", passed=None)
    quantity, subject = expect.number.quantity, expect.number.subject
    if subject == TRUTH:
        subject = next(iter(resolve_subjects([TRUTH], truths)), None)
    about = f"{quantity} of {subject}" if subject else quantity
    values = candidates(evidence, quantity, subject)
    if not values:
        return Check(name="number", passed=False,
                     detail=f"no tool result of this conversation holds a {about} (the agent did not fetch it)")
    stated = stated_with_unit(answer, quantity, values)
    if stated is None:
        shown = ", ".join(str(v) for v in values[:8]) + (", ..." if len(values) > 8 else "")
        return Check(name="number", passed=False, detail=f"states no {about} with its unit; tools gave {shown}")
    return Check(name="number", passed=True, detail=stated)


def check_says(expect: Expectations, answer: str) -> Check:
    if not expect.says:
        return Check(name="says", passed=None)
    missing = [p for p in expect.says if not re.search(p, answer, re.IGNORECASE)]
    if missing:
        return Check(name="says", passed=False, detail=f"does not say: {' | '.join(missing)}")
    return Check(name="says", passed=True)


def _action_target_ok(subject: str, truths: Sequence[Truth]) -> bool:
    """A hardware action may name a faulty GPU, its node, a faulty node, or any GPU of a faulty node."""
    for truth in truths:
        if truth.severity is None or not truth.subject.startswith("node-"):
            continue
        node = truth.subject.split("/", 1)[0]
        if subject in (truth.subject, node):
            return True
        if "/" not in truth.subject and subject.startswith(node + "/"):
            return True
    return False


def check_forbidden(expect: Expectations, answer: str, truths: Sequence[Truth]) -> Check:
    problems: list[str] = []
    if any(t.severity == "critical" for t in truths):
        segment = claims_healthy(answer)
        if segment:
            problems.append(f"calls the cluster healthy while a critical fault exists: {segment!r}")
    if expect.negative_control:
        segment = claims_fault(answer)
        if segment:
            problems.append(f"calls something faulty where nothing is: {segment!r}")
    targets = [] if expect.negative_control else truths
    for segment, subjects in hardware_actions(answer):
        wrong = sorted(s for s in subjects if not _action_target_ok(s, targets))
        if wrong:
            problems.append(f"recommends a hardware action for {', '.join(wrong)}, which has no fault: {segment!r}")
    for pattern in expect.forbid:
        match = re.search(pattern, answer, re.IGNORECASE)
        if match:
            problems.append(f"says {match.group(0)!r} (forbidden: /{pattern}/)")
    return Check(name="forbidden", passed=not problems, detail="; ".join(problems))


def check_grounding(observation: Observation) -> Check:
    if observation.unverified_numbers:
        return Check(name="grounding", passed=False,
                     detail=f"numbers in no tool result: {', '.join(observation.unverified_numbers)}")
    return Check(name="grounding", passed=True)


def check_budgets(expect: Expectations, observation: Observation, *, live: bool) -> list[Check]:
    budget = expect.budget
    checks = []
    if budget.round_trips is None:
        checks.append(Check(name="round_trips", passed=None))
    else:
        ok = observation.round_trips <= budget.round_trips
        checks.append(Check(name="round_trips", passed=ok,
                            detail=f"{observation.round_trips} of at most {budget.round_trips}"))
    tokens = observation.prompt_tokens + observation.completion_tokens
    if budget.tokens is None:
        checks.append(Check(name="tokens", passed=None))
    elif tokens == 0:
        checks.append(Check(name="tokens", passed=None, detail="the server reported no token usage"))
    else:
        checks.append(Check(name="tokens", passed=tokens <= budget.tokens, detail=f"{tokens} of at most {budget.tokens}"))
    if budget.latency_s is None or not live:
        checks.append(Check(name="latency", passed=None,
                            detail="" if live else "replayed: time is not the model's"))
    else:
        checks.append(Check(name="latency", passed=observation.latency_s <= budget.latency_s,
                            detail=f"{observation.latency_s:.1f} s of at most {budget.latency_s:g} s"))
    return checks


def score_turn(expect: Expectations, observation: Observation, *, truths: Sequence[Truth],
               evidence: Sequence[Reading], live: bool) -> list[Check]:
    """Every check of one turn. ``evidence``: the readings of the conversation's tool results so far."""
    if observation.degraded:
        completed = Check(name="completed", passed=False,
                          detail=f"answered without the model: {observation.degraded_reason or 'no reason given'}")
    else:
        completed = Check(name="completed", passed=bool(observation.answer.strip()),
                          detail="" if observation.answer.strip() else "empty answer")
    answer = observation.answer
    return [
        completed,
        check_tools(expect, observation),
        check_subjects(expect, answer, truths),
        check_cause(expect, answer),
        check_number(expect, answer, evidence, truths),
        check_says(expect, answer),
        check_forbidden(expect, answer, truths),
        check_grounding(observation),
        *check_budgets(expect, observation, live=live),
    ]
