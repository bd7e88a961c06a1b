"""Faults on the real bus (nats-server with JetStream on loopback): kill -9 of the server,
a partitioned town, duplicate / out-of-order / malformed commands, a slow town."""
from __future__ import annotations

import asyncio
import json

from tests.bus.harness import outbox_ids, sink_ids, start_agent, start_central, step
from tests.testkit.tcp_proxy import TcpProxy
from tests.testkit.wait import wait_until
from vpp.bus.client import Bus
from vpp.bus.envelope import Envelope
from vpp.central.service import CentralService
from vpp.edge.agent import EdgeAgent
from vpp.edge.home_physics import HomesTown

HOMES = 20


async def test_kill9_of_nats_loses_no_telemetry_and_applies_no_command_twice(nats_server, clock, tmp_path):
    towns = [HomesTown(f"t{i}", HOMES, clock, seed=i) for i in range(2)]
    agents = [await start_agent(t, nats_server.url, tmp_path) for t in towns]
    central = await start_central(nats_server.url, tmp_path, clock)
    try:
        await step(towns, clock, 5)
        await wait_until(lambda: len(central.state.towns()) == 2, 20, what="both towns reporting")
        before = central.plan_round()
        await wait_until(lambda: all(central.state.command(e.id)["published"] for e in before.values()), 20)
        nats_server.kill()
        await step(towns, clock, 10)  # telemetry piles up in the outboxes
        during = [central.issue(t.town, "policy", {"floor_pct": 40.0}) for t in towns]
        assert all(a.outbox.pending() > 0 for a in agents)
        nats_server.start()
        await step(towns, clock, 5)
        ids = [e.id for e in before.values()] + [e.id for e in during]
        acks = await central.wait_acks(ids, 60)
        assert all(v is not None for v in acks.values()), acks
        for a in agents:
            a.flush_telemetry()
            produced = outbox_ids(a.state_dir, "telemetry")
            await wait_until(lambda: sink_ids(central, a.town) >= produced, 60, what=f"{a.town} telemetry stored")
            assert sink_ids(central, a.town) == produced  # nothing lost, nothing invented
            # every reading of every step, once: 20 steps × homes × (battery + meter)
            assert central.sink.store(a.town).count() == 20 * HOMES * 2
            assert len(a.applied) == len(set(a.applied))  # never twice
            assert {before[a.town].id} | {e.id for e in during if e.town == a.town} <= set(a.applied)
        assert central.double_acks == 0
        assert [central.state.command(e.id)["ack_status"] for e in during] == ["applied", "applied"]
        assert all(t.floor_pct == 40.0 for t in towns)
    finally:
        for a in agents:
            await a.stop()
        await central.stop()


async def test_town_cut_off_30_min_keeps_reserve_and_local_plan_and_reconciles(nats_server, clock, tmp_path):
    proxy = await TcpProxy("127.0.0.1", nats_server.port).start()
    ta, tb = HomesTown("ta", HOMES, clock, seed=1), HomesTown("tb", HOMES, clock, seed=2)
    a = await start_agent(ta, proxy.url, tmp_path, link_alarm_s=60.0)
    b = await start_agent(tb, nats_server.url, tmp_path)
    central = await start_central(nats_server.url, tmp_path, clock)
    try:
        await step([ta, tb], clock, 3)
        await wait_until(lambda: len(central.state.towns()) == 2, 20, what="both towns reporting")
        first = central.issue("ta", "plans", {"start": clock().isoformat(), "slot_s": 900, "battery_w": [3000.0] * 4},
                              lease_s=300)
        assert (await central.wait_acks([first.id], 20))[first.id] is not None
        rec0 = a.reconciliations  # the first connection counts as one
        proxy.cut()
        await wait_until(lambda: not a.bus.connected, 20, what="agent sees the cut")
        missed = central.issue("ta", "plans", {"start": clock().isoformat(), "slot_s": 900,
                                               "battery_w": [2000.0] * 8}, lease_s=600)
        other = central.issue("tb", "plans", {"start": clock().isoformat(), "slot_s": 900, "battery_w": [1000.0] * 4})
        assert (await central.wait_acks([other.id], 20))[other.id] is not None  # the others go on
        local_before = ta.sources.get("local", 0)
        await step([ta, tb], clock, 30)  # 30 simulated minutes cut off
        assert ("central_link", True) in ta.alarm_log
        assert ta.sources["local"] - local_before >= 30 - 5  # the 5-min lease ran out: local plan
        assert ta.min_soc_margin >= 0 and ta.floor_pct == 30.0  # reserve kept
        proxy.restore()
        await wait_until(lambda: a.reconciliations > rec0, 30, what="reconciliation")
        await wait_until(lambda: central.state.command(missed.id)["ack_status"] == "expired", 30)
        assert missed.id not in a.applied  # its lease ended while cut off: never applied
        assert ("central_link", False) in ta.alarm_log and "central_link" not in ta.alarms
        # the centre re-issued the current plan with a fresh lease; the town follows it again
        await wait_until(lambda: len(a.applied) >= 2, 30, what="re-issued plan applied")
        assert central.state.command(a.applied[-1])["seq"] > missed.seq
        assert a.book.held["plans"].id == a.applied[-1]
        a.flush_telemetry()
        produced = outbox_ids(a.state_dir, "telemetry")
        await wait_until(lambda: sink_ids(central, "ta") >= produced, 30, what="buffered telemetry replayed")
        assert central.double_acks == 0
    finally:
        await a.stop()
        await b.stop()
        await central.stop()
        await proxy.stop()


