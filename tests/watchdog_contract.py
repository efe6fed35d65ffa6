"""GPU Watchdog's API contract, written from the real backend, checked against anything that claims it.

Why a description of its own: ``watchdog_shapes`` is what gpudoc reads and writes; if the
simulator and the client were only checked against it, they would agree with each other and
with nothing else. This module is written from the recordings of the real backend
(``tests/fixtures/gpu_watchdog/``) and its public source: exact keys (no more, no fewer),
exact JSON types (epoch-millisecond integers, ISO strings ending in ``Z``, integer event ids,
``null`` where the backend sends it), the error bodies and statuses, and the orderings (history
newest first, events oldest first). The same checks run against the recordings (proving the
contract describes the real thing), against ``gpudoc sim`` and against a live backend.

Each step names the recording it corresponds to; a ``ContractClient`` answers it: from the
recording (``RecordedBackend``) or over HTTP (``HttpBackend``), in which case the answer's JSON
structure must also match the recording's, key for key and type for type.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol

import httpx
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, TypeAdapter

FIXTURES = Path(__file__).parent / "fixtures" / "gpu_watchdog"

ISO_Z = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$"
IsoZ = Annotated[StrictStr, Field(pattern=ISO_Z)]
EpochMs = Annotated[StrictInt, Field(ge=10**12, lt=10**14)]
Number = StrictInt | StrictFloat
Condition = Literal["gt", "lt", "eq", "gte", "lte"]
Metric = Literal["gpu_utilization", "gpu_memory_used", "gpu_memory_percent", "gpu_temperature", "gpu_power",
                 "slurm_cpus_alloc", "slurm_queue_pending", "slurm_queue_running"]


class Exact(BaseModel):
    """Every key required, no other key allowed, JSON types not coerced."""

    model_config = ConfigDict(extra="forbid", strict=True)


class Gpu(Exact):
    gpu: Annotated[StrictStr, Field(pattern=r"^\d+$")]
    gpuName: StrictStr
    utilization: Number
    memoryUtilization: Number
    memoryUsedMB: Number
    memoryFreeMB: Number
    memoryTotalMB: Number
    temperatureC: Number
    powerUsageW: Number
    smClockMHz: Number
    memClockMHz: Number


class Node(Exact):
    nodeId: StrictStr
    hostname: StrictStr
    gpus: list[Gpu]
    timestamp: IsoZ


class SlurmNode(Exact):
    node: StrictStr
    status: StrictStr
    cpusAlloc: Number
    cpusIdle: Number
    cpusTotal: Number
    memAlloc: Number
    memTotal: Number


class Queue(Exact):
    pending: Number
    running: Number
    completed: Number
    failed: Number
    cancelled: Number


class Slurm(Exact):
    nodes: list[SlurmNode]
    cpusTotal: Number
    cpusAlloc: Number
    cpusIdle: Number
    nodesTotal: Number
    nodesIdle: Number
    nodesAlloc: Number
    queue: Queue


class Current(Exact):
    nodes: list[Node]
    slurm: Slurm | None
    lastUpdated: IsoZ


class SlurmSummary(Exact):
    cpusTotal: Number
    cpusAlloc: Number
    cpusIdle: Number
    nodesTotal: Number
    jobsPending: Number
    jobsRunning: Number


class Status(Exact):
    healthy: StrictBool
    nodeCount: StrictInt
    gpuCount: StrictInt
    avgUtilization: Number
    avgTemperature: Number
    memoryUsedGB: Number
    memoryTotalGB: Number
    slurm: SlurmSummary | None
    lastUpdated: IsoZ


class GpuSummary(Exact):
    index: StrictStr
    name: StrictStr
    utilization: Number
    memoryUsedMB: Number
    memoryTotalMB: Number
    temperatureC: Number
    powerUsageW: Number


class NodeSummary(Exact):
    nodeId: StrictStr
    hostname: StrictStr
    gpuCount: StrictInt
    gpus: list[GpuSummary]
    timestamp: IsoZ


class Range(Exact):
    start: EpochMs
    end: EpochMs


class Point(Exact):
    timestamp: EpochMs
    utilization: Number
    memoryUsedMb: Number
    memoryTotalMb: Number
    temperatureC: Number
    powerUsageW: Number


class Series(Exact):
    nodeId: StrictStr
    gpuIndex: StrictInt
    data: list[Point]


class History(Exact):
    range: Range
    data: list[Series]


class SlurmPoint(Exact):
    timestamp: EpochMs
    cpusTotal: Number
    cpusAlloc: Number
    cpusIdle: Number
    nodesTotal: Number
    nodesIdle: Number
    nodesAlloc: Number
    queuePending: Number
    queueRunning: Number
    queueCompleted: Number
    queueFailed: Number


class SlurmPoints(Exact):
    data: list[SlurmPoint]


class SlurmHistory(Exact):
    range: Range
    data: SlurmPoints


class CreatedRule(Exact):
    """A POST's answer: the stored rule, without ``nodeFilter`` when none was given."""

    id: StrictStr
    name: StrictStr
    metric: Metric
    condition: Condition
    threshold: Number
    duration: Number
    enabled: StrictBool
    createdAt: EpochMs
    updatedAt: EpochMs


