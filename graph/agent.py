"""The agent: a LangGraph state machine  start -> plan -> call tools -> reflect -> answer -> finish.

Why this shape: the model (with the tools bound) decides what to look at; the tools run in
parallel; ``reflect`` decides deterministically whether the evidence answers the question (no
extra model call on a simple question: plan, then answer, is two round trips); ``answer``
writes from the evidence with no tools bound, so a turn always ends; ``finish`` checks the
answer's numbers against the evidence. When the model endpoint fails, ``degraded`` answers with
the rule-based diagnosis, labelled as such.

Nodes route with LangGraph's ``Command`` (the decision and its state update travel together);
the per-turn channels accumulate through reducers (``graph/state.py``).

Flow::

    start_turn -> plan --tool calls--> call_tools -> reflect --more evidence--> call_tools
                   |  \\--no model--> degraded -> finish       |--model must fix--> plan
                   |--no evidence yet--> call_tools            \\--enough--> answer -> finish
                   \\--text--> finish (the text is the answer)

One answer, one truth: only the ``answer`` node's model text streams as answer tokens. What the
model writes while planning is commentary (the thinking channel) or a draft: a draft that is
accepted becomes the answer whole, one that lacked evidence is dropped. ``outcome.answer`` is
exactly what a client received as tokens (``graph/runner.py`` checks it).
"""

from __future__ import annotations

from typing import Any, Literal, Sequence

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command

from gpudoc.config import MIN_OUTPUT_TOKENS, Settings, load_settings
from gpudoc.graph.degraded import degraded_answer
from gpudoc.graph.grounding import check_answer
from gpudoc.graph.history import compact_previous_turns, fit_to_context, history_budget
from gpudoc.graph.llm import build_chat_model, message_text
from gpudoc.graph.model_calls import ModelReply, call_model
from gpudoc.graph.outcomes import ORIGIN, cut_short, empty_answer, findings_in, scheduled_calls
from gpudoc.graph.prompts import GPU_LIMITS, answer_prompt, overview_of, plan_prompt
from gpudoc.graph.question import read_question
from gpudoc.graph.reflect import (
    Toolbox,
    coverage_calls,
    evidence_calls,
    model_fixable,
    unexamined_critical_nodes,
)
from gpudoc.graph.state import AgentState, TurnOutcome, fresh_turn, join_paragraphs
from gpudoc.graph.tool_calls import TRANSIENT_KINDS, ToolRound, call_key, planned_calls
from gpudoc.tools.cluster_tools import TOOLS_OVERVIEW, build_cluster_tools
from gpudoc.tools.sources.base import ClusterSource


def _thinking(config: RunnableConfig) -> bool | None:
    return (config.get("configurable") or {}).get("enable_thinking")


def _accounted(*replies: ModelReply) -> dict[str, Any]:
    """The reducers' share of model calls that got an answer (a call that failed at once is no round trip)."""
    answered = [r for r in replies if r.message is not None and (r.failure is None or r.text or r.reasoning)]
    if not answered:
        return {}
    tokens = answered[0].tokens
    for reply in answered[1:]:
        tokens = tokens + reply.tokens
    reasoning = ""
    for reply in answered:
        reasoning = join_paragraphs(reasoning, reply.reasoning)
    return {"llm_round_trips": len(answered), "tokens": tokens, "reasoning": reasoning}