async def test_duplicate_out_of_order_and_malformed_commands(nats_server, clock, tmp_path):
    town = HomesTown("t1", HOMES, clock)
    town.step(60)
    agent = await start_agent(town, nats_server.url, tmp_path)
    bus = await Bus(nats_server.url, "test").connect(10)
    try:
        def plan(seq: int) -> Envelope:
            return Envelope(f"cmd-{seq}", "t1", "plans", seq, clock(),
                            {"start": clock().isoformat(), "slot_s": 900, "battery_w": [500.0] * 4},
                            clock().replace(hour=23))
        assert await bus.publish(plan(5)) is False
        assert await bus.publish(plan(5)) is True  # same id: the server drops the copy
        # the same command past the server's de-duplication (another Nats-Msg-Id): the inbox drops it
        await bus.js.publish("vpp.t1.plans", plan(5).encode(), headers={"Nats-Msg-Id": "other"})
        await bus.publish(plan(3))  # older than what was applied
        await bus.js.publish("vpp.t1.plans", b'{"id": "junk"', headers={"Nats-Msg-Id": "junk"})
        await bus.publish(plan(6))
        await wait_until(lambda: "cmd-6" in agent.applied, 20, what="the newest plan applied")
        assert agent.applied == ["cmd-5", "cmd-6"]
        assert agent.inbox.duplicates >= 1 and agent.bus.malformed == 1
        outcomes = {i: o for i, _, o in agent.inbox.outcomes()}
        assert outcomes == {"cmd-5": "applied", "cmd-3": "superseded", "cmd-6": "applied"}
        acks = [json.loads(p)["body"]["ref"] for (p,) in agent.db.execute(
            "SELECT payload FROM outbox WHERE kind='acks'")]
        assert sorted(acks) == ["cmd-3", "cmd-5", "cmd-6"]  # one ack each
    finally:
        await bus.close()
        await agent.stop()


class SlowAgent(EdgeAgent):
    """A town whose command handling hangs until the test releases it (an overloaded box)."""

    release = asyncio.Event()

    async def handle(self, env):
        await self.release.wait()
        return await super().handle(env)


async def test_a_slow_town_does_not_hold_up_the_others(nats_server, clock, tmp_path):
    SlowAgent.release = asyncio.Event()
    towns = [HomesTown(f"t{i}", HOMES, clock, seed=i) for i in range(3)]
    agents = [await start_agent(t, nats_server.url, tmp_path, cls=SlowAgent if i == 0 else EdgeAgent)
              for i, t in enumerate(towns)]
    central = await start_central(nats_server.url, tmp_path, clock)
    try:
        await step(towns, clock, 2)
        await wait_until(lambda: len(central.state.towns()) == 3, 20, what="all towns reporting")
        plans = central.plan_round()
        fast = [plans["t1"].id, plans["t2"].id]
        got = await central.wait_acks(fast, 20)
        assert all(v is not None for v in got.values())
        assert central.state.command(plans["t0"].id)["ack_status"] is None  # still busy
        SlowAgent.release.set()
        slow = await central.wait_acks([plans["t0"].id], 20)
        assert slow[plans["t0"].id] > max(got.values())
    finally:
        for a in agents:
            await a.stop()
        await central.stop()


