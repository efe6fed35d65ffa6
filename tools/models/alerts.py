"""Alerting facts: rules, the events they fired, and the silences that mute them.

Two kinds of rule share one model. GPU Watchdog's threshold rules fire when ``metric condition
threshold`` holds for ``duration_seconds``; Prometheus alerting rules are a PromQL ``expr`` with a
``for`` duration, a ``severity`` label and a ``state``. Fields one kind does not have are ``None``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from gpudoc.tools.models.base import Model
from gpudoc.tools.models.text import ClusterName, ClusterText


AlertCondition = Literal["gt", "lt", "eq", "gte", "lte"]
#: Prometheus's own words: a rule is inactive, pending (condition holds, ``for`` not yet met) or firing
AlertState = Literal["inactive", "pending", "firing"]


class AlertRule(Model):
    """One alerting rule (a GPU Watchdog threshold rule or a Prometheus alerting rule)."""

    id: ClusterName
    name: ClusterText
    metric: ClusterName | None = None
    condition: AlertCondition | None = None
    threshold: float | None = None
    duration_seconds: int = 0
    node_filter: ClusterName | None = None
    enabled: bool = True
    created_at: datetime | None = None
    updated_at: datetime | None = None
    expr: str | None = Field(None, description="PromQL expression (Prometheus rules)")
    group: ClusterText | None = Field(None, description="rule group (Prometheus rules)")
    severity: ClusterText | None = Field(None, description="the rule's severity label")
    state: AlertState | None = None
    summary: ClusterText | None = Field(None, description="the rule's summary annotation")


class AlertEvent(Model):
    """One firing of a rule on one node (and GPU, when the rule is per GPU)."""

    id: ClusterName
    rule_id: ClusterName
    rule_name: ClusterText
    node_id: ClusterName
    gpu_index: int | None = None
    metric: ClusterName | None = None
    value: float | None = None
    threshold: float | None = None
    condition: AlertCondition | None = None
    fired_at: datetime
    resolved_at: datetime | None = None
    state: Literal["pending", "firing"] | None = Field(None, description="Prometheus state while active")
    severity: ClusterText | None = None
    summary: ClusterText | None = Field(None, description="the alert's rendered summary annotation")
    silenced_by: list[ClusterName] = Field(default_factory=list, description="ids of Alertmanager silences muting it")

    @property
    def active(self) -> bool:
        return self.resolved_at is None


class Silence(Model):
    """An Alertmanager silence: alerts matching all ``matchers`` are muted from ``starts_at`` to ``ends_at``."""

    id: ClusterName
    matchers: list[ClusterText] = Field(description='e.g. ["alertname=GpuXidCritical", "Hostname=~node-3"]')
    created_by: ClusterText = ""
    comment: ClusterText = ""
    starts_at: datetime
    ends_at: datetime
    state: Literal["active", "pending", "expired"]
