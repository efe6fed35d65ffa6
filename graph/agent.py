"""The agent: a LangGraph state machine  start -> plan -> call tools -> reflect -> answer -> finish.

Why this shape: the model (with the tools bound) decides what to look at; the tools run in
parallel; ``reflect`` decides deterministically whether the evidence answers the question (no
extra model call on a simple question: plan, then answer, is two round trips); ``answer``
writes from the evidence with no tools bound, so a turn always ends; ``finish`` checks the
answer's numbers against the evidence. When the model endpoint fails, ``degraded`` answers with
the rule-based diagnosis, labelled as such.

Flow::

    start_turn -> plan --tool calls--> call_tools -> reflect --more evidence--> call_tools
                   |  \\--no LLM--> degraded -> finish          |--model must fix--> plan
                   \\--text--> reflect --> finish (the text is the answer)  \\--enough--> answer -> finish
"""

from __future__ import annotations

import json
import uuid
from typing import Any, Sequence

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, HumanMessage, RemoveMessage, SystemMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from gpudoc.config import Settings, load_settings
from gpudoc.graph.contracts import ToolCallRecord
from gpudoc.graph.degraded import LLM_FAILURES, degraded_answer, describe_llm_failure
from gpudoc.graph.grounding import unverified_numbers
from gpudoc.graph.history import compact_previous_turns, fit_to_context, history_budget
from gpudoc.graph.llm import REASONING_KEY, build_chat_model, message_text
from gpudoc.graph.prompts import GPU_LIMITS, answer_prompt, overview_of, plan_prompt
from gpudoc.graph.reflect import asks_about_cluster, coverage_calls, model_fixable, unexamined_critical_nodes
from gpudoc.graph.state import TURN_RESET, AgentState
from gpudoc.graph.think_tags import split_think_tags
from gpudoc.graph.tool_calls import TRANSIENT_KINDS, ToolRound, call_key, planned_calls
from gpudoc.tools.cluster_tools import TOOLS_OVERVIEW, build_cluster_tools
from gpudoc.tools.diagnosis.findings import Finding
from gpudoc.tools.sources.base import ClusterSource

#: seconds one tool call may take before the model is told it timed out
DEFAULT_TOOL_TIMEOUT_S = 30.0
#: response_metadata key marking messages gpudoc wrote itself (never shown as the model's words)
ORIGIN = "gpudoc_origin"


def _records(state: AgentState) -> list[ToolCallRecord]:
    return [ToolCallRecord.model_validate(item) for item in state.get("evidence") or []]


def _findings(state: AgentState) -> list[Finding]:
    return [Finding.model_validate(item) for item in state.get("findings") or []]


def findings_in(result_text: str) -> list[Finding]:
    """Finding-shaped objects (severity, subject, rule) anywhere in a tool's JSON result."""
    try:
        data = json.loads(result_text)
    except ValueError:
        return []
    found: list[Finding] = []
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if {"severity", "subject", "rule"} <= item.keys():
                try:
                    found.append(Finding.model_validate(item))
                except ValueError:
                    pass
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(reversed(item))
    return found


def _merge_findings(old: list[Finding], new: list[Finding]) -> list[dict[str, Any]]:
    merged: dict[tuple[str, str], Finding] = {(f.subject, f.rule): f for f in old}
    for finding in new:
        merged.setdefault((finding.subject, finding.rule), finding)
    return [f.model_dump(mode="json") for f in merged.values()]


def _with_call_ids(message: AIMessage) -> AIMessage:
    """Give every tool call an id (some servers omit them); tool messages must refer to one."""
    if all(c.get("id") for c in message.tool_calls) and all(c.get("id") for c in message.invalid_tool_calls):
        return message
    calls = [{**c, "id": c.get("id") or f"call_{uuid.uuid4().hex[:16]}"} for c in message.tool_calls]
    invalid = [{**c, "id": c.get("id") or f"call_{uuid.uuid4().hex[:16]}"} for c in message.invalid_tool_calls]
    return message.model_copy(update={"tool_calls": calls, "invalid_tool_calls": invalid})


def _without_inline_thinking(message: AIMessage) -> AIMessage:
    """Move thinking left before a lone ``</think>`` (the chat template opened the tag) out of the answer.

    The client splits ``<think>…</think>`` while streaming; this shape is only recognisable once
    the closing tag has arrived, so the final message is put right here.
    """
    content = message.content
    if not isinstance(content, str) or "</think>" not in content:
        return message
    inline, answer = split_think_tags(content)
    reasoning = "\n".join(p for p in (str(message.additional_kwargs.get(REASONING_KEY) or ""), inline) if p)
    return message.model_copy(
        update={"content": answer, "additional_kwargs": {**message.additional_kwargs, REASONING_KEY: reasoning}}
    )


