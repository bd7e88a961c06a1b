"""The running site's OpenADR VEN (``vpp.openadr`` enabled): the runtime keeps going while
the VTN is down (alarm, retry), registers once it is up, follows a LOAD_DISPATCH event under
an award placed over HTTP (the simulated battery moves), and reports telemetry to the VTN."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.testkit.wait import wait_until
from tests.openadr.conftest import LoopbackVtn, wait_for
from vpp.api import views
from vpp.api.auth import create_key
from vpp.commands.demo import simulated_runtime
from vpp.config import OpenAdrConfig, read_config, updated

ROOT = Path(__file__).resolve().parents[2]
SLOT = timedelta(minutes=30)


def iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def next_slot(t: datetime) -> datetime:
    return datetime.fromtimestamp((t.timestamp() // 1800 + 1) * 1800, UTC)


@pytest.mark.timeout(120)
async def test_runtime_ven_follows_vtn_event_and_reports(tmp_path):
    vtn = LoopbackVtn()
    # time-of-use prices (the example's default is the JEPX price): with FIP export at spot the
    # plan may already discharge at full power in the awarded slot at some times of day, and the
    # dispatch check then finds no margin left (reported; this test is about the VEN's flow)
    cfg = updated(read_config(ROOT / "deploy/examples/community-centre.yaml"), prices={"source": "tou"},
                  bill={"sell_scheme": "fixed"}, vpp={"openadr": OpenAdrConfig(
        enabled=True, vtn_url=vtn.url, ven_name="ven-site", poll_interval_s=1, report_interval_s=1)})
    # OpenADR events carry wall-clock times that the VTN library judges against its own clock:
    # keep the simulated time ahead of the wall clock, with the next slot ~8 wall s away at 60×
    s1 = next_slot(datetime.now(UTC) + timedelta(minutes=10))
    rt = simulated_runtime(cfg, speed=60.0, sim_start=s1 - timedelta(minutes=8), data_dir=tmp_path)
    agg = {"X-API-Key": create_key(rt.config.api.keys_path, "aggregator", "agg")[0]}
    op = {"X-API-Key": create_key(rt.config.api.keys_path, "operator", "op")[0]}

    await rt.start()
    vtn_up = False
    try:
        alarms = rt.controller.alarms
        # the aggregator's award for the next slot, over HTTP
        async with httpx.AsyncClient(base_url=rt.url + "api/v1", timeout=30, headers=agg) as c:
            flex = (await c.get("/flexibility", params={"start": iso(s1), "end": iso(s1 + SLOT)})).json()["slots"]
            # up (discharge more) where the plan leaves stored energy, else down (charge more):
            # which one the site has depends on the time of day
            direction = "up" if flex[0]["up_kw"] >= flex[0]["down_kw"] else "down"
            kw = round(min(flex[0][f"{direction}_kw"], 15.0), 1)
            assert kw >= 5.0, flex
            sign = 1 if direction == "up" else -1  # battery > 0 = discharge
            slot = [{"start": iso(s1), "capacity_kw": kw}]
            offer = (await c.post("/offers", headers={**op, "Idempotency-Key": "o1"},  # operators offer
                                  json={"direction": direction, "override": "award-side rules under test", "slots": slot})).json()
            award = (await c.post("/awards", headers={"Idempotency-Key": "a1"},
                                  json={"offer_id": offer["id"], "slots": slot})).json()
            assert award["status"] == "accepted", award
        # the VTN is not there yet: the runtime runs on, alarmed, and keeps trying
        await wait_for(lambda: alarms.get("openadr") is not None, timeout=10)
        assert "unavailable" in alarms.get("openadr").reason and rt.openadr.ven is None
        await vtn.server.run()
        vtn_up = True
        await wait_for(lambda: rt.openadr.ven is not None and alarms.get("openadr") is None, timeout=15)

        # site load −kw (up) in the awarded slot = kw more battery discharge than planned
        ev = vtn.add_load_dispatch(s1, SLOT, -sign * kw)
        await wait_for(lambda: ev in vtn.opts, timeout=15)
        assert vtn.opts[ev] == "optIn", rt.openadr.results
        (did,) = rt.openadr.results[ev]["dispatches"]
        assert rt.now() < s1 + timedelta(minutes=20), "too slow for the awarded slot"
        # the window, then three dispatch cycles (on the runtime's simulated clock)
        until = s1 + timedelta(minutes=3)
        await wait_until(lambda: rt.now() >= until, (until - rt.now()).total_seconds() + 60, clock=rt, interval_s=0.2)
        dec = rt.controller.decisions["bat1"]
        assert dec.source == "dispatch" and did in " ".join(dec.reasons), dec
        plan_w = rt.app.state.book.plan_w(rt.now()) or 0.0
        assert dec.setpoint_w == pytest.approx(plan_w + sign * kw * 1000, abs=500), (dec, plan_w)
        await wait_for(lambda: abs(rt.site_telemetry()[0] - dec.setpoint_w) < 0.1 * kw * 1000, timeout=5)
        bat = views.battery(rt.services)
        assert bat["soc_pct"] > bat["floor_pct"], bat

        await wait_for(lambda: vtn.reports.get("RealPower") and vtn.reports.get("soc"), timeout=15)
        power, soc = rt.site_telemetry()
        assert abs(vtn.reports["soc"][-1][1] - 100 * soc) < 5.0, (vtn.reports["soc"][-1], soc)
        assert any(abs(v - power) < 0.1 * kw * 1000 for _, v in vtn.reports["RealPower"][-3:]), vtn.reports["RealPower"]
    finally:
        await rt.stop()
        if vtn_up:
            await vtn.server.stop()
