"""The simulated cluster's alert rules and the events they fired, as an alerting backend keeps them.

Why a book and not one evaluator: rules change while the cluster runs (GPU Watchdog's API
creates, edits, disables and deletes them). A rule that exists from the start is evaluated
from the start of the alert horizon; a rule created or edited later is evaluated from that
moment on, as a real evaluator would (it cannot fire for the past). Editing or disabling a rule
resolves what it was firing; deleting it deletes its events too (GPU Watchdog's database
cascades). Events get integer ids in firing order, as the backend's SQLite table gives them,
whatever order the evaluators report them in.
"""

from __future__ import annotations

from dataclasses import dataclass

from gpudoc.tools.models import AlertEvent, AlertRule
from gpudoc.tools.sim.alerts import EVALUATED_METRICS, AlertEvaluator, ClusterReadings
from gpudoc.tools.sim.telemetry import Telemetry
from gpudoc.tools.sim.topology import Topology


class UnknownRuleError(LookupError):
    """No rule has that id."""


@dataclass
class _Entry:
    rule: AlertRule
    evaluator: AlertEvaluator | None  # None while the rule is disabled


class RuleBook:
    """Rules, their evaluators and every event, advanced lazily to the scrape being asked about."""

    def __init__(self, rules: list[AlertRule], telemetry: Telemetry, topo: Topology, start_bucket: int,
                 cluster_readings: ClusterReadings | None = None):
        self.telemetry, self.topo, self.cluster_readings = telemetry, topo, cluster_readings
        for rule in rules:
            _check_metric(rule)
        shared = AlertEvaluator(rules, telemetry, topo, start_bucket, cluster_readings)
        self._entries: dict[str, _Entry] = {r.id: _Entry(r, shared if r.enabled else None) for r in rules}
        self._evaluators: list[AlertEvaluator] = [shared]
        self._events: list[AlertEvent] = []
        self._next_id = 1
        self._done = start_bucket - 1

    # ---- reading -----------------------------------------------------------------------------
    def rules(self) -> list[AlertRule]:
        return [entry.rule.model_copy() for entry in self._entries.values()]

    def rule(self, rule_id: str) -> AlertRule:
        entry = self._entries.get(rule_id)
        if entry is None:
            raise UnknownRuleError(rule_id)
        return entry.rule.model_copy()

    def events(self, upto_bucket: int) -> list[AlertEvent]:
        """Every event fired up to ``upto_bucket``, in firing (id) order; copies."""
        self.advance_to(upto_bucket)
        return [event.model_copy() for event in self._events]

    def advance_to(self, bucket: int) -> None:
        if bucket <= self._done:
            return
        fired: list[AlertEvent] = []
        for evaluator in self._evaluators:
            fired.extend(evaluator.advance_to(bucket))
        fired.sort(key=lambda e: (e.fired_at, e.rule_id, e.node_id, -1 if e.gpu_index is None else e.gpu_index))
        for event in fired:
            event.id = str(self._next_id)
            self._next_id += 1
        self._events.extend(fired)
        self._done = bucket

    # ---- changing ----------------------------------------------------------------------------
    def create(self, rule: AlertRule, bucket: int) -> AlertRule:
        """Add ``rule`` (its id must be new), evaluated from ``bucket`` on."""
        _check_metric(rule)
        if rule.id in self._entries:
            raise ValueError(f"an alert rule with id '{rule.id}' exists already")
        self.advance_to(bucket - 1)
        self._entries[rule.id] = _Entry(rule, self._start(rule, bucket))
        return rule.model_copy()

    def replace(self, rule: AlertRule, bucket: int) -> AlertRule:
        """Put ``rule`` in place of the rule with its id; the old version stops at ``bucket``."""
        _check_metric(rule)
        entry = self._entries.get(rule.id)
        if entry is None:
            raise UnknownRuleError(rule.id)
        self._stop(entry, bucket)
        entry.rule, entry.evaluator = rule, self._start(rule, bucket)
        return rule.model_copy()

    def delete(self, rule_id: str, bucket: int) -> None:
        entry = self._entries.pop(rule_id, None)
        if entry is None:
            raise UnknownRuleError(rule_id)
        self._stop(entry, bucket)
        self._events = [event for event in self._events if event.rule_id != rule_id]

    def _start(self, rule: AlertRule, bucket: int) -> AlertEvaluator | None:
        if not rule.enabled:
            return None
        evaluator = AlertEvaluator([rule], self.telemetry, self.topo, max(bucket, self._done + 1),
                                   self.cluster_readings)
        self._evaluators.append(evaluator)
        return evaluator

    def _stop(self, entry: _Entry, bucket: int) -> None:
        self.advance_to(bucket - 1)
        if entry.evaluator is None:
            return
        entry.evaluator.retire(entry.rule.id, self.telemetry.stamp(bucket))
        if not entry.evaluator.rules:
            self._evaluators.remove(entry.evaluator)
        entry.evaluator = None


def _check_metric(rule: AlertRule) -> None:
    if rule.metric not in EVALUATED_METRICS:
        raise ValueError(
            f"alert rule metric '{rule.metric}' is not one the simulator evaluates; "
            f"use one of {', '.join(sorted(EVALUATED_METRICS))}"
        )
