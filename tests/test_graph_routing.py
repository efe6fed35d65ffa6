"""Reflect routes on structured facts: question topics by whole words, named things that exist, and the
tools' declared capabilities, never substrings or tool names. Driven by the scripted chat model (a
TEST DOUBLE) over the simulator.
"""

from __future__ import annotations

import json

from langchain_core.tools import StructuredTool

from gpudoc.graph.agent import build_agent
from gpudoc.graph.question import read_question
from gpudoc.graph.runner import run_turn
from gpudoc.graph.topics import topics_in
from gpudoc.tools.capabilities import ToolCapabilities
from tests.doubles.scripted_chat_model import ScriptedChatModel, calls, text, tool_call
from tests.test_graph_agent import SETTINGS, agent_with, sim


def test_topics_are_whole_words_not_substrings():
    assert "health" not in topics_in("What are the default alert thresholds?")
    assert "thermal" not in topics_in("Take a screenshot of the queue")
    assert topics_in("Is node-2 throttling, and did any XID fire?") == ["thermal", "health"]
    assert "health" in topics_in("Which GPU fell off the bus?")


async def test_named_nodes_are_checked_against_the_cluster():
    facts = await read_question("Compare Node 2 and node-9, GPU 3 on node-2", sim())
    assert facts.nodes == ["node-2"] and facts.unknown_nodes == ["node-9"]
    assert facts.gpus == ["node-2/gpu-3"]
    jobs = await read_question("Why are jobs pending?", sim())
    assert jobs.job_states == ["PENDING"] and jobs.topics == ["jobs"]
    source = sim("pending-on-drained")
    job = next(j for j in (await source.slurm()).jobs if j.state == "PENDING").job_id
    named = await read_question(f"Why is job {job} waiting, and job 99999? Check GPU 9 on node-1.", source)
    assert (named.job_ids, named.unknown_jobs) == ([job], ["99999"])
    assert named.unknown_gpus == ["node-1/gpu-9"] and named.gpus == []


async def test_a_word_containing_a_topic_schedules_nothing():
    agent, _ = agent_with([calls(tool_call("get_alerts")), text("The thresholds are in the rules.")])
    result = await run_turn(agent, "What are the default alert thresholds?")
    assert [c.name for c in result.tool_calls] == ["get_alerts"]  # no diagnose_cluster for "de-fault"
    assert result.tool_rounds == 1


async def test_a_question_without_topic_words_still_gets_evidence_before_an_answer():
    agent, _ = agent_with([text("Everything is fine."), text("All nodes report.")])
    result = await run_turn(agent, "How is the cluster?")
    assert [c.name for c in result.tool_calls] == ["get_cluster_status"]
    assert result.answer == "All nodes report."


async def test_a_named_node_without_topic_words_is_examined():
    agent, _ = agent_with([text("It is fine."), text("node-3: see the readings.")])
    result = await run_turn(agent, "what about node 3?")
    assert [(c.name, c.arguments) for c in result.tool_calls] == [("get_node_details", {"node_id": "node-3"})]


def node_temps_tool() -> StructuredTool:
    """A tool of another name and argument, declaring what it covers."""

    async def node_temps(host: str) -> str:
        return json.dumps({"host": host, "gpus": [{"gpu": 0, "temp_c": 51.5}]})

    return StructuredTool.from_function(
        coroutine=node_temps, name="node_temps", description="Temperatures of one host's GPUs.",
        metadata=ToolCapabilities(covers={"thermal"}, schedules={"thermal"}, arguments={"node": "host"},
                                  requires={"node"}, roles={"node_details"}).as_metadata(),
    )


async def test_pluggable_tools_are_scheduled_by_their_declared_capabilities():
    model = ScriptedChatModel(script=[text("node-1 is cool."), text("node-1 GPU 0: 51.5 C.")])
    agent = build_agent(source=sim(), llm=model, settings=SETTINGS, tools=[node_temps_tool()])
    result = await run_turn(agent, "Is node-1 hot?")
    assert [(c.name, c.arguments, c.error) for c in result.tool_calls] == [("node_temps", {"host": "node-1"}, False)]
    assert result.unverified_numbers == []


async def test_a_tool_without_capabilities_is_never_scheduled_by_the_agent():
    async def lookup(host: str) -> str:
        return "{}"

    plain = StructuredTool.from_function(coroutine=lookup, name="lookup", description="Look a host up.")
    model = ScriptedChatModel(script=[text("node-1 is cool.")])
    agent = build_agent(source=sim(), llm=model, settings=SETTINGS, tools=[plain])
    result = await run_turn(agent, "Is node-1 hot?")
    assert result.tool_calls == [] and result.answer == "node-1 is cool."  # nothing to gather it with


async def test_critical_findings_are_followed_up_through_the_node_details_role():
    agent, _ = agent_with([calls(tool_call("diagnose_cluster")), text("node-3/gpu-5 fell off the bus.")],
                          source=sim("xid79-fell-off-bus@node-3/gpu-5"))
    result = await run_turn(agent, "Anything I should replace?")
    assert [(c.name, c.arguments) for c in result.tool_calls] == [("diagnose_cluster", {}),
                                                                  ("get_node_details", {"node_id": "node-3"})]
