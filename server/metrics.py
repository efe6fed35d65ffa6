"""Prometheus metrics of the server itself: HTTP traffic, agent turns, LLM calls, tokens and tools.

Why one registry per app: tests and benchmarks create several apps in one process, and the
global registry refuses a second collector with the same name. ``gpudoc serve`` has one app, so
``/metrics`` exposes exactly this registry (plus the process collectors).

With several worker processes (``gpudoc serve --workers N``, ``server/workers.py``) every worker
writes its samples under ``PROMETHEUS_MULTIPROC_DIR`` and ``/metrics`` adds up all the workers'
(prometheus_client's multiprocess mode), whichever worker answers the scrape; the per-process
collectors (CPU, memory, GC) are left out there, as one process's figures would be misleading.
"""

from __future__ import annotations

import os
from typing import Any
from uuid import UUID

from langchain_core.callbacks import AsyncCallbackHandler
from langchain_core.outputs import LLMResult
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.multiprocess import MultiProcessCollector

#: set (to a directory) by the worker supervisor; prometheus_client reads it when first imported
MULTIPROCESS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class ServerMetrics:
    """Every metric the server exports, registered on a registry of its own."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.multiprocess_dir = os.environ.get(MULTIPROCESS_DIR_VARIABLE) or None
        self.registry = CollectorRegistry()
        if self.multiprocess_dir is None:
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
            GCCollector(registry=self.registry)
        r = self.registry
        self.http_requests = Counter(
            "gpudoc_http_requests", "HTTP requests served, by route template, method and status.",
            ["route", "method", "status"], registry=r,
        )
        self.http_latency = Histogram(
            "gpudoc_http_request_duration_seconds",
            "Time from request start to the end of the response body (whole stream for SSE).",
            ["route", "method"], buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.http_in_flight = Gauge("gpudoc_http_requests_in_flight", "Requests being served.", registry=r,
                                    multiprocess_mode="livesum")
        self.turns = Counter(
            "gpudoc_agent_turns", "Agent turns by outcome: answered, degraded, error, cancelled.",
            ["outcome"], registry=r,
        )
        self.degraded_answers = Counter(
            "gpudoc_degraded_answers", "Answers produced without the language model.", registry=r,
        )
        self.turn_latency = Histogram(
            "gpudoc_agent_turn_duration_seconds", "Time to complete one agent turn.",
            buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.first_token_latency = Histogram(
            "gpudoc_agent_first_token_seconds", "Time from the start of a turn to its first answer token.",
            buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.tool_calls = Counter(
            "gpudoc_tool_calls", "Tool calls made by the agent, by tool (a name the model invented counts as "
            "'unknown') and outcome (ok, error).",
            ["tool", "outcome"], registry=r,
        )
        self.turns_admitted = Gauge(
            "gpudoc_turns_in_flight", "Turns admitted and not finished (a batch counts each input).", registry=r,
            multiprocess_mode="livesum",
        )
        self.turns_refused = Counter(
            "gpudoc_turns_refused", "Turn requests refused with 429 because the server was at its limit.", registry=r,
        )
        self.unverified_numbers = Counter(
            "gpudoc_unverified_numbers", "Numbers in answers that appear in no tool result of the turn.",
            registry=r,
        )
        self.llm_calls = Counter(
            "gpudoc_llm_calls", "Requests to the language model, by outcome (ok, error).",
            ["outcome"], registry=r,
        )
        self.llm_tokens = Counter(
            "gpudoc_llm_tokens", "Tokens the language model reported, by kind (prompt, completion).",
            ["kind"], registry=r,
        )

    def render(self) -> bytes:
        if self.multiprocess_dir is None:
            return generate_latest(self.registry)
        workers = CollectorRegistry()
        MultiProcessCollector(workers, path=self.multiprocess_dir)
        return generate_latest(workers)


class LlmMetricsCallback(AsyncCallbackHandler):
    """Counts LLM requests, their failures and the token usage the server reports.

    Attached to the chat model itself, so every call the agent makes is counted whichever route
    started the turn. Token counts come from ``usage_metadata`` (vLLM sends it when streaming
    with ``stream_options.include_usage``); calls without usage add no tokens.
    """

    def __init__(self, metrics: ServerMetrics) -> None:
        self.metrics = metrics

    async def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        self.metrics.llm_calls.labels("ok").inc()
        for generations in response.generations:
            for generation in generations:
                usage = getattr(getattr(generation, "message", None), "usage_metadata", None)
                if usage:
                    self.metrics.llm_tokens.labels("prompt").inc(usage.get("input_tokens", 0))
                    self.metrics.llm_tokens.labels("completion").inc(usage.get("output_tokens", 0))

    async def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self.metrics.llm_calls.labels("error").inc()