async def test_centre_restart_sends_what_it_committed_and_keeps_its_state(nats_server, clock, tmp_path):
    town = HomesTown("t1", HOMES, clock)
    town.step(60)
    agent = await start_agent(town, nats_server.url, tmp_path)
    # a centre that committed a policy and an award, then died before publishing anything
    dead = CentralService(nats_server.url, tmp_path / "central", clock=clock)
    policy = dead.issue("t1", "policy", {"floor_pct": 45.0})
    assert dead.state.add_award("award-1", "t1", {"direction": "up", "kw": 250}, clock())
    dead.sink.close()
    dead.state.close()
    central = await start_central(nats_server.url, tmp_path, clock)
    try:
        assert (await central.wait_acks([policy.id], 30))[policy.id] is not None
        assert central.state.command(policy.id)["ack_status"] == "applied" and town.floor_pct == 45.0
        assert [a["id"] for a in central.state.awards()] == ["award-1"]
        nxt = central.issue("t1", "policy", {"floor_pct": 50.0})
        assert nxt.seq == policy.seq + 1  # the sequence continues across the restart
        assert (await central.wait_acks([nxt.id], 30))[nxt.id] is not None
        assert agent.applied == [policy.id, nxt.id] and central.double_acks == 0
    finally:
        await agent.stop()
        await central.stop()


async def test_telemetry_sinks_can_share_the_towns(nats_server, clock, tmp_path):
    from vpp.central.service import telemetry_sink

    towns = [HomesTown(f"t{i}", 5, clock, seed=i) for i in range(2)]
    agents = [await start_agent(t, nats_server.url, tmp_path) for t in towns]
    bus = await Bus(nats_server.url, "sinks", ack_wait_s=2.0).connect(10)
    stop = asyncio.Event()
    sinks = [telemetry_sink(bus, tmp_path / f"sink{i}") for i in range(2)]
    tasks = [asyncio.create_task(s.run(stop, [f"t{i}"])) for i, s in enumerate(sinks)]
    try:
        await step(towns, clock, 4)
        for i, a in enumerate(agents):
            a.flush_telemetry()
            produced = outbox_ids(a.state_dir, "telemetry")
            await wait_until(lambda: {x for x, _, _ in sinks[i].inbox.outcomes(kind="telemetry")} == produced, 20)
            assert set(sinks[i].stores) == {f"t{i}"}  # each sink only its own town
    finally:
        stop.set()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for a in agents:
            await a.stop()
        for s in sinks:
            s.close()
        await bus.close()


async def test_a_slow_towns_plan_does_not_hold_up_the_others_plans(nats_server, clock, tmp_path):
    import threading

    from vpp.central.planning import peak_shave

    late = threading.Event()

    def planner(requests):
        """Yields each town's plan when ready; t0's planning takes until the test says so."""
        for town in sorted(requests):
            if town != "t0":
                yield town, peak_shave(requests[town])
        late.wait(30)
        yield "t0", peak_shave(requests["t0"])

    towns = [HomesTown(f"t{i}", HOMES, clock, seed=i) for i in range(3)]
    agents = [await start_agent(t, nats_server.url, tmp_path) for t in towns]
    central = await start_central(nats_server.url, tmp_path, clock, plan_towns=planner)

    def acked(town: str) -> bool:
        last = central.state.latest(town, "plans")
        return last is not None and central.state.command(last["id"])["ack_status"] == "applied"

    try:
        await step(towns, clock, 2)
        await wait_until(lambda: len(central.state.towns()) == 3, 20, what="all towns reporting")
        round_ = asyncio.create_task(central.plan_round_async())
        await wait_until(lambda: acked("t1") and acked("t2"), 20, what="the others' plans applied")
        assert central.state.latest("t0", "plans") is None  # still being planned
        late.set()
        issued = await asyncio.wait_for(round_, 30)
        assert set(issued) == {"t0", "t1", "t2"}
        await wait_until(lambda: acked("t0"), 20, what="the late town's plan applied")
    finally:
        late.set()
        for a in agents:
            await a.stop()
        await central.stop()
