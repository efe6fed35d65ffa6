"""Build a ``ClusterSource`` from user options (CLI flags, server settings, tests).

Why here: every entry point (``gpudoc diagnose``, ``ask``, ``serve``, ``sim``) accepts the same
source options, and only this module knows which implementation each name means.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from gpudoc.tools.sources.base import ClusterSource


#: the source names; ``gpudoc.config.Settings`` and the CLI take their choices from here
SourceName = Literal["sim", "watchdog"]
GpuModelName = Literal["a100", "h100"]
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
    from gpudoc.tools.sources.watchdog import WatchdogSource

    return WatchdogSource(options.backend_base_url, timeout_s=options.backend_timeout_s)
