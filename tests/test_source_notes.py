"""Source notes reach the tool output and the diagnosis, once per call, within the output budget."""

from __future__ import annotations

import asyncio
import json

from langchain_core.messages import ToolMessage

from gpudoc.tools.cluster_tools import build_cluster_tools
from gpudoc.tools.compact import OUTPUT_BUDGET_CHARS
from gpudoc.tools.diagnosis.facts import gather_facts
from gpudoc.tools.models import ClusterStatus, NodeMetrics
from gpudoc.tools.sim.source import SimSource
from gpudoc.tools.sources.notes import MAX_NOTE_CHARS, MAX_NOTES, SourceNotes, collecting_notes, note
from tests.doubles.altered_source import AlteredSource


class NotingSource(AlteredSource):
    """TEST DOUBLE: the simulator, with a note on every status and on every node list."""

    async def cluster_status(self) -> ClusterStatus:
        note("slurm.jobsPending not reported by this backend")
        return await super().cluster_status()

    async def current_metrics(self) -> list[NodeMetrics]:
        await asyncio.sleep(0)  # let parallel calls interleave
        note(f"current metrics via {self.name}: gpus[*].memoryUtilization not reported by this backend")
        for n in range(self.extra_notes):
            note(f"extra note {n}: " + "x" * 300)
        return await super().current_metrics()

    extra_notes = 0


async def call(tool: object, name: str, args: dict[str, object]) -> ToolMessage:
    return await tool.ainvoke({"type": "tool_call", "id": "c1", "name": name, "args": args})  # type: ignore[attr-defined]


async def test_each_tool_call_carries_its_own_notes_even_when_run_in_parallel() -> None:
    tools = {t.name: t for t in build_cluster_tools(NotingSource(SimSource.create(realtime=False)))}
    status, metrics, rules = await asyncio.gather(
        call(tools["get_cluster_status"], "get_cluster_status", {}),
        call(tools["get_current_metrics"], "get_current_metrics", {}),
        call(tools["get_alerts"], "get_alerts", {}),
    )
    assert json.loads(status.content)["source_notes"] == ["slurm.jobsPending not reported by this backend"]
    assert json.loads(metrics.content)["source_notes"] == [
        "current metrics via sim: gpus[*].memoryUtilization not reported by this backend"]
    assert "source_notes" not in json.loads(rules.content)


async def test_notes_count_against_the_output_budget() -> None:
    source = NotingSource(SimSource.create(realtime=False, nodes=64))
    source.extra_notes = 40
    tools = {t.name: t for t in build_cluster_tools(source)}
    message = await call(tools["get_current_metrics"], "get_current_metrics", {})
    payload = json.loads(message.content)
    assert len(message.content) <= OUTPUT_BUDGET_CHARS
    assert len(payload["source_notes"]) == MAX_NOTES + 1 and payload["source_notes"][-1].startswith("(and 29 more")
    assert all(len(line) <= MAX_NOTE_CHARS for line in payload["source_notes"])
    assert "truncated" in payload  # the node list shrank to leave the notes room


async def test_the_diagnosis_lists_notes_among_its_limitations() -> None:
    facts = await gather_facts(NotingSource(SimSource.create(realtime=False)))
    assert "current metrics via sim: gpus[*].memoryUtilization not reported by this backend" in facts.limitations


def test_notes_are_one_line_each_unique_and_only_collected_inside_a_block() -> None:
    note("nobody listens")
    with collecting_notes() as outer:
        note("a\nb")
        note("a  b")
        with collecting_notes() as inner:
            note("inner only")
    assert outer.lines == ["a b"] and inner.lines == ["inner only"]
    assert not SourceNotes()
