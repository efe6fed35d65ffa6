"""Alerting facts: threshold rules and the events they fired."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from gpudoc.tools.models.base import Model
from gpudoc.tools.models.text import ClusterName, ClusterText


AlertCondition = Literal["gt", "lt", "eq", "gte", "lte"]


class AlertRule(Model):
    """A threshold rule in GPU Watchdog's form: fire when ``metric condition threshold`` for ``duration`` s."""

    id: ClusterName
    name: ClusterText
    metric: ClusterName
    condition: AlertCondition
    threshold: float
    duration_seconds: int = 0
    node_filter: ClusterName | None = None
    enabled: bool = True
    created_at: datetime
    updated_at: datetime


class AlertEvent(Model):
    """One firing of a rule on one node (and GPU, when the metric is per GPU)."""

    id: ClusterName
    rule_id: ClusterName
    rule_name: ClusterText
    node_id: ClusterName
    gpu_index: int | None = None
    metric: ClusterName
    value: float
    threshold: float
    condition: AlertCondition
    fired_at: datetime
    resolved_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.resolved_at is None


# --------------------------------------------------------------------------------------------
