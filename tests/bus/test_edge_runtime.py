"""The edge agent over a real site Runtime (the controller of ``vpp run`` on a simulated site):
the centre's policy goes through the reserve rules, its plan drives the controller's
dispatch layer, the site's telemetry reaches the centre's store."""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from tests.testkit.tcp_proxy import TcpProxy
from tests.testkit.wait import wait_until
from vpp.central.service import CentralService
from vpp.commands.demo import simulated_runtime
from vpp.config import read_config
from vpp.edge.agent import EdgeAgent
from vpp.edge.port import RuntimePort
from vpp.errors import ServiceError

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy/examples/community-centre.yaml"


async def test_runtime_town_applies_checked_commands_and_streams_telemetry(nats_server, tmp_path):
    rt = simulated_runtime(read_config(EXAMPLE), speed=60.0, data_dir=tmp_path / "site", serve_http=False,
                           weather="clear-sky")
    async with rt:
        agent = await EdgeAgent(RuntimePort(rt, "centre1"), nats_server.url, tmp_path / "edge",
                                telemetry_every_s=0.1, status_every_s=0.3, ack_wait_s=2.0).start()
        central = await CentralService(nats_server.url, tmp_path / "central", clock=rt.now, ack_wait_s=2.0).start()
        try:
            await wait_until(lambda: central.state.towns().get("centre1", {}).get("status", {}).get("soc"), 30,
                             what="the town's status with its batteries")
            with pytest.raises(ServiceError, match="below_local_floor"):  # the centre refuses it first
                central.issue("centre1", "policy", {"floor_pct": 10.0})
            # and the town refuses it on its own (a centre that skipped the check)
            low = central.issue("centre1", "policy", {"floor_pct": 10.0}, check=False)  # config floor is 30 %
            high = central.issue("centre1", "policy", {"floor_pct": 45.0, "reason": "storm season"})
            acks = await central.wait_acks([low.id, high.id], 30)
            assert all(v is not None for v in acks.values())
            assert central.state.command(low.id)["ack_status"] == "rejected"
            assert central.state.command(low.id)["ack_reason"] == "below_local_floor"
            assert central.state.command(high.id)["ack_status"] == "applied"
            assert rt.reserve.floor_pct == 45.0
            huge = {"start": rt.now().isoformat(), "end": (rt.now() + timedelta(hours=1)).isoformat(),
                    "setpoint_w": 10_000_000.0}
            with pytest.raises(ServiceError, match="out_of_range"):
                central.issue("centre1", "dispatches", huge)
            too_big = central.issue("centre1", "dispatches", huge, check=False)
            plan = central.issue("centre1", "plans", {"start": rt.now().isoformat(), "slot_s": 900,
                                                      "battery_w": [1500.0] * 4}, lease_s=3600)
            acks = await central.wait_acks([too_big.id, plan.id], 30)
            assert central.state.command(too_big.id)["ack_reason"] == "out_of_range"  # refused before any write
            assert central.state.command(plan.id)["ack_status"] in ("applied", "partial")
            bats = [b.id for b in rt.config.devices_of("battery")]
            await wait_until(lambda: all(rt.controller.leases.get(b) is not None
                                         and rt.controller.leases[b].source == "dispatch" for b in bats),
                             30, what="the controller following the centre's plan")
            await wait_until(lambda: central.sink.store("centre1").count() > 0, 30, what="site telemetry stored")
            assert central.double_acks == 0
        finally:
            await agent.stop()
            await central.stop()


async def test_runtime_town_cut_off_30_min_keeps_its_plan_and_reserve_and_reconciles(nats_server, tmp_path):
    proxy = await TcpProxy("127.0.0.1", nats_server.port).start()
    rt = simulated_runtime(read_config(EXAMPLE), speed=200.0, data_dir=tmp_path / "site", serve_http=False,
                           weather="clear-sky")
    async with rt:
        agent = await EdgeAgent(RuntimePort(rt, "centre1"), proxy.url, tmp_path / "edge", telemetry_every_s=0.1,
                                status_every_s=0.3, ack_wait_s=2.0, link_alarm_s=300.0).start()
        central = await CentralService(nats_server.url, tmp_path / "central", clock=rt.now, ack_wait_s=2.0).start()
        alarms, bats = rt.controller.alarms, rt.config.devices_of("battery")
        try:
            await wait_until(lambda: central.state.towns().get("centre1", {}).get("status", {}).get("soc"), 30,
                             what="the town's status")
            plan = central.issue("centre1", "plans", {"start": rt.now().isoformat(), "slot_s": 900,
                                                      "battery_w": [1500.0] * 4}, lease_s=600)
            assert (await central.wait_acks([plan.id], 30))[plan.id] is not None
            proxy.cut()
            cut_at = rt.now()
            missed = central.issue("centre1", "policy", {"floor_pct": 40.0}, lease_s=900)
            await wait_until(lambda: (rt.now() - cut_at).total_seconds() >= 1800, 1900, clock=rt,
                             wall_timeout_s=120, what="30 simulated minutes cut off")
            assert alarms.is_active("central_link")
            assert rt.controller.plan is not None  # the town's own plan
            assert "plans" not in agent.book.held  # the centre's plan lease (10 min) ran out
            assert all(rt.controller.leases[b.id].source != "dispatch" for b in bats)
            for b in bats:  # the reserve held throughout: never below the floor
                snap, _ = rt.controller.snapshot(b.id, rt.now())
                assert snap.values["soc"] >= float(rt.controller.floor_at(b, [rt.now()])[0]) - 0.01
            assert rt.reserve.floor_pct == 30.0
            proxy.restore()
            await wait_until(lambda: not alarms.is_active("central_link"), 60, wall_timeout_s=60,
                             what="link alarm cleared")
            await wait_until(lambda: central.state.command(missed.id)["ack_status"] == "expired", 30)
            assert rt.reserve.floor_pct == 30.0  # its lease ended during the cut: never applied
            await wait_until(lambda: "plans" in agent.book.held, 30, what="re-issued plan held again")
            assert agent.book.held["plans"].seq > plan.seq and central.double_acks == 0
        finally:
            await agent.stop()
            await central.stop()
            await proxy.stop()
