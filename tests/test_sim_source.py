"""The simulated cluster's baseline, determinism, history windows, clock and errors."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest

from gpudoc.tools.models import ClockEventReason, GpuSample
from gpudoc.tools.sim.clock import DEFAULT_NOW
from gpudoc.tools.sim.source import SimSource
from gpudoc.tools.sources.base import UnknownNodeError


def frozen(**options) -> SimSource:
    return SimSource.create(realtime=False, **options)


async def facts(source: SimSource) -> str:
    """Everything the source says, serialised: equal strings mean byte-identical facts."""
    parts = [
        (await source.cluster_status()).model_dump_json(),
        *[n.model_dump_json() for n in await source.current_metrics()],
        *[s.model_dump_json() for s in await source.gpu_history(None, 30)],
        (await source.slurm()).model_dump_json(),
        *[e.model_dump_json() for e in await source.alert_history(100)],
    ]
    return "\n".join(parts)


async def test_same_seed_gives_identical_facts_and_another_seed_differs():
    scenarios = ["thermal-throttle", "xid79-fell-off-bus"]
    first = await facts(frozen(seed=7, scenarios=scenarios))
    again = await facts(frozen(seed=7, scenarios=scenarios))
    other = await facts(frozen(seed=8, scenarios=scenarios))
    assert first == again
    assert first != other


async def test_baseline_is_busy_but_within_normal_ranges():
    for model, seed in (("a100", 42), ("h100", 5)):
        source = frozen(seed=seed, gpu_model=model)
        spec = source.topo.spec
        gpus = [g for n in await source.current_metrics() for g in n.gpus]
        assert len(gpus) == 64
        busy = [g for g in gpus if g.job_id is not None]
        idle = [g for g in gpus if g.job_id is None]
        assert len(busy) >= 40 and idle, "most GPUs run jobs, some are idle"
        for g in gpus:
            assert g.temperature_c < spec.max_operating_temp_c - 8
            assert g.memory_temperature_c is not None and g.memory_temperature_c < spec.memory_max_temp_c - 10
            assert g.power_w < 0.9 * spec.power_limit_w
            assert g.last_xid == 0 and g.xid_events == []
            assert g.uncorrectable_remapped_rows == 0 and g.correctable_remapped_rows == 0
            assert not g.remap_failure and not g.remap_pending and not g.stale
            assert g.nvlink_links_down == 0 and g.pcie_link_width == 16
        for g in idle:  # power saving on idle GPUs: a lower PCIe generation is normal
            assert g.utilization_pct == 0 and g.power_w < spec.idle_power_w * 1.2
            assert g.pcie_link_gen == 1 and g.clock_event_reasons == ClockEventReason.GPU_IDLE
        for g in busy:
            assert g.pcie_link_gen == spec.pcie_gen_max
        assert max(g.temperature_c for g in busy) > 50
        nodes = await source.current_metrics()
        assert all(p.state_id == 4 for n in nodes for p in n.network or [])
        assert await source.alert_history() == []
        assert (await source.cluster_status()).healthy


async def test_baseline_history_never_crosses_a_warning_line():
    source = frozen(seed=11)
    spec = source.topo.spec
    for series in await source.gpu_history(None, 60):
        assert len(series.samples) == 240
        assert max(s.temperature_c for s in series.samples) < spec.max_operating_temp_c - 8
        assert max(s.power_w for s in series.samples) < 0.9 * spec.power_limit_w


async def test_slurm_has_users_partitions_queue_and_gpu_mapping():
    source = frozen()
    slurm = await source.slurm()
    assert {p.name for p in slurm.partitions or []} == {"gpu", "long", "debug"}
    jobs = slurm.jobs or []
    assert len({j.user for j in jobs}) >= 4
    pending_reasons = {j.pending_reason for j in jobs if j.state == "PENDING"}
    assert {"Resources", "Priority", "QOSMaxGRESPerUser", "Dependency"} <= pending_reasons
    assert any(j.state in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT") for j in jobs)
    metrics = {n.node_id: n for n in await source.current_metrics()}
    for node in slurm.nodes:
        held = sorted(g for j in jobs if j.state == "RUNNING" for g in j.gpu_indices.get(node.name, []))
        assert node.gpus_alloc == len(held)
        assert node.gres_used is not None and node.gres_used.startswith(f"gpu:a100:{len(held)}(IDX:")
        assert node.base_state == ("IDLE" if not held else "ALLOCATED" if len(held) == 8 else "MIXED")
        on_gpus = sorted(g.index for g in metrics[node.name].gpus if g.job_id is not None)
        assert on_gpus == held
    assert slurm.queue.running == sum(j.state == "RUNNING" for j in jobs)


async def test_history_windows_and_counters():
    source = frozen(scenarios=["pcie-degraded@node-2/gpu-1"])
    series = {s.gpu_index: s for s in await source.gpu_history("node-2", 10)}
    assert set(series) == set(range(8))
    samples = series[1].samples
    assert len(samples) == 40
    assert samples[-1].timestamp == DEFAULT_NOW
    assert all(b.timestamp - a.timestamp == timedelta(seconds=15) for a, b in zip(samples, samples[1:]))
    replays = [s.pcie_replay_count for s in samples]
    assert replays == sorted(replays) and replays[-1] > replays[0]  # the counter climbs
    assert len((await source.gpu_history("node-2", 60))[0].samples) == 240
    with pytest.raises(ValueError):
        await source.gpu_history("node-2", 0)


async def test_stale_and_absent_series():
    source = frozen(scenarios=["xid79-fell-off-bus@node-1/gpu-2", "host-down@node-4"])
    history = {(s.node_id, s.gpu_index): s for s in await source.gpu_history(None, 60)}
    stale_gpu = (await source.node_metrics("node-1")).gpus[2]
    assert stale_gpu.stale and stale_gpu.last_seen is not None
    assert history[("node-1", 2)].samples[-1].timestamp == stale_gpu.last_seen < DEFAULT_NOW - timedelta(minutes=20)
    assert history[("node-1", 3)].samples[-1].timestamp == DEFAULT_NOW
    down = await source.node_metrics("node-4")
    assert not down.reachable and down.gpus == []
    assert all(history[("node-4", g)].samples[-1].timestamp < DEFAULT_NOW - timedelta(minutes=10) for g in range(8))
    assert not (await source.cluster_status()).healthy


async def test_unknown_node_lists_valid_ids_and_resolve_node_works():
    source = frozen(nodes=4)
    with pytest.raises(UnknownNodeError) as err:
        await source.node_metrics("node-9")
    assert "node-0, node-1, node-2, node-3" in str(err.value)
    with pytest.raises(UnknownNodeError):
        await source.gpu_history("gpu-node-9")
    assert await source.resolve_node("Node 3") == "node-3"
    assert await source.node_ids() == ["node-0", "node-1", "node-2", "node-3"]


def test_bad_options_are_clear_errors():
    with pytest.raises(ValueError, match="outside the simulated cluster"):
        SimSource.create(nodes=8, scenarios=["host-down@node-12"], realtime=False)
    with pytest.raises(ValueError, match="at least one node"):
        SimSource.create(nodes=0, realtime=False)


async def test_frozen_clock_stays_and_advance_moves_windows():
    source = frozen()
    assert source.clock.now() == DEFAULT_NOW
    await asyncio.sleep(0)
    assert (await source.cluster_status()).last_updated == DEFAULT_NOW
    source.advance(60)
    last = (await source.gpu_history("node-0", 5))[0].samples[-1]
    assert last.timestamp == DEFAULT_NOW + timedelta(seconds=60)


async def test_realtime_clock_anchors_at_creation_and_follows_wall_time(monkeypatch):
    import gpudoc.tools.sim.clock as clock_module

    wall = [1000.0]
    monkeypatch.setattr(clock_module.time, "monotonic", lambda: wall[0])
    anchor = datetime(2026, 3, 4, 5, 6, 7, tzinfo=timezone.utc)
    source = SimSource.create(realtime=True, now=anchor)
    assert source.clock.now() == anchor
    wall[0] += 90
    assert source.clock.now() == anchor + timedelta(seconds=90)
    samples = (await source.gpu_history("node-0", 1))[0].samples
    assert samples[-1].timestamp <= anchor + timedelta(seconds=90) < samples[-1].timestamp + timedelta(seconds=15)
    before = (await source.node_metrics("node-0")).timestamp
    wall[0] += 30
    assert (await source.node_metrics("node-0")).timestamp == before + timedelta(seconds=30)


def test_trusted_samples_equal_validated_ones():
    """Samples built without validation hold exactly the types validation would give them."""
    source = frozen(scenarios=["ecc-correctable-storm@node-0/gpu-0"])
    for series in asyncio.run(source.gpu_history("node-0", 15)):
        for sample in series.samples[::7]:
            validated = GpuSample.model_validate(sample.model_dump())
            assert validated == sample
            for name in GpuSample.model_fields:
                assert type(getattr(sample, name)) is type(getattr(validated, name)), name
            assert sample.timestamp.tzinfo is not None and sample.model_fields_set == set(GpuSample.model_fields)
