"""The ``gpudoc`` command: a thin dispatcher over one module per subcommand.

Each module in ``gpudoc.commands`` exposes ``register(subparsers)``, which adds its parser and
sets ``func`` to a callable taking the parsed namespace and returning an exit code. Errors the
user can fix (unknown scenario, backend down) are ``CliError`` and print one line, no traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from pydantic import ValidationError

from gpudoc import __version__
from gpudoc.tools.sources.base import SourceError

#: subcommand modules, in the order `gpudoc --help` lists them
COMMAND_MODULES = ("diagnose", "scenarios", "sim", "ask", "chat", "serve", "eval")


class CliError(Exception):
    """A problem the user can fix; printed as ``gpudoc: error: <message>`` with exit code 2."""

    @classmethod
    def from_value_error(cls, exc: ValueError) -> "CliError":
        """One readable line from a bad option: a pydantic error names each field (or environment
        variable) and what is wrong with it, instead of its multi-line dump with a docs URL."""
        if isinstance(exc, ValidationError):
            secret = _secret_settings()
            problems = "; ".join(
                f"{'.'.join(str(part) for part in error['loc']) or exc.title}: {error['msg']}"
                + (f" (got {error.get('input')!r})"
                   if not isinstance(error.get("input"), dict) and not secret & set(map(str, error["loc"])) else "")
                for error in exc.errors()
            )
            return cls(f"invalid {exc.title}: {problems}")
        return cls(str(exc))


def _secret_settings() -> set[str]:
    """Names and variables of the settings kept out of repr (tokens, passwords, a database URL that
    may hold one): a refused value of theirs is named, never quoted back."""
    from gpudoc.config import Settings

    return {key for name, field in Settings.model_fields.items() if not field.repr
            for key in (name, field.alias) if key}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gpudoc", description="Diagnose NVIDIA GPU clusters with a local LLM agent."
    )
    parser.add_argument("--version", action="version", version=f"gpudoc {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"gpudoc.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"gpudoc.commands.{name}":
                continue  # a subcommand not built into this installation
            raise
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (CliError, SourceError) as exc:
        print(f"gpudoc: error: {exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:  # e.g. a malformed number in an environment variable
        print(f"gpudoc: error: {CliError.from_value_error(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
