"""The module-level graph ``langgraph.json`` names, the typed state it keeps, and the pinned LangServe workarounds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import typing
from pathlib import Path

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph.state import CompiledStateGraph

from gpudoc.graph.agent import build_agent
from gpudoc.graph.checkpoint import open_checkpointer
from gpudoc.graph.contracts import ToolCallRecord
from gpudoc.graph.question import QuestionFacts
from gpudoc.graph.runner import run_turn
from gpudoc.graph.state import AgentState, TurnOutcome
from gpudoc.tools.diagnosis.findings import Finding
from tests.doubles.scripted_chat_model import ScriptedChatModel, calls, text, tool_call
from tests.test_graph_agent import SETTINGS, sim

REPO = Path(__file__).resolve().parents[1]

LOAD_AS_LANGGRAPH_DOES = """
import asyncio, importlib.util, json, sys
path, variable = sys.argv[1].split(":")
spec = importlib.util.spec_from_file_location("gpudoc_studio_graph", path)
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
graph = getattr(module, variable)
state = asyncio.run(graph.ainvoke({"messages": [{"role": "user", "content": "Is node-2 running hot?"}]}))
print(json.dumps({"type": type(graph).__name__, "answer": state["outcome"].answer,
                  "nodes": sorted(graph.get_graph().nodes)}))
"""


def test_langgraph_json_names_a_module_level_graph_that_runs() -> None:
    """Loaded by file path as the LangGraph server loads it, configured from the environment."""
    config = json.loads((REPO / "langgraph.json").read_text())
    assert config["dependencies"] == ["."]
    [(graph_id, reference)] = config["graphs"].items()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GPUDOC_", "LLM_"))}
    env.update(LLM_BASE_URL="http://127.0.0.1:9/v1", LLM_MAX_RETRIES="0", GPUDOC_SIM_NODES="4",
               GPUDOC_SCENARIOS="thermal-throttle@node-2/gpu-3")
    done = subprocess.run([sys.executable, "-c", LOAD_AS_LANGGRAPH_DOES, reference], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert graph_id == "gpudoc" and loaded["type"] == CompiledStateGraph.__name__
    assert {"plan", "call_tools", "reflect", "answer", "finish"} <= set(loaded["nodes"])
    assert loaded["answer"].startswith("> **Answered without the language model.**")
    assert "node-2/gpu-3" in loaded["answer"]  # the scenario came from the environment


def test_state_has_no_routing_field_and_typed_channels() -> None:
    hints = typing.get_type_hints(AgentState)
    assert "next_step" not in hints
    assert hints["outcome"] == TurnOutcome | None and hints["facts"] is QuestionFacts


async def test_the_checkpointed_state_is_typed_and_survives_a_restart(tmp_path: Path) -> None:
    script = [calls(tool_call("diagnose_cluster")), text("node-3/gpu-5 fell off the bus.")]
    source = sim("xid79-fell-off-bus@node-3/gpu-5")
    async with open_checkpointer(tmp_path / "t.sqlite") as saver:
        agent = build_agent(source=source, llm=ScriptedChatModel(script=script), settings=SETTINGS, checkpointer=saver)
        await run_turn(agent, "Which GPUs need an RMA?", thread_id="typed")
    async with open_checkpointer(tmp_path / "t.sqlite") as saver:
        agent = build_agent(source=source, llm=ScriptedChatModel(), settings=SETTINGS, checkpointer=saver)
        values = (await agent.aget_state({"configurable": {"thread_id": "typed"}})).values
    assert all(isinstance(r, ToolCallRecord) for r in values["evidence"]) and len(values["evidence"]) == 2
    assert all(isinstance(f, Finding) for f in values["findings"])
    assert isinstance(values["facts"], QuestionFacts) and values["facts"].topics == ["health"]
    assert isinstance(values["outcome"], TurnOutcome) and values["rounds"] == 2


async def test_per_turn_channels_start_afresh_on_a_new_question() -> None:
    model = ScriptedChatModel(script=[calls(tool_call("get_node_details", node_id="node-0")), text("first"),
                                      text("thanks!")])
    agent = build_agent(source=sim(), llm=model, settings=SETTINGS, checkpointer=InMemorySaver())
    await run_turn(agent, "Is node-0 hot?", thread_id="t")
    second = await run_turn(agent, "thank you", thread_id="t")
    values = (await agent.aget_state({"configurable": {"thread_id": "t"}})).values
    assert second.tool_calls == [] and values["evidence"] == [] and values["rounds"] == 0
    assert values["llm_round_trips"] == 1 and values["outcome"].answer == "thanks!"
