"""Argument schemas of the cluster tools: lenient where a small model slips, strict where it matters.

Why lenient: a 3B-active model writes ``{"node": 3}``, ``"Node 3"``, ``"2h"`` or ``"running"``.
Rejecting those costs a round trip and teaches nothing, so the schemas accept the common slips
(aliases, numbers as text, durations with units, any case) and the tools normalise node ids
against the real cluster. What cannot be understood fails with a message naming the expected
arguments (``validation_error_handler``), and unknown nodes fail in the tool with the valid ids.
"""

from __future__ import annotations

import re
from typing import Any, Callable

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator

from gpudoc.tools.render_slurm import normalise_job_state

HISTORY_MINUTES_MIN = 1
HISTORY_MINUTES_MAX = 1440
HISTORY_MINUTES_DEFAULT = 60
ALERT_HISTORY_LIMIT_MAX = 200
ALERT_HISTORY_LIMIT_DEFAULT = 20

_NODE_ID_HELP = "a node id like 'node-3' ('Node 3', 'node3' and '3' are accepted too)"
_ALL_NODES = {"", "all", "*", "any", "none", "null", "cluster", "all nodes"}
_DURATION = re.compile(
    r"^\s*(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>m|min|mins|minute|minutes|h|hr|hrs|hour|hours|d|day|days)?\s*$",
    re.IGNORECASE,
)
_UNIT_MINUTES = {"h": 60, "d": 1440}


def _node_text(value: Any) -> Any:
    """Numbers become text (``3`` -> ``"3"``) so the tool can resolve them."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(int(value))
    return value


def _optional_node(value: Any) -> Any:
    """``"all"``, ``"*"`` or an empty string mean "no node": the whole cluster."""
    value = _node_text(value)
    if isinstance(value, str) and value.strip().lower() in _ALL_NODES:
        return None
    return value


class ToolArguments(BaseModel):
    """Base of all tool schemas: unknown extra arguments are ignored rather than fatal."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class NoArguments(ToolArguments):
    """This tool takes no arguments."""


class NodeArguments(ToolArguments):
    node_id: str = Field(
        description=_NODE_ID_HELP,
        validation_alias=AliasChoices("node_id", "node", "nodeId", "node_name", "name"),
    )

    _coerce = field_validator("node_id", mode="before")(_node_text)


class GpuHistoryArguments(ToolArguments):
    node_id: str | None = Field(
        default=None,
        description=f"optional; {_NODE_ID_HELP}. Omit it for a one-line-per-node overview of all nodes",
        validation_alias=AliasChoices("node_id", "node", "nodeId", "node_name"),
    )
    duration_minutes: int = Field(
        default=HISTORY_MINUTES_DEFAULT,
        description=(
            f"optional; how far back, in minutes, default {HISTORY_MINUTES_DEFAULT}, "
            f"range {HISTORY_MINUTES_MIN}..{HISTORY_MINUTES_MAX} (e.g. 30; '2h' is read as 120)"
        ),
        validation_alias=AliasChoices("duration_minutes", "duration", "minutes"),
    )

    _coerce_node = field_validator("node_id", mode="before")(_optional_node)

    @field_validator("duration_minutes", mode="before")
    @classmethod
    def _read_duration(cls, value: Any) -> Any:
        """Accept 30, 30.0, "30", "30m", "2h", "1 day"; clamping happens in the tool, visibly."""
        if value is None:
            return HISTORY_MINUTES_DEFAULT
        if isinstance(value, float):
            return int(round(value))
        if isinstance(value, str):
            match = _DURATION.match(value)
            if match is None:
                raise ValueError(f"could not read '{value[:40]}' as minutes; give a number such as 60")
            unit = (match.group("unit") or "m")[0].lower()
            return int(round(float(match.group("number")) * _UNIT_MINUTES.get(unit, 1)))
        return value


class AlertHistoryArguments(ToolArguments):
    limit: int = Field(
        default=ALERT_HISTORY_LIMIT_DEFAULT,
        description=f"optional; how many recent events, default {ALERT_HISTORY_LIMIT_DEFAULT}, "
        f"at most {ALERT_HISTORY_LIMIT_MAX}",
    )

    @field_validator("limit", mode="before")
    @classmethod
    def _default_when_null(cls, value: Any) -> Any:
        if value is None:
            return ALERT_HISTORY_LIMIT_DEFAULT
        return int(round(value)) if isinstance(value, float) else value


class SlurmJobsArguments(ToolArguments):
    state: str | None = Field(
        default=None,
        description="optional job state filter, any case: PENDING, RUNNING, COMPLETED, FAILED, "
        "CANCELLED, TIMEOUT, NODE_FAIL, ... (squeue codes PD, R also work)",
    )
    node: str | None = Field(
        default=None,
        description=f"optional; only jobs on this node: {_NODE_ID_HELP}",
        validation_alias=AliasChoices("node", "node_id", "nodeId"),
    )
    user: str | None = Field(default=None, description="optional; only jobs of this user name, e.g. 'alice'")

    _coerce_node = field_validator("node", mode="before")(_optional_node)

    @field_validator("state", mode="before")
    @classmethod
    def _normalise_state(cls, value: Any) -> Any:
        if value is None or (isinstance(value, str) and value.strip().lower() in _ALL_NODES):
            return None
        if not isinstance(value, str):
            raise ValueError("state must be text such as 'PENDING'")
        return normalise_job_state(value)

    @field_validator("user", mode="before")
    @classmethod
    def _blank_user(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() in ("", "all", "*", "any"):
            return None
        return value


class DiagnoseArguments(ToolArguments):
    node: str | None = Field(
        default=None,
        description=f"optional; examine only this node: {_NODE_ID_HELP}. Omit it for the whole cluster",
        validation_alias=AliasChoices("node", "node_id", "nodeId"),
    )

    _coerce_node = field_validator("node", mode="before")(_optional_node)


def clamp(value: int, low: int, high: int, name: str) -> tuple[int, str | None]:
    """Bring ``value`` into ``low..high``; the note says what was changed, so the model knows."""
    if value < low:
        return low, f"{name} {value} raised to the minimum {low}"
    if value > high:
        return high, f"{name} {value} clamped to the maximum {high}"
    return value, None


def describe_arguments(schema: type[BaseModel]) -> str:
    """``node_id (required): a node id like 'node-3'; ...`` for error messages."""
    if not schema.model_fields:
        return "no arguments"
    parts = []
    for name, info in schema.model_fields.items():
        need = "required" if info.is_required() else "optional"
        description = (info.description or "").removeprefix("optional; ")
        parts.append(f"{name} ({need}): {description}")
    return "; ".join(parts)


def validation_error_handler(tool_name: str, schema: type[BaseModel]) -> Callable[[Any], str]:
    """The message a model gets for arguments the schema cannot read."""

    def handle(error: ValidationError | Any) -> str:
        problems = []
        for item in error.errors():
            where = ".".join(str(part) for part in item.get("loc", ())) or "arguments"
            message = str(item.get("msg", "invalid")).removeprefix("Value error, ")
            problems.append(f"{where}: {message}")
        return (
            f"Invalid arguments for {tool_name}: {'; '.join(problems)}. "
            f"Expected {describe_arguments(schema)}. Call {tool_name} again with corrected arguments."
        )

    return handle