def build_agent(
    *,
    source: ClusterSource,
    llm: BaseChatModel | None,
    checkpointer: Any = None,
    settings: Settings | None = None,
    max_rounds: int | None = None,
    tools: Sequence[BaseTool] | None = None,
    tool_timeout_s: float | None = None,
) -> CompiledStateGraph:
    """Compile the agent over ``source``.

    ``llm`` None builds the vLLM client from ``settings`` (``graph/llm.py``). ``tools`` defaults
    to the nine cluster tools over ``source``; other tools take part in the agent's own follow-up
    calls through their ``ToolCapabilities`` metadata. ``max_rounds`` and ``tool_timeout_s``
    default to the settings (GPUDOC_MAX_ROUNDS, GPUDOC_TOOL_TIMEOUT_S). Input
    ``{"messages": [HumanMessage(...)]}``; config ``{"configurable": {"thread_id": ...,
    "enable_thinking": bool | None}}``.
    """
    settings = settings or load_settings()
    max_rounds = max_rounds or settings.max_rounds
    model = llm if llm is not None else build_chat_model(settings)
    if tools is None:
        tool_list, overview = build_cluster_tools(source), TOOLS_OVERVIEW
    else:
        tool_list, overview = list(tools), overview_of(list(tools))
    toolbox = Toolbox.of(tool_list)
    findings_tools = {name for name in toolbox.order if "findings" in toolbox.caps(name).roles}
    planner = model.bind_tools(tool_list)
    executor = ToolRound(tool_list, timeout_s=tool_timeout_s or settings.tool_timeout_s)
    base_url = getattr(model, "openai_api_base", None) or settings.llm_base_url
    plan_system = plan_prompt(overview)
    budget = history_budget(settings.llm_context_tokens, settings.llm_max_tokens or MIN_OUTPUT_TOKENS, plan_system)

    def with_thinking(runnable: Any, thinking: bool | None) -> Any:
        return runnable if thinking is None else runnable.bind(enable_thinking=thinking)

    async def ask_model(state: AgentState, config: RunnableConfig, runnable: Any, system: str, stage: str,
                        *, thinking: bool | None = None) -> ModelReply:
        writer = get_stream_writer()
        writer({"kind": "status", "stage": stage, "detail": f"model call {state.get('llm_round_trips', 0) + 1}"})
        prompt = [SystemMessage(system), *fit_to_context(state["messages"], budget_tokens=budget)]
        chosen = _thinking(config) if thinking is None else thinking
        reply = await call_model(with_thinking(runnable, chosen), prompt, config, base_url)
        if reply.failure:
            writer({"kind": "status", "stage": "degraded", "detail": reply.failure})
        return reply

    async def start_turn(state: AgentState) -> dict[str, Any]:
        messages = state.get("messages") or []
        question = next((message_text(m) for m in reversed(messages) if isinstance(m, HumanMessage)), "")
        facts = await read_question(question, source)
        return {**fresh_turn(), "question": question, "facts": facts,
                "messages": compact_previous_turns(messages)}

    async def plan(state: AgentState, config: RunnableConfig) -> Command[Literal["call_tools", "answer", "degraded",
                                                                                 "finish"]]:
        reply = await ask_model(state, config, planner, plan_system, "planning")
        update = _accounted(reply)
        if reply.failure:
            return Command(goto="degraded", update={**update, "llm_failure": reply.failure})
        assert reply.message is not None
        text = reply.text.strip()
        if reply.has_tool_calls:
            if text:  # what the model writes beside its calls is commentary, never the answer
                get_stream_writer()({"kind": "reasoning", "text": text})
                update["reasoning"] = join_paragraphs(update.get("reasoning", ""), text)
            return Command(goto="call_tools", update={**update, "messages": [reply.message]})
        records = state.get("evidence") or []
        facts = state["facts"]
        if state.get("rounds", 0) < max_rounds and facts.about_cluster and not any(not r.error for r in records):
            calls = evidence_calls(facts, records, toolbox)
            if calls:  # a draft about the cluster without evidence is dropped; the evidence comes first
                get_stream_writer()({"kind": "status", "stage": "revising",
                                     "detail": "the draft answer had no evidence; gathering it first"})
                return Command(goto="call_tools", update={**update, "messages": [scheduled_calls(calls)]})
        if not text:
            return Command(goto="answer", update=update)
        message = reply.message.model_copy(update={"content": text})
        return Command(goto="finish", update={**update, "messages": [message], "outcome": TurnOutcome(answer=text)})

    async def call_tools(state: AgentState) -> dict[str, Any]:
        writer = get_stream_writer()
        request = next(m for m in reversed(state["messages"]) if isinstance(m, AIMessage))
        calls = planned_calls(request)
        rounds = state.get("rounds", 0) + 1
        writer({"kind": "status", "stage": "tools", "detail": f"round {rounds}: {len(calls)} call(s)"})
        outcomes = await executor.run(calls, state.get("evidence") or [], writer=writer,
                                      allow_repeat=bool(request.response_metadata.get("retry")))
        return {
            "messages": [o.message for o in outcomes],
            "evidence": [o.record for o in outcomes],
            "findings": [f for o in outcomes if o.record.name in findings_tools and not o.record.error
                         for f in findings_in(o.record.result)],
            "rounds": 1,
        }

    async def reflect(state: AgentState) -> Command[Literal["plan", "call_tools", "answer"]]:
        writer = get_stream_writer()
        facts = state["facts"]
        records = state.get("evidence") or []
        request = next(m for m in reversed(state["messages"]) if isinstance(m, AIMessage))
        request_ids = {c["id"] for c in [*request.tool_calls, *request.invalid_tool_calls]}
        latest = [r for r in records if r.id in request_ids]
        if state.get("rounds", 0) >= max_rounds:
            unresolved = model_fixable(latest, facts, toolbox) or bool(coverage_calls(facts, records, toolbox))
            return Command(goto="answer", update={"round_limit_reached": unresolved})
        retried = state.get("retried") or []
        retries = [(r.name, r.arguments) for r in latest
                   if r.error_kind in TRANSIENT_KINDS and call_key(r.name, r.arguments) not in retried]
        if retries:
            writer({"kind": "status", "stage": "retrying", "detail": ", ".join(name for name, _ in retries)})
            return Command(goto="call_tools", update={"messages": [scheduled_calls(retries, retry=True)],
                                                      "retried": [call_key(n, a) for n, a in retries]})
        follow_ups = coverage_calls(facts, records, toolbox)
        follow_ups += [call for call in unexamined_critical_nodes(state.get("findings") or [], records, toolbox, facts)
                       if call not in follow_ups]
        if follow_ups:
            writer({"kind": "status", "stage": "follow-up", "detail": ", ".join(name for name, _ in follow_ups)})
            return Command(goto="call_tools", update={"messages": [scheduled_calls(follow_ups)]})
        if model_fixable(latest, facts, toolbox):
            return Command(goto="plan")
        return Command(goto="answer")

    async def answer(state: AgentState, config: RunnableConfig) -> Command[Literal["finish", "degraded"]]:
        system = answer_prompt(overview, round_limit_reached=bool(state.get("round_limit_reached")))
        reply = await ask_model(state, config, model, system, "answering")
        replies = [reply]
        if reply.ran_out_of_tokens and not reply.text.strip() and _thinking(config) is not False:
            # The output budget went to thinking: one more try without it, then say so plainly.
            get_stream_writer()({"kind": "status", "stage": "retrying",
                                 "detail": "the model spent its output budget thinking; answering without thinking"})
            reply = await ask_model(state, config, model, system, "answering", thinking=False)
            replies.append(reply)
        update = _accounted(*replies)
        text = reply.text.strip()
        if reply.failure and not text:
            return Command(goto="degraded", update={**update, "llm_failure": reply.failure})
        cut = reply.failure or (
            f"the model reached its output limit ({'LLM_MAX_TOKENS=' + str(settings.llm_max_tokens) if settings.llm_max_tokens else 'set by the server'})."
            if reply.ran_out_of_tokens and text else None)
        if cut:
            final = cut_short(text, cut)
        elif text:
            final = text
        else:
            final = empty_answer(state.get("evidence") or [], out_of_tokens=reply.ran_out_of_tokens,
                                 max_tokens=settings.llm_max_tokens)
        message = (reply.message or AIMessage(content="")).model_copy(update={"content": final})
        return Command(goto="finish", update={**update, "messages": [message],
                                              "outcome": TurnOutcome(answer=final, cut_short=bool(cut))})

    async def degraded(state: AgentState) -> dict[str, Any]:
        reason = state.get("llm_failure") or "The language model is unavailable."
        text, findings = await degraded_answer(source, state.get("question", ""), reason,
                                               state.get("evidence") or [])
        text = text.strip()
        return {"messages": [AIMessage(content=text, response_metadata={ORIGIN: "degraded"})],
                "outcome": TurnOutcome(answer=text, degraded=True, degraded_reason=reason), "findings": findings}

    async def finish(state: AgentState) -> dict[str, Any]:
        outcome = state["outcome"]
        if outcome is None or outcome.degraded:
            return {"grounding": None}  # rendered from the diagnosis itself; no model wrote it
        sources = [r.result for r in state.get("evidence") or [] if not r.error]
        sources += [GPU_LIMITS, state.get("question", "")]
        sources += [" ".join(f.evidence) for f in state.get("findings") or []]
        return {"grounding": check_answer(outcome.answer, sources)}

    graph = StateGraph(AgentState)
    graph.add_node("start_turn", start_turn)
    graph.add_node("plan", plan)
    graph.add_node("call_tools", call_tools)
    graph.add_node("reflect", reflect)
    graph.add_node("answer", answer)
    graph.add_node("degraded", degraded)
    graph.add_node("finish", finish)
    graph.add_edge(START, "start_turn")
    graph.add_edge("start_turn", "plan")
    graph.add_edge("call_tools", "reflect")
    graph.add_edge("degraded", "finish")
    graph.add_edge("finish", END)
    return graph.compile(checkpointer=checkpointer, name="gpudoc-agent")
