"""Replay: what the cassette matcher ignores (irrelevant request differences) and what it catches
(a changed conversation, a different path through the agent, a stale or missing cassette)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Callable

import yaml

from gpudoc.evals.recordings import CASSETTE_ROOT, DEFAULT_RECORDING, MANIFEST, conversation_key
from tests.eval_runs import run_eval

CASE = "thermal-node2-hot"
CASE_YAML = """cases:
  - id: thermal-node2-hot
    scenarios: [thermal-throttle@node-2/gpu-3]
    question: {question}
    expect:
      subjects: [node-2/gpu-3]
"""


def recording(tmp_path: Path, edit: Callable[[list[dict[str, Any]]], None] | None = None) -> Path:
    """A copy of the committed recording of CASE, its interactions passed through ``edit``."""
    directory = tmp_path / "recording"
    directory.mkdir()
    source = CASSETTE_ROOT / DEFAULT_RECORDING
    shutil.copy(source / MANIFEST, directory / MANIFEST)
    cassette = yaml.safe_load((source / f"{CASE}.yaml").read_text())
    if edit is not None:
        edit(cassette["interactions"])
    (directory / f"{CASE}.yaml").write_text(yaml.safe_dump(cassette))
    return directory


def suite(tmp_path: Path, question: str = "Is node-2 running hot?") -> Path:
    directory = tmp_path / "suite"
    directory.mkdir()
    (directory / "cases.yaml").write_text(CASE_YAML.format(question=question))
    return directory


def edit_bodies(change: Callable[[dict[str, Any]], None]) -> Callable[[list[dict[str, Any]]], None]:
    def edit(interactions: list[dict[str, Any]]) -> None:
        for interaction in interactions:
            body = json.loads(interaction["request"]["body"])
            change(body)
            interaction["request"]["body"] = json.dumps(body)
    return edit


def replay(capsys, tmp_path: Path, recording_dir: Path, suite_dir: Path) -> dict[str, Any]:
    call = run_eval(capsys, tmp_path, "--recording", str(recording_dir), "--suite", str(suite_dir))
    return call.case(CASE)


def test_irrelevant_request_differences_still_replay(capsys, tmp_path):
    def reword(body: dict[str, Any]) -> None:
        body["messages"][0]["content"] = "A reworded system prompt."
        body["temperature"], body["top_p"] = 0.6, 0.95
        body["model"] = "another/model"
        for tool in body.get("tools") or []:
            tool["function"]["description"] = "reworded"
        for message in body["messages"]:
            for call in message.get("tool_calls") or []:
                call["id"] = "call_renamed"
                call["function"]["arguments"] = json.dumps(json.loads(call["function"]["arguments"]), indent=2)
            if message.get("role") == "tool":
                message["content"] = "a tool result of another day"

    def headers(interactions: list[dict[str, Any]]) -> None:
        edit_bodies(reword)(interactions)
        for interaction in interactions:
            interaction["request"]["headers"] = {"user-agent": ["something else"]}
            interaction["request"]["uri"] = interaction["request"]["uri"].replace("127.0.0.1", "gpu-box.example")

    case = replay(capsys, tmp_path, recording(tmp_path, headers), suite(tmp_path))
    assert case["error"] is None and case["passed"], case


def test_a_changed_question_fails_with_what_differs(capsys, tmp_path):
    case = replay(capsys, tmp_path, recording(tmp_path), suite(tmp_path, "Is node-2 running warm?"))
    assert not case["passed"]
    assert case["error"].startswith("replay: no recorded exchange matches this request: questions: recorded")
    assert "gpudoc eval --record" in case["error"]


def test_a_different_path_through_the_agent_fails(capsys, tmp_path):
    def other_node(body: dict[str, Any]) -> None:
        for message in body["messages"]:
            for call in message.get("tool_calls") or []:
                call["function"]["arguments"] = call["function"]["arguments"].replace("node-2", "node-5")

    case = replay(capsys, tmp_path, recording(tmp_path, edit_bodies(other_node)), suite(tmp_path))
    assert "calls_this_turn: recorded" in case["error"]


def test_a_changed_tool_list_fails(capsys, tmp_path):
    def fewer_tools(body: dict[str, Any]) -> None:
        body["tools"] = [t for t in body.get("tools") or [] if t["function"]["name"] != "get_alerts"] or None
        if body["tools"] is None:
            del body["tools"]

    case = replay(capsys, tmp_path, recording(tmp_path, edit_bodies(fewer_tools)), suite(tmp_path))
    assert "tools_offered: recorded" in case["error"]


def test_exchanges_left_unplayed_fail_the_case(capsys, tmp_path):
    def one_more(interactions: list[dict[str, Any]]) -> None:
        interactions.append(json.loads(json.dumps(interactions[-1])))

    case = replay(capsys, tmp_path, recording(tmp_path, one_more), suite(tmp_path))
    assert "1 recorded exchange(s) were never requested" in case["error"]


def test_a_missing_cassette_fails_the_case_instead_of_calling_out(capsys, tmp_path):
    directory = recording(tmp_path)
    (directory / f"{CASE}.yaml").unlink()
    case = replay(capsys, tmp_path, directory, suite(tmp_path))
    assert case["error"] == (f"no cassette {CASE}.yaml in {directory}; record it with "
                             f"`gpudoc eval --record --case {CASE}`")
    assert case["turns"] == []


def test_the_conversation_key_is_the_questions_the_tools_offered_and_this_turns_calls():
    body = {
        "messages": [
            {"role": "system", "content": "sys"}, {"role": "user", "content": "first"},
            {"role": "assistant", "content": "an answer"}, {"role": "user", "content": "second"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "x", "function": {"name": "get_node_details", "arguments": '{"node_id": "node-2"}'}}]},
            {"role": "tool", "tool_call_id": "x", "content": "{}"},
        ],
        "tools": [{"type": "function", "function": {"name": "b"}}, {"type": "function", "function": {"name": "a"}}],
    }
    assert conversation_key(json.dumps(body)) == {
        "questions": ["first", "second"], "tools_offered": ["a", "b"],
        "calls_this_turn": ['get_node_details({"node_id":"node-2"})'],
    }