class Rule(CreatedRule):
    nodeFilter: StrictStr | None


class Event(Exact):
    id: StrictInt
    ruleId: StrictStr
    ruleName: StrictStr
    nodeId: StrictStr
    metric: StrictStr
    value: Number
    threshold: Number
    condition: StrictStr
    firedAt: EpochMs
    resolvedAt: EpochMs | None


class Health(Exact):
    status: Literal["ok"]
    timestamp: IsoZ


# ---- answering the steps ----------------------------------------------------------------------


class Answer(BaseModel):
    status: int
    body: Any = None
    text: str = ""


class ContractClient(Protocol):
    async def call(self, recording: str, method: str, path: str, body: Any = None) -> Answer: ...


#: the status of recordings kept as ``.json`` bodies, where it is not 200 (see the README)
RECORDED_STATUS = {"alerts-post.json": 201}


def recorded(name: str) -> Answer:
    """A recording: ``.json`` files are bodies (status 200 unless ``RECORDED_STATUS`` says
    otherwise); ``.txt`` files are the body, then the status."""
    raw = (FIXTURES / name).read_text()
    if name.endswith(".json"):
        return Answer(status=RECORDED_STATUS.get(name, 200), body=json.loads(raw), text=raw)
    text, status = raw.rstrip("\n").rsplit("\n", 1)
    return Answer(status=int(status), body=json.loads(text) if text.strip() else None, text=text)


class RecordedBackend:
    """Answers each step with its recording."""

    async def call(self, recording: str, method: str, path: str, body: Any = None) -> Answer:
        return recorded(recording)


class HttpBackend:
    """Answers each step over HTTP, and checks the answer has the recording's JSON structure."""

    def __init__(self, client: httpx.AsyncClient):
        self.client = client

    async def call(self, recording: str, method: str, path: str, body: Any = None) -> Answer:
        response = await self.client.request(method, path, json=body)
        try:
            parsed = response.json() if response.content else None
        except ValueError:
            raise AssertionError(f"{method} {path}: not JSON: {response.text[:200]!r}") from None
        answer = Answer(status=response.status_code, body=parsed, text=response.text)
        expected = recorded(recording)
        assert answer.status == expected.status, f"{method} {path}: HTTP {answer.status}, recorded {expected.status}"
        assert_same_structure(expected.body, answer.body, f"{method} {path}")
        return answer


def json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return {str: "string", list: "array", dict: "object"}[type(value)]


def assert_same_structure(recorded_value: Any, actual: Any, where: str) -> None:
    """Same keys and JSON types all the way down. ``null`` on either side matches anything (a
    value that is absent at one moment and present at another), an integer matches a number
    except where the recording has an integer id or time, and each element of an array must
    have the structure of the recording's first element."""
    if recorded_value is None or actual is None:
        return
    kinds = {json_kind(recorded_value), json_kind(actual)}
    if kinds == {"integer", "number"} and not where.rsplit(".", 1)[-1] in INTEGER_KEYS:
        return
    assert json_kind(recorded_value) == json_kind(actual), (
        f"{where}: {json_kind(actual)} ({actual!r:.60}), recorded {json_kind(recorded_value)} ({recorded_value!r:.60})"
    )
    if isinstance(recorded_value, dict):
        assert set(actual) == set(recorded_value), (
            f"{where}: keys {sorted(set(actual) ^ set(recorded_value))} differ from the recording"
        )
        for key, value in recorded_value.items():
            assert_same_structure(value, actual[key], f"{where}.{key}")
    elif isinstance(recorded_value, list) and recorded_value:
        for position, item in enumerate(actual):
            assert_same_structure(recorded_value[0], item, f"{where}[{position}]")


#: keys whose values the backend sends as integers (ids, epoch milliseconds, counts of nodes)
INTEGER_KEYS = frozenset({"id", "timestamp", "start", "end", "createdAt", "updatedAt", "firedAt",
                          "resolvedAt", "gpuIndex", "nodeCount", "gpuCount"})


def conforms(model: Any, value: Any, where: str) -> Any:
    """``value`` validated against the contract model ``model`` (a class or a type such as a list)."""
    try:
        return TypeAdapter(model).validate_python(value)
    except Exception as exc:  # a ValidationError names the offending keys
        raise AssertionError(f"{where} breaks the contract: {exc}") from None


# ---- the steps ----------------------------------------------------------------------------------


