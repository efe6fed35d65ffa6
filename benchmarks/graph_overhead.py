"""What the agent graph costs: model round trips per question, and its own overhead per question.

Two measurements in one run:

1. Round trips: single-tool, multi-tool and follow-up questions through the real client path
   (``build_chat_model`` -> HTTP -> the stub vLLM server, a keyword-policy test double).
2. Overhead: the same question answered by the graph and by a plain hand-written loop (model
   with tools bound, the calls run with ``asyncio.gather``, model again), both with an instant
   scripted model (a test double) and the same tools, so the difference is the graph itself
   (state, checkpoints of the step loop, reflect, grounding, streaming). Reported as a ratio
   against the loop measured in the same run, once with the simulator's cluster tools and once
   with instant tools (the worst case for the ratio).

    .venv/bin/python benchmarks/graph_overhead.py [--iterations 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Awaitable, Callable, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.doubles

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage  # noqa: E402
from langchain_core.tools import BaseTool, StructuredTool  # noqa: E402

from gpudoc.config import Settings  # noqa: E402
from gpudoc.graph.agent import build_agent  # noqa: E402
from gpudoc.graph.llm import build_chat_model  # noqa: E402
from gpudoc.graph.runner import run_turn, stream_turn  # noqa: E402
from gpudoc.tools.cluster_tools import build_cluster_tools  # noqa: E402
from gpudoc.tools.sim.source import SimSource  # noqa: E402
from tests.doubles.scripted_chat_model import ScriptedChatModel, calls, text, tool_call  # noqa: E402
from tests.doubles.stub_vllm import StubVllmServer  # noqa: E402

ROUND_TRIP_QUESTIONS = {
    "single tool": "Show me node-1",
    "multi tool (parallel)": "Is node-2 running hot?",
    "multi part": "Is node-2 running hot, and why are jobs pending?",
    "critical finding follow-up": "Which GPUs need an RMA?",
}
QUESTION = "Is node-2 running hot?"
CALLS = (("get_node_details", {"node_id": "node-2"}), ("get_gpu_history", {"node_id": "node-2"}))


def sim() -> SimSource:
    return SimSource.create(seed=42, nodes=8, scenarios=["thermal-throttle@node-2/gpu-3",
                                                         "xid79-fell-off-bus@node-3/gpu-5"], realtime=False)


async def round_trips() -> dict[str, dict[str, Any]]:
    with StubVllmServer() as url:
        settings = Settings(LLM_BASE_URL=url, LLM_MAX_RETRIES=0)
        agent = build_agent(source=sim(), llm=build_chat_model(settings), settings=settings)
        rows = {}
        for label, question in ROUND_TRIP_QUESTIONS.items():
            result = await run_turn(agent, question)
            rows[label] = {"question": question, "llm_round_trips": result.llm_round_trips,
                           "tool_rounds": result.tool_rounds, "tools": [c.name for c in result.tool_calls]}
    return rows


def instant_model() -> ScriptedChatModel:
    """Asks for CALLS when the turn has no tool results yet, answers otherwise: no waiting at all."""
    def step(prompt: Sequence[BaseMessage]) -> AIMessage:
        if isinstance(prompt[-1], ToolMessage):
            return text("node-2 answer from the evidence.")
        return calls(*(tool_call(name, f"c{i}", **args) for i, (name, args) in enumerate(CALLS)))

    return ScriptedChatModel(script=[step], repeat_last=True)


def instant_tools() -> list[BaseTool]:
    async def node(node_id: str) -> str:
        return '{"node":"node-2","temp_c":88.6}'

    async def history(node_id: str | None = None, duration_minutes: int = 60) -> str:
        return '{"node":"node-2","max_c":89.1}'

    return [StructuredTool.from_function(coroutine=node, name="get_node_details", description="node"),
            StructuredTool.from_function(coroutine=history, name="get_gpu_history", description="history")]


async def hand_loop(model: ScriptedChatModel, tools: Sequence[BaseTool]) -> str:
    """The baseline: what one would write without a graph for the same two model calls."""
    by_name = {t.name: t for t in tools}
    messages: list[BaseMessage] = [SystemMessage("You are gpudoc."), HumanMessage(QUESTION)]
    request = await model.bind_tools(tools).ainvoke(messages)
    messages.append(request)
    outputs = await asyncio.gather(*(by_name[c["name"]].ainvoke(c["args"]) for c in request.tool_calls))
    messages += [ToolMessage(content=str(o), tool_call_id=c["id"]) for c, o in zip(request.tool_calls, outputs)]
    answer = await model.ainvoke(messages)
    return str(answer.content)


async def timed(run: Callable[[], Awaitable[Any]], iterations: int) -> float:
    await run()  # warm-up
    samples = []
    for _ in range(iterations):
        started = time.perf_counter()
        await run()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000


async def overhead(iterations: int) -> dict[str, dict[str, float]]:
    results = {}
    source = sim()
    for label, tools in (("simulator tools", build_cluster_tools(source)), ("instant tools", instant_tools())):
        model = instant_model()
        agent = build_agent(source=source, llm=model, settings=Settings(), tools=tools)

        async def streamed() -> None:
            async for _ in stream_turn(agent, QUESTION):
                pass

        loop_ms = await timed(lambda: hand_loop(model, tools), iterations)
        graph_ms = await timed(lambda: run_turn(agent, QUESTION), iterations)
        stream_ms = await timed(streamed, iterations)
        results[label] = {"hand_loop_ms": round(loop_ms, 3), "graph_run_turn_ms": round(graph_ms, 3),
                          "graph_stream_turn_ms": round(stream_ms, 3),
                          "overhead_ms": round(graph_ms - loop_ms, 3),
                          "ratio_run_turn": round(graph_ms / loop_ms, 2),
                          "ratio_stream_turn": round(stream_ms / loop_ms, 2)}
    return results


async def main(iterations: int) -> dict[str, Any]:
    return {"round_trips": await round_trips(), "overhead_per_question": await overhead(iterations),
            "iterations": iterations}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=200)
    report = asyncio.run(main(parser.parse_args().iterations))
    print(json.dumps(report, indent=2))
