"""Build a ``ClusterSource`` from user options (CLI flags, server settings, tests).

Why here: every entry point (``gpudoc diagnose``, ``ask``, ``serve``, ``sim``) accepts the same
source options, and only this module knows which implementation each name means.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field

from gpudoc.tools.sources.base import ClusterSource

if TYPE_CHECKING:
    from gpudoc.tools.sources.slurm_client import SlurmClient


#: the source names; ``gpudoc.config.Settings`` and the CLI take their choices from here
SourceName = Literal["sim", "watchdog", "prometheus"]
GpuModelName = Literal["a100", "h100"]
SlurmMode = Literal["none", "rest", "cli"]
#: the simulator's size limits
SIM_NODES_MIN, SIM_NODES_MAX = 1, 1024


class SourceOptions(BaseModel):
    source: SourceName = "sim"
    # simulator
    scenarios: list[str] = Field(default_factory=list, description="NAME[@node-N[/gpu-M]]")
    seed: int = 42
    nodes: int = Field(8, ge=SIM_NODES_MIN, le=SIM_NODES_MAX)
    gpu_model: GpuModelName = "a100"
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
    # scheduler facts for telemetry sources (None: slurmrestd when its URL is set, else none)
    slurm: SlurmMode | None = None
    slurmrestd_url: str | None = None
    slurm_user: str | None = None
    slurm_jwt: str | None = Field(None, repr=False)
    slurm_jwt_file: Path | None = None
    slurmrestd_version: str | None = None
    slurm_timeout_s: float = 10.0

    def slurm_mode(self) -> Literal["none", "rest", "cli"]:
        if self.slurm is not None:
            return self.slurm
        return "rest" if self.slurmrestd_url and self.source != "sim" else "none"


def open_source(options: SourceOptions) -> ClusterSource:
    """Create the source the options name. Raises ``ValueError`` with a clear message on bad options."""
    telemetry = _open_telemetry(options)
    mode = options.slurm_mode()
    if mode == "none":
        return telemetry
    if options.source == "sim":
        raise ValueError(
            f"--slurm {mode} reads a real Slurm for --source watchdog (or another telemetry source); "
            "the simulator has its own Slurm. Drop --slurm or pick another --source."
        )
    from gpudoc.tools.sources.with_slurm import WithSlurmSource

    return WithSlurmSource(telemetry, _open_slurm(options, mode))


def _open_slurm(options: SourceOptions, mode: Literal["rest", "cli"]) -> "SlurmClient":
    from gpudoc.tools.sources.base import SourceError

    if mode == "cli":
        from gpudoc.tools.sources.slurm_cli import SlurmCliClient

        return SlurmCliClient(timeout_s=options.slurm_timeout_s)
    if not options.slurmrestd_url:
        raise ValueError("--slurm rest needs the slurmrestd URL: set SLURMRESTD_URL (e.g. http://slurm-head:6820) "
                         "or --slurmrestd-url")
    from gpudoc.tools.sources.slurm_rest import SlurmRestClient

    try:
        return SlurmRestClient(options.slurmrestd_url, user=options.slurm_user, token=options.slurm_jwt,
                               token_file=options.slurm_jwt_file, version=options.slurmrestd_version,
                               timeout_s=options.slurm_timeout_s)
    except SourceError as exc:
        raise ValueError(str(exc)) from None


def _open_telemetry(options: SourceOptions) -> ClusterSource:
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
    from gpudoc.tools.sources.base import SourceError
    from gpudoc.tools.sources.prometheus import PrometheusClient, PrometheusSource

    if not options.prometheus_url:
        raise ValueError("--source prometheus needs the Prometheus URL: set PROMETHEUS_URL or pass --prometheus-url "
                         "(for example http://prometheus:9090).")
    try:
        client = PrometheusClient(
            options.prometheus_url, alertmanager_url=options.alertmanager_url,
            bearer_token=options.prometheus_bearer_token, username=options.prometheus_username,
            password=options.prometheus_password, verify_tls=options.prometheus_tls_verify,
            timeout_s=options.prometheus_timeout_s,
        )
    except SourceError as exc:
        raise ValueError(str(exc)) from None
    return PrometheusSource(client, selector=options.prometheus_selector)
