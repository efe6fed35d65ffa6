"""Every option is defined once (``gpudoc.config``): the CLI, the server and the environment agree on it."""

from __future__ import annotations

import argparse
import typing

import pytest
from pydantic import ValidationError

from gpudoc.cli import build_parser, main
from gpudoc.commands.options import settings_from_args
from gpudoc.config import Settings
from gpudoc.server.settings import ServerSettings
from gpudoc.tools.sources.factory import SourceName, SourceOptions


def subparser(name: str) -> argparse.ArgumentParser:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices[name]


def option(parser: argparse.ArgumentParser, flag: str) -> argparse.Action:
    return next(a for a in parser._actions if flag in a.option_strings)


@pytest.mark.parametrize("command", ["ask", "chat", "serve"])
def test_max_rounds_has_one_range_for_cli_server_and_environment(command, monkeypatch, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args([command, *(["q"] if command == "ask" else []), "--max-rounds", "13"])
    assert "13 is out of range; use 1..12" in capsys.readouterr().err
    monkeypatch.setenv("GPUDOC_MAX_ROUNDS", "13")
    with pytest.raises(ValidationError, match="less than or equal to 12"):
        ServerSettings()
    monkeypatch.setenv("GPUDOC_MAX_ROUNDS", "12")
    assert ServerSettings().max_rounds == 12
    assert build_parser().parse_args([command, *(["q"] if command == "ask" else []), "--max-rounds", "12"])


@pytest.mark.parametrize("command", ["diagnose", "ask", "chat", "serve", "sim"])
def test_source_choices_are_written_once(command):
    choices = list(typing.get_args(SourceName))
    assert option(subparser(command), "--source").choices == choices
    assert typing.get_args(Settings.model_fields["source"].annotation) == tuple(choices)
    assert SourceOptions.model_fields["source"].annotation == SourceName


def test_simulator_size_has_one_range(capsys, monkeypatch):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["diagnose", "--nodes", "2000"])
    assert "2000 is out of range; use 1..1024" in capsys.readouterr().err
    monkeypatch.setenv("GPUDOC_SIM_NODES", "2000")
    with pytest.raises(ValidationError, match="less than or equal to 1024"):
        Settings()


def test_flags_take_precedence_over_the_environment(monkeypatch):
    monkeypatch.setenv("LLM_MODEL", "from/env")
    monkeypatch.setenv("GPUDOC_SCENARIOS", "host-down@node-1, thermal-throttle")
    args = build_parser().parse_args(["ask", "q", "--model", "from/flag", "--no-thinking", "--temperature", "1.0"])
    settings = settings_from_args(args)
    assert (settings.llm_model, settings.llm_enable_thinking, settings.llm_temperature) == ("from/flag", False, 1.0)
    assert settings.scenarios == ["host-down@node-1", "thermal-throttle"]
    assert settings.source_options().scenarios == settings.scenarios


def test_a_bad_environment_value_is_one_line_naming_the_variable(monkeypatch, capsys):
    monkeypatch.setenv("LLM_TOP_P", "1.5")
    assert main(["diagnose", "--nodes", "2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "LLM_TOP_P" in err and "less than or equal to 1" in err


def test_every_flag_names_its_default_and_variable():
    help_text = subparser("serve").format_help()
    for flag, variable in [("--max-rounds", "GPUDOC_MAX_ROUNDS"), ("--temperature", "LLM_TEMPERATURE"),
                           ("--top-p", "LLM_TOP_P"), ("--max-tokens", "LLM_MAX_TOKENS"), ("--source", "GPUDOC_SOURCE"),
                           ("--db-path", "GPUDOC_DB_PATH"), ("--tool-timeout", "GPUDOC_TOOL_TIMEOUT_S")]:
        assert flag in help_text and variable in help_text.replace("\n", " ").replace("  ", " ")