def _scheduled_calls(calls: Sequence[tuple[str, dict[str, Any]]], *, retry: bool = False) -> AIMessage:
    """An assistant turn carrying the calls reflect schedules itself (marked as gpudoc's, not the model's)."""
    return AIMessage(
        content="",
        tool_calls=[{"name": name, "args": args, "id": f"call_{uuid.uuid4().hex[:16]}", "type": "tool_call"}
                    for name, args in calls],
        response_metadata={ORIGIN: "reflect", "retry": retry},
    )


def _empty_answer(records: Sequence[ToolCallRecord]) -> str:
    """Said plainly when the model returned no answer text (e.g. it spent its tokens thinking)."""
    done = ", ".join(dict.fromkeys(r.name for r in records if not r.error)) or "none"
    return ("The language model returned no answer text for this question. Tools that returned data: "
            f"{done}; their results are in the tool calls. Ask again, or raise LLM_MAX_TOKENS.")


def _thinking(config: RunnableConfig) -> bool | None:
    return (config.get("configurable") or {}).get("enable_thinking")


def build_agent(
    *,
    source: ClusterSource,
    llm: BaseChatModel | None,
    checkpointer: Any = None,
    settings: Settings | None = None,
    max_rounds: int = 4,
    tools: Sequence[BaseTool] | None = None,
    tool_timeout_s: float = DEFAULT_TOOL_TIMEOUT_S,
) -> CompiledStateGraph:
    """Compile the agent over ``source``.

    ``llm`` None builds the vLLM client from ``settings`` (``graph/llm.py``). ``tools`` defaults
    to the nine cluster tools over ``source``. Input ``{"messages": [HumanMessage(...)]}``;
    config ``{"configurable": {"thread_id": ..., "enable_thinking": bool | None}}``.
    """
    settings = settings or load_settings()
    model = llm if llm is not None else build_chat_model(settings)
    if tools is None:
        tool_list, overview = build_cluster_tools(source), TOOLS_OVERVIEW
    else:
        tool_list, overview = list(tools), overview_of(list(tools))
    tool_params = {t.name: set(t.tool_call_schema.model_json_schema().get("properties", {})) for t in tool_list}
    planner = model.bind_tools(tool_list)
    executor = ToolRound(tool_list, timeout_s=tool_timeout_s)
    base_url = getattr(model, "openai_api_base", None) or settings.llm_base_url
    plan_system = plan_prompt(overview)
    budget = history_budget(settings.llm_context_tokens, settings.llm_max_tokens, plan_system)

    def with_thinking(runnable: Any, config: RunnableConfig) -> Any:
        thinking = _thinking(config)
        return runnable if thinking is None else runnable.bind(enable_thinking=thinking)

    async def start_turn(state: AgentState) -> dict[str, Any]:
        messages = state.get("messages") or []
        question = next((message_text(m) for m in reversed(messages) if isinstance(m, HumanMessage)), "")
        return {**TURN_RESET, "question": question, "messages": compact_previous_turns(messages)}

    async def call_model(state: AgentState, config: RunnableConfig, runnable: Any, system: str,
                         stage: str) -> dict[str, Any]:
        writer = get_stream_writer()
        trips = state.get("llm_round_trips", 0) + 1
        writer({"kind": "status", "stage": stage, "detail": f"model call {trips}"})
        prompt = [SystemMessage(system), *fit_to_context(state["messages"], budget_tokens=budget)]
        try:
            response = await with_thinking(runnable, config).ainvoke(prompt, config)
        except LLM_FAILURES as error:
            reason = describe_llm_failure(error, base_url)
            writer({"kind": "status", "stage": "degraded", "detail": reason})
            # A call that never got an answer is not a round trip; the failure is in degraded_reason.
            return {"degraded": True, "degraded_reason": reason}
        response = _with_call_ids(_without_inline_thinking(response))
        reasoning = str(response.additional_kwargs.get(REASONING_KEY) or "")
        joined = "\n\n".join(part for part in (state.get("reasoning", ""), reasoning) if part)
        return {"messages": [response], "llm_round_trips": trips, "reasoning": joined}

    async def plan(state: AgentState, config: RunnableConfig) -> dict[str, Any]:
        return await call_model(state, config, planner, plan_system, "planning")

    async def call_tools(state: AgentState) -> dict[str, Any]:
        writer = get_stream_writer()
        request = next(m for m in reversed(state["messages"]) if isinstance(m, AIMessage))
        calls = planned_calls(request)
        earlier = _records(state)
        rounds = state.get("rounds", 0) + 1
        writer({"kind": "status", "stage": "tools", "detail": f"round {rounds}: {len(calls)} call(s)"})
        outcomes = await executor.run(calls, earlier, writer=writer,
                                      allow_repeat=bool(request.response_metadata.get("retry")))
        new_findings = [f for o in outcomes if o.record.name == "diagnose_cluster" and not o.record.error
                        for f in findings_in(o.record.result)]
        return {
            "messages": [o.message for o in outcomes],
            "evidence": [*state.get("evidence", []), *(o.record.model_dump(mode="json") for o in outcomes)],
            "findings": _merge_findings(_findings(state), new_findings),
            "rounds": rounds,
        }

    async def reflect(state: AgentState) -> dict[str, Any]:
        writer = get_stream_writer()
        question = state.get("question", "")
        records = _records(state)
        last = state["messages"][-1]
        at_limit = state.get("rounds", 0) >= max_rounds
        if isinstance(last, AIMessage):  # the model answered in its planning call
            if not at_limit and not any(not r.error for r in records) and asks_about_cluster(question):
                calls = coverage_calls(question, records, tool_params) or [("get_cluster_status", {})]
                writer({"kind": "status", "stage": "revising",
                        "detail": "the draft answer had no evidence; gathering it first"})
                return {"next_step": "call_tools", "messages": [RemoveMessage(id=last.id), _scheduled_calls(calls)]}
            return {"next_step": "finish", "answer": message_text(last)}
        request = next(m for m in reversed(state["messages"]) if isinstance(m, AIMessage))
        request_ids = {c["id"] for c in [*request.tool_calls, *request.invalid_tool_calls]}
        latest = [r for r in records if r.id in request_ids]
        if at_limit:
            unresolved = model_fixable(latest, question) or bool(coverage_calls(question, records, tool_params))
            return {"next_step": "answer", "round_limit_reached": unresolved}
        retried = list(state.get("retried", []))
        retries = [(r.name, r.arguments) for r in latest
                   if r.error_kind in TRANSIENT_KINDS and call_key(r.name, r.arguments) not in retried]
        if retries:
            writer({"kind": "status", "stage": "retrying", "detail": ", ".join(name for name, _ in retries)})
            return {"next_step": "call_tools", "messages": [_scheduled_calls(retries, retry=True)],
                    "retried": [*retried, *(call_key(n, a) for n, a in retries)]}
        follow_ups = coverage_calls(question, records, tool_params)
        node_param = next((p for p in ("node_id", "node") if p in tool_params.get("get_node_details", set())), None)
        if node_param:
            follow_ups += [("get_node_details", {node_param: node})
                           for node in unexamined_critical_nodes(_findings(state), records)]
        if follow_ups:
            writer({"kind": "status", "stage": "follow-up", "detail": ", ".join(name for name, _ in follow_ups)})
            return {"next_step": "call_tools", "messages": [_scheduled_calls(follow_ups)]}
        if model_fixable(latest, question):
            return {"next_step": "plan"}
        return {"next_step": "answer"}

    async def answer(state: AgentState, config: RunnableConfig) -> dict[str, Any]:
        system = answer_prompt(overview, round_limit_reached=bool(state.get("round_limit_reached")))
        update = await call_model(state, config, model, system, "answering")
        if not update.get("degraded"):
            update["answer"] = message_text(update["messages"][-1]).strip() or _empty_answer(_records(state))
        return update

    async def degraded(state: AgentState) -> dict[str, Any]:
        reason = state.get("degraded_reason") or "The language model is unavailable."
        text, findings = await degraded_answer(source, state.get("question", ""), reason, _records(state))
        return {"messages": [AIMessage(content=text, response_metadata={ORIGIN: "degraded"})], "answer": text,
                "findings": _merge_findings(_findings(state), findings)}

    async def finish(state: AgentState) -> dict[str, Any]:
        if state.get("degraded"):
            return {"unverified_numbers": []}  # rendered from the diagnosis itself; no model wrote it
        text = state.get("answer", "")
        sources = [r.result for r in _records(state) if not r.error]
        sources += [GPU_LIMITS, state.get("question", "")]
        sources += [" ".join(f.evidence) for f in _findings(state)]
        return {"unverified_numbers": unverified_numbers(text, sources)}

    def after_plan(state: AgentState) -> str:
        if state.get("degraded"):
            return "degraded"
        last = state["messages"][-1]
        has_calls = isinstance(last, AIMessage) and bool(last.tool_calls or last.invalid_tool_calls)
        return "call_tools" if has_calls else "reflect"

    def after_reflect(state: AgentState) -> str:
        return state.get("next_step") or "answer"

    def after_answer(state: AgentState) -> str:
        return "degraded" if state.get("degraded") else "finish"

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
    graph.add_conditional_edges("plan", after_plan, ["call_tools", "reflect", "degraded"])
    graph.add_edge("call_tools", "reflect")
    graph.add_conditional_edges("reflect", after_reflect, ["plan", "call_tools", "answer", "finish"])
    graph.add_conditional_edges("answer", after_answer, ["degraded", "finish"])
    graph.add_edge("degraded", "finish")
    graph.add_edge("finish", END)
    return graph.compile(checkpointer=checkpointer, name="gpudoc-agent")

