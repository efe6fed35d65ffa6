"""``gpudoc ask "QUESTION"``: one question to the agent, streamed to the terminal.

Why stream tool calls and thinking, not only the answer: an operator trusts an answer they can
see being built (which tools ran, with which arguments, how long they took, what the model
considered). ``--json`` prints the whole ``TurnResult`` instead, for scripts and evals. With no
language model reachable the command still answers, with the deterministic diagnosis, and
says so on one line first.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from dataclasses import dataclass
from typing import Any, TextIO

from gpudoc.cli import CliError
from gpudoc.commands.common import source_from_args
from gpudoc.commands.options import add_option_groups
from gpudoc.commands.options import settings_from_args as _settings_from_args
from gpudoc.config import AGENT_GROUP, LLM_GROUP, SOURCE_GROUP, Settings
from gpudoc.graph.agent import build_agent
from gpudoc.graph.contracts import (
    AgentEvent,
    DoneEvent,
    ErrorEvent,
    ReasoningEvent,
    StatusEvent,
    TokenEvent,
    ToolEndEvent,
    ToolStartEvent,
    TurnResult,
)
from gpudoc.graph.llm import build_chat_model, llm_available
from gpudoc.graph.runner import stream_turn

#: when the probe already failed, fail fast instead of waiting on retries and timeouts
UNREACHABLE_TIMEOUT_S = 10.0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "ask", help="ask the agent one question",
        description="Ask the diagnostic agent one question; it gathers evidence with the cluster tools "
                    "and answers with numbers from them.",
    )
    parser.add_argument("question", help='e.g. "Is node-0 running hot?"')
    add_agent_arguments(parser)
    parser.add_argument("--json", action="store_true",
                        help="print the result as JSON (answer, tool_calls, findings, degraded, reasoning, ...)")
    parser.set_defaults(func=run)


def add_agent_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``ask`` and ``chat``: the source, the model, the agent (see ``gpudoc.config``)."""
    add_option_groups(parser, SOURCE_GROUP, LLM_GROUP, AGENT_GROUP)


def settings_from_args(args: argparse.Namespace) -> Settings:
    return _settings_from_args(args, Settings)


async def prepare_model(settings: Settings, *, notice: TextIO) -> Settings:
    """Probe the LLM; when it is not there, say so once and make the model client fail fast."""
    probe = await llm_available(settings)
    if probe.available:
        return settings
    print(f"gpudoc: no language model ({probe.error}) - answering with the deterministic diagnosis.",
          file=notice)
    return settings.model_copy(update={"llm_max_retries": 0,
                                       "llm_timeout_s": min(settings.llm_timeout_s, UNREACHABLE_TIMEOUT_S)})


def run(args: argparse.Namespace) -> int:
    if not args.question.strip():
        raise CliError('the question is empty; try: gpudoc ask "Is node-0 running hot?"')
    return asyncio.run(_ask(args))


async def _ask(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    source = source_from_args(args, settings, realtime=False)  # a bad option fails before the LLM probe
    try:
        settings = await prepare_model(settings, notice=sys.stderr)
        agent = build_agent(source=source, llm=build_chat_model(settings), settings=settings)
        renderer = None if args.json else TerminalRenderer(sys.stdout, show_thinking=settings.llm_enable_thinking)
        async for event in stream_turn(agent, args.question):
            if renderer is not None:
                renderer.show(event)
            if isinstance(event, ErrorEvent):
                raise CliError(event.message)
            if isinstance(event, DoneEvent) and args.json:
                print(json.dumps(event.result.model_dump(mode="json"), indent=2))
    finally:
        await source.aclose()
    return 0


@dataclass
class Style:
    """ANSI styles, empty when the output is not a terminal or NO_COLOR is set."""

    dim: str = ""
    bold: str = ""
    red: str = ""
    yellow: str = ""
    reset: str = ""

    @classmethod
    def for_stream(cls, stream: TextIO) -> "Style":
        if os.environ.get("NO_COLOR") or not getattr(stream, "isatty", lambda: False)():
            return cls()
        return cls(dim="\033[2m", bold="\033[1m", red="\033[31m", yellow="\033[33m", reset="\033[0m")


def _arguments_text(arguments: dict[str, Any]) -> str:
    return ", ".join(f"{key}={json.dumps(value)}" for key, value in arguments.items())


class TerminalRenderer:
    """Prints a turn's events: thinking dimmed, tool calls as they start and end, the answer as it streams."""

    def __init__(self, out: TextIO, *, show_thinking: bool = True) -> None:
        self.out = out
        self.show_thinking = show_thinking
        self.style = Style.for_stream(out)
        self._mode = ""  # "reasoning" | "answer" | "": what the current line holds

    def _line_break(self, mode: str) -> None:
        if self._mode and self._mode != mode:
            self.out.write(f"{self.style.reset}\n")
        self._mode = mode

    def show(self, event: AgentEvent) -> None:
        s = self.style
        if isinstance(event, ReasoningEvent):
            if not self.show_thinking:
                return
            if self._mode != "reasoning":
                self._line_break("reasoning")
                self.out.write(f"{s.dim}thinking: ")
            self.out.write(f"{s.dim}{event.text}{s.reset}")
        elif isinstance(event, TokenEvent):
            if self._mode != "answer":
                self._line_break("answer")
                self.out.write("\n")
            self.out.write(event.text)
        elif isinstance(event, ToolStartEvent):
            self._line_break("")
            self.out.write(f"{s.dim}> {event.name}({_arguments_text(event.arguments)}){s.reset}\n")
        elif isinstance(event, ToolEndEvent):
            self._line_break("")
            if event.error:
                self.out.write(f"{s.yellow}x {event.name} failed after {event.duration_ms:.0f} ms: "
                               f"{event.result.splitlines()[0][:160] if event.result else ''}{s.reset}\n")
            else:
                self.out.write(f"{s.dim}  {event.name} done in {event.duration_ms:.0f} ms "
                               f"({len(event.result)} chars){s.reset}\n")
        elif isinstance(event, StatusEvent) and event.stage in ("degraded", "retrying", "follow-up", "revising"):
            self._line_break("")
            self.out.write(f"{s.dim}[{event.stage}] {event.detail}{s.reset}\n")
        elif isinstance(event, DoneEvent):
            self._line_break("")
            self.out.write(f"{s.dim}{summary_line(event.result)}{s.reset}\n")
        self.out.flush()


def summary_line(result: TurnResult) -> str:
    parts = ["answered without the language model" if result.degraded
             else f"{result.llm_round_trips} model call(s)",
             f"{len(result.tool_calls)} tool call(s) in {result.tool_rounds} round(s)"]
    if result.unverified_numbers:
        parts.append(f"{len(result.unverified_numbers)} number(s) not found in the tool results: "
                     + ", ".join(result.unverified_numbers))
    return "-- " + "; ".join(parts)