async def check_read_contract(api: ContractClient, *, node: str, absent_node: str) -> None:
    """Every read route: shapes, types, orderings, errors. ``node`` reports; ``absent_node`` does not."""
    health = await api.call("health.json", "GET", "/health")
    conforms(Health, health.body, "GET /health")

    status = conforms(Status, (await api.call("status.json", "GET", "/api/cluster/status")).body,
                      "GET /api/cluster/status")
    current = conforms(Current, (await api.call("current.json", "GET", "/api/metrics/current")).body,
                       "GET /api/metrics/current")
    # The backend counts reporting nodes only and calls the cluster healthy while any reports.
    assert status.healthy == (status.nodeCount > 0)
    if current.slurm is not None:
        assert current.slurm.nodesTotal == len(current.slurm.nodes)
        assert status.slurm is not None and status.slurm.nodesTotal == current.slurm.nodesTotal

    nodes = conforms(list[NodeSummary], (await api.call("cluster-nodes.json", "GET", "/api/cluster/nodes")).body,
                     "GET /api/cluster/nodes")
    assert all(summary.gpuCount == len(summary.gpus) for summary in nodes)

    one = await api.call("gpu-node-2.json", "GET", f"/api/metrics/gpu/{node}")
    assert conforms(Node, one.body, f"GET /api/metrics/gpu/{node}").nodeId == node
    missing = await api.call("404-gpu-node.txt", "GET", f"/api/metrics/gpu/{absent_node}")
    assert (missing.status, missing.body) == (404, {"error": "Node not found"})

    history = conforms(History, (await api.call(
        "hist-node-2.json", "GET", f"/api/metrics/history/gpu?nodeId={node}&duration=5")).body,
        "GET /api/metrics/history/gpu")
    assert history.range.end - history.range.start == 5 * 60_000
    assert history.data and all(series.nodeId == node for series in history.data)
    for series in history.data:
        stamps = [point.timestamp for point in series.data]
        assert stamps == sorted(stamps, reverse=True), "history points come newest first"
        assert all(history.range.start <= stamp <= history.range.end for stamp in stamps)

    unknown = await api.call("history-unknown-node.txt", "GET", "/api/metrics/history/gpu?nodeId=node-99")
    assert unknown.status == 200 and conforms(History, unknown.body, "unknown node history").data == []
    bad = await api.call("400-history-bad-query.txt", "GET", "/api/metrics/history/gpu?duration=abc")
    assert (bad.status, bad.body) == (400, {"error": "Invalid query parameters"})

    slurm_history = conforms(SlurmHistory, (await api.call(
        "history-slurm.json", "GET", "/api/metrics/history/slurm?duration=5")).body, "GET /api/metrics/history/slurm")
    stamps = [point.timestamp for point in slurm_history.data.data]
    assert stamps == sorted(stamps, reverse=True)

    slurm = conforms(Slurm, (await api.call("slurm.json", "GET", "/api/metrics/slurm")).body, "GET /api/metrics/slurm")
    assert slurm.nodesTotal == len(slurm.nodes)

    conforms(list[Rule], (await api.call("alerts.json", "GET", "/api/alerts")).body, "GET /api/alerts")
    oldest = conforms(list[Event], (await api.call(
        "events-limit1.json", "GET", "/api/alerts/events/history?limit=1")).body, "GET /api/alerts/events/history")
    assert len(oldest) <= 1
    nope = await api.call("404-alert.txt", "GET", "/api/alerts/nope")
    assert (nope.status, nope.body) == (404, {"error": "Alert rule not found"})


VALID_RULE = {"name": "GPU temp high", "metric": "gpu_temperature", "condition": "gt", "threshold": 85, "duration": 60}
INVALID_RULE = {"name": "", "metric": "temperature", "condition": "above", "threshold": "hot"}


async def check_write_contract(api: ContractClient) -> None:
    """Creating, reading and deleting a rule, and a rejected one; leaves no rule behind."""
    created = await api.call("alerts-post.json", "POST", "/api/alerts", VALID_RULE)
    assert created.status == 201
    rule = conforms(CreatedRule, created.body, "POST /api/alerts")
    assert (rule.name, rule.metric, rule.threshold, rule.duration, rule.createdAt == rule.updatedAt) == (
        "GPU temp high", "gpu_temperature", 85, 60, True)
    stored = await api.call("alert-by-id.json", "GET", f"/api/alerts/{rule.id}")
    assert conforms(Rule, stored.body, "GET /api/alerts/:id").nodeFilter is None
    rejected = await api.call("400-alerts-post-invalid.txt", "POST", "/api/alerts", INVALID_RULE)
    assert (rejected.status, rejected.body) == (400, {"error": "Invalid alert rule data"})
    deleted = await api.call("alerts-delete.txt", "DELETE", f"/api/alerts/{rule.id}")
    assert deleted.status == 204 and not deleted.text
