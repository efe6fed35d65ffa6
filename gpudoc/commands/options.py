"""Command-line arguments derived from the settings' own declarations (``gpudoc.config.option``).

Why derived: a range, a list of choices or a default written twice drifts (the CLI once accepted
``--max-rounds 20`` while the server refused ``GPUDOC_MAX_ROUNDS=20``). Each setting with a
``flag`` becomes an argparse argument of the commands that take its group, with the type, the
range check and the choices read from the field, and the help naming the default and the
environment variable. A flag that is not given leaves the environment (or the default) in force.
"""

from __future__ import annotations

import argparse
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import annotated_types
from pydantic import ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

from gpudoc.cli import CliError
from gpudoc.config import Settings

SettingsT = typing.TypeVar("SettingsT", bound=BaseSettings)


def _cli(field: FieldInfo) -> dict[str, Any] | None:
    extra = field.json_schema_extra
    return extra.get("cli") if isinstance(extra, dict) else None  # type: ignore[return-value]


def flagged_fields(settings_cls: type[BaseSettings], groups: tuple[str, ...]) -> Iterator[tuple[str, FieldInfo, dict]]:
    """(name, field, cli spec) of every setting with a flag in one of ``groups``, in declaration order."""
    for name, field in settings_cls.model_fields.items():
        cli = _cli(field)
        if cli and cli.get("group") in groups:
            yield name, field, cli


def _bounds(field: FieldInfo) -> tuple[float | None, float | None, bool, bool]:
    """(low, high, low is exclusive, high is exclusive) from the field's constraints."""
    low = high = None
    low_open = high_open = False
    for item in field.metadata:
        if isinstance(item, annotated_types.Ge):
            low = item.ge
        elif isinstance(item, annotated_types.Gt):
            low, low_open = item.gt, True
        elif isinstance(item, annotated_types.Le):
            high = item.le
        elif isinstance(item, annotated_types.Lt):
            high, high_open = item.lt, True
    return low, high, low_open, high_open


def _range_text(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    if low is not None and high is not None and not low_open and not high_open:
        return f"{low:g}..{high:g}"
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {low:g}")
    if high is not None:
        parts.append(f"{'<' if high_open else '<='} {high:g}")
    return " and ".join(parts)


def number_in_range(kind: type, low: float | None, high: float | None, *, low_open: bool = False,
                    high_open: bool = False, none_word: str | None = None) -> Callable[[str], Any]:
    """An argparse ``type`` that rejects out-of-range numbers at parse time, with the range in the message."""
    allowed = _range_text(low, high, low_open, high_open)

    def parse(text: str) -> Any:
        if none_word is not None and text.strip().lower() == none_word:
            return None
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid {'integer' if kind is int else 'number'}: {text!r}") from None
        too_low = low is not None and (value <= low if low_open else value < low)
        too_high = high is not None and (value >= high if high_open else value > high)
        if too_low or too_high:
            raise argparse.ArgumentTypeError(f"{value:g} is out of range; use {allowed}"
                                             + (f" or '{none_word}'" if none_word else ""))
        return value

    return parse


def _argument(name: str, field: FieldInfo, cli: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    annotation = field.annotation
    args = typing.get_args(annotation)
    optional = type(None) in args
    base = next((a for a in args if a is not type(None)), annotation) if optional else annotation
    default = field.default
    env = field.alias
    kwargs: dict[str, Any] = {"dest": name, "default": argparse.SUPPRESS}
    kwargs["metavar"] = cli.get("metavar") or cli["flag"].lstrip("-").upper().replace("-", "_")
    help_text = field.description or ""
    if base is bool:
        del kwargs["metavar"]
        kwargs["action"] = argparse.BooleanOptionalAction
        shown = "on" if default else "off"
    elif typing.get_origin(base) is Literal:
        kwargs["choices"] = list(typing.get_args(base))
        del kwargs["metavar"]
        shown = default
    elif typing.get_origin(base) is list:
        kwargs["action"] = "append"
        shown = "none"
    elif base in (int, float):
        low, high, low_open, high_open = _bounds(field)
        kwargs["type"] = number_in_range(base, low, high, low_open=low_open, high_open=high_open,
                                         none_word="unset" if optional else None)
        allowed = _range_text(low, high, low_open, high_open)
        if allowed:
            help_text += f"; {allowed}" + (" or 'unset'" if optional else "")
        shown = default
    elif base is Path:
        kwargs["type"] = Path
        shown = default
    else:
        shown = default
    kwargs["help"] = f"{help_text} (default: {shown}; env {env})".replace("%", "%%")
    return [cli["flag"]], kwargs


def add_option_groups(parser: argparse.ArgumentParser, *groups: str,
                      settings_cls: type[BaseSettings] = Settings) -> None:
    """Add the flags of the settings in ``groups``, one argparse group each."""
    for group in groups:
        section = parser.add_argument_group(group)
        for name, field, cli in flagged_fields(settings_cls, (group,)):
            flags, kwargs = _argument(name, field, cli)
            section.add_argument(*flags, **kwargs)


def settings_from_args(args: argparse.Namespace, settings_cls: type[SettingsT] = Settings,  # type: ignore[assignment]
                       **overrides: Any) -> SettingsT:
    """The settings with every flag given on the command line taking precedence over the environment.

    A value the settings refuse (a malformed number in an environment variable) is a ``CliError``
    naming the variable.
    """
    given = {name: getattr(args, name) for name, _, _ in flagged_fields(settings_cls, _all_groups(settings_cls))
             if hasattr(args, name)}
    try:
        return settings_cls(**given, **overrides)
    except ValidationError as exc:
        raise CliError.from_value_error(exc) from None


def _all_groups(settings_cls: type[BaseSettings]) -> tuple[str, ...]:
    return tuple({cli["group"] for field in settings_cls.model_fields.values() if (cli := _cli(field))})
