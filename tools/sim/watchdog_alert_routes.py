"""GPU Watchdog's alert routes, answered from the simulator's rule book.

Why they behave as they do: each route does what the real backend's does, so its frontend and
clients work unchanged, down to its quirks:

* only rules in the backend's metric vocabulary (``WATCHDOG_ALERT_METRICS``) exist for the API;
  the simulator's richer rules (XIDs, row remapping, staleness) stay internal, as they would in
  a separate alerting stack, and so do their events;
* rules are validated as the backend's zod schema does (name 1-100 characters, a known metric
  and condition, a number threshold, a duration >= 0, an optional string ``nodeFilter``,
  unknown keys dropped) and any violation is ``400 {"error": "Invalid alert rule data"}``;
  ``POST`` answers 201 with the rule, without ``nodeFilter`` when none was given;
* ``GET /api/alerts/events/history?limit=N`` returns the OLDEST ``N`` events (ascending by
  firing time; ``N`` defaults to 100, is capped at 1000, and a negative one means all);
* events have integer ids; the simulator's evaluator fires them (the real backend has none).
"""

from __future__ import annotations

import json
import math
import uuid
from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gpudoc.tools.js_numbers import express_count
from gpudoc.tools.models import AlertCondition, AlertEvent, AlertRule
from gpudoc.tools.sim.rule_book import UnknownRuleError
from gpudoc.tools.sim.source import SimSource
from gpudoc.tools.sources.base import ClusterSource
from gpudoc.tools.sources.watchdog_shapes import WATCHDOG_ALERT_METRICS, AlertEventWire, AlertRuleWire

#: the most events the backend returns at once, and how many when the request says nothing
EVENTS_CAP, EVENTS_DEFAULT = 1000, 100

WatchdogMetric = Literal[WATCHDOG_ALERT_METRICS]  # type: ignore[valid-type]

_NOT_FOUND = {"error": "Alert rule not found"}
_INVALID = {"error": "Invalid alert rule data"}


class _RuleFields(BaseModel):
    """The backend's ``UpdateAlertRuleSchema``: every field optional, JSON types strict."""

    model_config = ConfigDict(extra="ignore", strict=True, populate_by_name=True)

    name: str | None = Field(None, min_length=1, max_length=100)
    metric: WatchdogMetric | None = None
    condition: AlertCondition | None = None
    threshold: float | None = Field(None, allow_inf_nan=False)
    duration: float | None = Field(None, ge=0, allow_inf_nan=False)
    node_filter: str | None = Field(None, alias="nodeFilter")
    enabled: bool | None = None

    def given(self) -> dict[str, Any]:
        """The fields the request set, as ``AlertRule`` fields (``null`` is not a value here)."""
        values = {name: getattr(self, name) for name in self.model_fields_set}
        if any(value is None for value in values.values()):
            raise ValueError("null is not a valid value")
        if "duration" in values:
            values["duration_seconds"] = math.ceil(values.pop("duration"))
        return values


_REQUIRED = ("name", "metric", "condition", "threshold")


def alert_routes(source: ClusterSource) -> APIRouter:
    router = APIRouter(prefix="/api/alerts")

    async def served_rules() -> list[AlertRule]:
        return [rule for rule in await source.alert_rules() if rule.metric in WATCHDOG_ALERT_METRICS]

    @router.get("")
    async def list_rules() -> JSONResponse:
        return JSONResponse([AlertRuleWire.from_model(rule).to_wire() for rule in await served_rules()])

    @router.get("/events/history")
    async def events(request: Request) -> JSONResponse:
        limit = _events_limit(request.query_params.get("limit"))
        rule_ids = {rule.id for rule in await served_rules()}
        everything = await source.alert_history(limit=1 << 30)
        served = sorted((e for e in everything if e.rule_id in rule_ids), key=_firing_order)
        shown = served if limit < 0 else served[:limit]
        return JSONResponse([AlertEventWire.from_model(event).to_wire() for event in shown])

    @router.get("/{rule_id}")
    async def get_rule(rule_id: str) -> JSONResponse:
        rule = next((rule for rule in await served_rules() if rule.id == rule_id), None)
        if rule is None:
            return JSONResponse(_NOT_FOUND, status_code=404)
        return JSONResponse(AlertRuleWire.from_model(rule).to_wire())

    @router.post("")
    async def create_rule(request: Request) -> JSONResponse:
        editor = _editor(source)
        fields = await _rule_fields(request)
        if editor is None:
            return _not_editable(source)
        if fields is None or not all(name in fields for name in _REQUIRED):
            return JSONResponse(_INVALID, status_code=400)
        rule = editor.create_rule(id=str(uuid.uuid4()), **fields)
        exclude = None if "node_filter" in fields else {"node_filter"}
        return JSONResponse(AlertRuleWire.from_model(rule).to_wire(exclude=exclude), status_code=201)

    @router.put("/{rule_id}")
    async def update_rule(rule_id: str, request: Request) -> JSONResponse:
        editor = _editor(source)
        fields = await _rule_fields(request)
        if editor is None:
            return _not_editable(source)
        if fields is None:
            return JSONResponse(_INVALID, status_code=400)
        if rule_id not in {rule.id for rule in await served_rules()}:
            return JSONResponse(_NOT_FOUND, status_code=404)
        rule = editor.update_rule(rule_id, **fields)
        return JSONResponse(AlertRuleWire.from_model(rule).to_wire())

    @router.delete("/{rule_id}")
    async def delete_rule(rule_id: str) -> Response:
        editor = _editor(source)
        if editor is None:
            return _not_editable(source)
        if rule_id not in {rule.id for rule in await served_rules()}:
            return JSONResponse(_NOT_FOUND, status_code=404)
        try:
            editor.delete_rule(rule_id)
        except UnknownRuleError:
            return JSONResponse(_NOT_FOUND, status_code=404)
        return Response(status_code=204)

    return router


def _editor(source: ClusterSource) -> SimSource | None:
    return source if isinstance(source, SimSource) else None


def _not_editable(source: ClusterSource) -> JSONResponse:
    return JSONResponse({"error": f"the '{source.name}' cluster source does not let alert rules be edited"},
                        status_code=501)


async def _rule_fields(request: Request) -> dict[str, Any] | None:
    """The request's rule fields, or ``None`` when the body is not a valid rule (partial or not)."""
    try:
        body = json.loads(await request.body() or b"{}")
        if not isinstance(body, dict):
            return None
        return _RuleFields.model_validate(body).given()
    except (ValueError, ValidationError):
        return None


def _events_limit(raw: str | None) -> int:
    """``Math.min(Number(limit) || 100, 1000)``, where SQLite reads a negative LIMIT as none."""
    return express_count(raw, default=EVENTS_DEFAULT, cap=EVENTS_CAP)


def _firing_order(event: AlertEvent) -> tuple[object, int | str]:
    return (event.fired_at, int(event.id) if event.id.isdigit() else event.id)
