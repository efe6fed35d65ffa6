"""Build a ``ClusterSource`` from user options (CLI flags, server settings, tests).

Why here: every entry point (``gpudoc diagnose``, ``ask``, ``serve``, ``sim``) accepts the same
source options, and only this module knows which implementation each name means.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from gpudoc.tools.sources.base import ClusterSource


class SourceOptions(BaseModel):
    source: Literal["sim", "watchdog", "prometheus"] = "sim"
    # simulator
    scenarios: list[str] = Field(default_factory=list, description="NAME[@node-N[/gpu-M]]")
    seed: int = 42
    nodes: int = Field(8, ge=1, le=1024)
    gpu_model: Literal["a100", "h100"] = "a100"
    realtime: bool = Field(True, description="advance the simulated clock with wall time")
    # watchdog
    backend_base_url: str = "http://localhost:3001"
    backend_timeout_s: float = 10.0
    # prometheus
    prometheus_url: str | None = None
    alertmanager_url: str | None = None
    prometheus_bearer_token: str | None = Field(None, repr=False)
    prometheus_username: str | None = None
    prometheus_password: str | None = Field(None, repr=False)
    prometheus_tls_verify: bool = True
    prometheus_selector: str = ""
    prometheus_timeout_s: float = 15.0


def open_source(options: SourceOptions) -> ClusterSource:
    """Create the source the options name. Raises ``ValueError`` with a clear message on bad options."""
    if options.source == "sim":
        from gpudoc.tools.sim.source import SimSource

        return SimSource.create(
            seed=options.seed,
            nodes=options.nodes,
            gpu_model=options.gpu_model,
            scenarios=options.scenarios,
            realtime=options.realtime,
        )
    if options.source == "prometheus":
        return _open_prometheus(options)
    from gpudoc.tools.sources.watchdog import WatchdogSource

    return WatchdogSource(options.backend_base_url, timeout_s=options.backend_timeout_s)


def _open_prometheus(options: SourceOptions) -> ClusterSource:
    from gpudoc.tools.sources.prometheus import PrometheusClient, PrometheusSource

    if not options.prometheus_url:
        raise ValueError("--source prometheus needs the Prometheus URL: set PROMETHEUS_URL or pass --prometheus-url "
                         "(for example http://prometheus:9090).")
    client = PrometheusClient(
        options.prometheus_url, alertmanager_url=options.alertmanager_url,
        bearer_token=options.prometheus_bearer_token, username=options.prometheus_username,
        password=options.prometheus_password, verify_tls=options.prometheus_tls_verify,
        timeout_s=options.prometheus_timeout_s,
    )
    return PrometheusSource(client, selector=options.prometheus_selector)
