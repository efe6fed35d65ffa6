"""The alert evaluator fires after ``duration_seconds`` and resolves when the condition clears."""

from __future__ import annotations

from datetime import timedelta

from gpudoc.tools.sim.clock import DEFAULT_NOW
from gpudoc.tools.sim.source import SimSource


def frozen(*scenarios: str) -> SimSource:
    return SimSource.create(realtime=False, scenarios=list(scenarios))


async def test_rules_are_in_watchdog_form_with_limits_of_the_gpu_model():
    rules = {r.id: r for r in await frozen().alert_rules()}
    assert rules["gpu-temp-high"].metric == "gpu_temperature"
    assert rules["gpu-temp-high"].threshold == 85 and rules["gpu-temp-high"].duration_seconds == 60
    h100 = {r.id: r for r in await SimSource.create(realtime=False, gpu_model="h100").alert_rules()}
    assert h100["gpu-temp-high"].threshold == 87
    assert all(r.enabled and r.created_at < DEFAULT_NOW for r in rules.values())


async def test_fires_once_the_condition_held_for_its_duration():
    source = frozen("thermal-throttle@node-1/gpu-2")
    samples = (await source.gpu_history("node-1", 60))[2].samples
    streak_start, expected = None, None
    for sample in samples:  # the first moment the temperature has stayed above 85 for 60 s
        if sample.temperature_c <= 85:
            streak_start = None
            continue
        streak_start = streak_start or sample.timestamp
        if sample.timestamp - streak_start >= timedelta(seconds=60):
            expected = sample.timestamp
            break
    event = next(e for e in await source.alert_history() if e.rule_id == "gpu-temp-high")
    assert (event.node_id, event.gpu_index) == ("node-1", 2)
    assert expected is not None and event.fired_at == expected
    assert event.active and event.value > 85 and event.threshold == 85


async def test_resolves_when_the_condition_clears():
    source = frozen("app-xid@node-2/gpu-0")
    event = next(e for e in await source.alert_history() if e.rule_id == "gpu-xid")
    assert event.resolved_at is not None
    assert timedelta(minutes=5) <= event.resolved_at - event.fired_at <= timedelta(minutes=5, seconds=15)

    storm = frozen("ecc-correctable-storm@node-0/gpu-1")
    assert [e for e in await storm.alert_history() if e.rule_id == "gpu-xid" and e.active]
    storm.advance(10 * 60)  # the remaps stop once the bank is full; five quiet minutes later it resolves
    xid = [e for e in await storm.alert_history() if e.rule_id == "gpu-xid"]
    assert xid and all(not e.active for e in xid)
    assert [e for e in await storm.alert_history() if e.rule_id == "gpu-correctable-rows" and e.active]


async def test_history_is_newest_first_and_limited():
    source = frozen("xid79-fell-off-bus", "thermal-throttle", "host-down")
    events = await source.alert_history(50)
    assert [e.fired_at for e in events] == sorted((e.fired_at for e in events), reverse=True)
    assert len(await source.alert_history(2)) == 2
    assert await source.alert_history(0) == []


async def test_incremental_evaluation_equals_one_pass():
    stepped, direct = frozen("straggler", "ib-flap"), frozen("straggler", "ib-flap")
    await stepped.alert_history()
    for _ in range(4):
        stepped.advance(150)
        await stepped.alert_history()
    direct.advance(600)
    assert await stepped.alert_history(500) == await direct.alert_history(500)


async def test_critical_alert_makes_the_cluster_unhealthy_and_warnings_do_not():
    assert not (await frozen("hbm-uncorrectable").cluster_status()).healthy
    assert (await frozen("power-brake").cluster_status()).healthy
    assert (await frozen("healthy").cluster_status()).healthy


async def test_rules_in_gpu_watchdogs_vocabulary_fire_per_gpu_and_for_the_cluster():
    source = frozen("thermal-throttle@node-1/gpu-2")
    queue = (await source.slurm()).queue
    source.create_rule(id="q", name="Queue backlog", metric="slurm_queue_pending", condition="gte",
                       threshold=queue.pending, node_filter="node-.*")
    source.create_rule(id="m", name="Memory nearly full", metric="gpu_memory_percent", condition="gt",
                       threshold=1, node_filter="^node-1$")
    source.advance(30)
    events = await source.alert_history(1000)
    (backlog,) = [e for e in events if e.rule_id == "q"]
    assert (backlog.node_id, backlog.gpu_index, backlog.value) == ("cluster", None, queue.pending)
    memory = [e for e in events if e.rule_id == "m"]
    assert memory and {e.node_id for e in memory} == {"node-1"}
    assert all(0 < e.value <= 100 for e in memory)
    ids = [int(e.id) for e in events]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == len(ids)  # firing order, newest first


async def test_a_rule_created_or_edited_between_scrapes_never_fires_or_resolves_before_that():
    """The evaluator first sees the scrape after the rule's creation: an event stamped with the scrape
    the rule was created during would have fired before the rule existed."""
    source = frozen("thermal-throttle@node-1/gpu-2")
    source.advance(7)  # between two 15 s scrapes, as a rule made through the API usually is
    rule = source.create_rule(id="w", name="Warm GPU", metric="gpu_temperature", condition="gt", threshold=80,
                              node_filter="^node-1$")
    source.advance(30)
    (event,) = [e for e in await source.alert_history(1000) if e.rule_id == "w"]
    assert event.fired_at >= rule.created_at
    source.advance(4)
    edited = source.update_rule("w", threshold=200)
    source.advance(30)
    (event,) = [e for e in await source.alert_history(1000) if e.rule_id == "w"]
    assert event.resolved_at is not None and event.resolved_at >= edited.updated_at
