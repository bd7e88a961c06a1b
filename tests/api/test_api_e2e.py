"""End to end over the API against a simulated site: the aggregator reads plan-based
flexibility, the site offers, the aggregator awards and dispatches, the control loop
(simulated devices on loopback Modbus, the real fleet, store, optimiser) delivers, and
performance per slot is computed against the plan baseline frozen at dispatch time. The
reserve floor is never crossed; aggregators see no household data and cannot move the
reserve; storm mode empties the flexibility and refuses dispatches."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from simulators.site import with_free_ports
from tests.testkit.sites import make_site
from tests.api.conftest import closed_loop
from vpp.control.scheduler import run_simulated
from vpp.market.metering import plan_importer
from vpp.market.settlement_job import settle_due

START = datetime(2026, 6, 22, 0, 0, tzinfo=timezone.utc)  # 09:00 JST, Monday
W0 = START + timedelta(hours=2)  # dispatch window: two slots
W1 = W0 + timedelta(hours=1)


def iso(t):
    return t.isoformat().replace("+00:00", "Z")


def site_config(tmp_path, keys_path):
    """The shelter with 12-h plans, its store and ledger in ``tmp_path``."""
    return make_site("shelter", optimiser={"horizon_h": 12},
                     storage={"backend": "embedded", "path": str(tmp_path / "vpp.sqlite"), "flush_interval_s": 0.05},
                     api={"keys_path": str(keys_path), "ledger_path": str(tmp_path / "ledger.sqlite")})


@pytest.mark.timeout(120)
async def test_award_dispatch_deliver_and_settle(tmp_path, key_file):
    path, keys = key_file
    config = with_free_ports(site_config(tmp_path, path))
    agg = {"Authorization": f"Bearer {keys['aggregator']}"}
    op = {"Authorization": f"Bearer {keys['operator']}"}
    log = []

    def on_step(now, decisions):
        d = decisions[0]
        log.append((now, telemetry.latest("bat1").values["soc"], d.source, d.setpoint_w,
                    float(ctl.floor_at(config.devices_of("battery")[0], [now])[0])))

    async with closed_loop(config, START, tmp_path, bat_soc=0.55) as cl:
        c, ctl, app, site, telemetry = cl.client, cl.ctl, cl.app, cl.site, cl.telemetry
        assert ctl.dispatch_source is app.state.book
        await run_simulated(ctl, START + timedelta(minutes=30), site.step, refresh=telemetry.refresh,
                            on_step=on_step)
        assert ctl.plan is not None
        r = await c.get("/api/v1/flexibility", params={"start": iso(W0), "end": iso(W1)}, headers=agg)
        flex = r.json()["slots"]
        assert [s["source"] for s in flex] == ["plan", "plan"] and all(s["available"] for s in flex)
        # mid-morning the plan charges from PV and empties to the floor by the evening peak,
        # so the site offers "down" (charge more) flexibility
        down = min(s["down_kw"] for s in flex)
        assert down >= 1.0, flex
        assert all(s["down_kw_band"][0] <= s["down_kw"] <= s["down_kw_band"][1] for s in flex)
        res = (await c.get("/api/v1/resources", headers=agg)).json()
        assert res["devices"] is None and res["site"]["metering_point"] == "meter1"
        assert (await c.get("/api/v1/resources", headers=op)).json()["devices"][0]["id"] == "bat1"
        # role limits: no household/device data, no reserve changes for aggregators
        assert (await c.get("/api/v1/devices", headers=agg)).status_code == 403
        assert (await c.put("/api/v1/reserve", headers=agg, json={"floor_pct": 10})).status_code == 403
        assert (await c.get("/api/v1/ledger/export", headers=agg,
                            params={"start": iso(START), "end": iso(W1)})).status_code == 403

        kw = 1.0
        # the site offers (operators only), the aggregator awards
        offer = (await c.post("/api/v1/offers", headers={**op, "Idempotency-Key": "o1"}, json={
            "direction": "down", "override": "award-side rules under test",
            "slots": [{"start": iso(W0), "capacity_kw": down}, {"start": iso(W0 + timedelta(minutes=30)),
                                                             "capacity_kw": down}]})).json()
        award = (await c.post("/api/v1/awards", headers={**agg, "Idempotency-Key": "a1"}, json={
            "offer_id": offer["id"], "slots": [{"start": iso(W0), "capacity_kw": kw},
                                               {"start": iso(W0 + timedelta(minutes=30)), "capacity_kw": kw}]})).json()
        assert award["status"] == "accepted", award
        d = (await c.post("/api/v1/dispatches", headers={**agg, "Idempotency-Key": "d1"}, json={
            "award_id": award["id"], "type": "delta", "start": iso(W0), "end": iso(W1), "value_kw": kw})).json()
        assert (d["status"], d["accepted_kw"]) == ("accepted", kw), d
        frozen = app.state.ledger.query(kinds=["baseline_plan"], ref=d["id"])
        assert len(frozen) == 1 and len(frozen[0].payload["import_w"]) == 2
        # storm mode: no flexibility, dispatches refused
        ctl.storm.on(cl.clock.now(), 0.9, cl.clock.now() + timedelta(hours=6), "typhoon warning")
        flex = (await c.get("/api/v1/flexibility", params={"start": iso(W0), "end": iso(W1)},
                            headers=agg)).json()["slots"]
        assert all(not s["available"] and s["reason"] == "storm_mode" and s["down_kw"] == 0 for s in flex)
        d2 = (await c.post("/api/v1/dispatches", headers={**agg, "Idempotency-Key": "d2"}, json={
            "award_id": award["id"], "type": "delta", "start": iso(W0), "end": iso(W1), "value_kw": kw})).json()
        assert (d2["status"], d2["reasons"]) == ("rejected", ["storm_mode"])
        assert (await c.get("/api/v1/resources", headers=agg)).json()["site"]["storm_mode"] is True
        ctl.storm.off()
        plan_bat = {t: w for t, w in zip(
            [ctl.plan.schedule.start + timedelta(seconds=ctl.plan.schedule.slot_s * k) for k in range(ctl.plan.schedule.n)],
            ctl.plan.schedule.battery_w["bat1"])}

        await run_simulated(ctl, W1 + timedelta(minutes=5), site.step, refresh=telemetry.refresh, on_step=on_step)
        assert await cl.pipeline.flushed(timeout=10)

        during = [x for x in log if W0 <= x[0] < W1]
        assert during and all(x[2] == "dispatch" for x in during), {x[2] for x in during}
        sp = np.array([x[3] for x in during])
        assert np.all(sp <= -kw * 1000 + 1), sp  # 1 kW more charge than the (idle) plan
        assert (await c.get(f"/api/v1/dispatches/{d['id']}", headers=agg)).json()["state"] == "completed"
        # reserve floor never crossed (0.5 % metering tolerance)
        assert min(x[1] - x[4] for x in log) >= -0.005

        # reading performance never writes; the settlement job records it once
        perf = (await c.get(f"/api/v1/dispatches/{d['id']}/performance", headers=agg)).json()
        assert not perf["recorded"] and perf["record_id"] is None
        assert app.state.ledger.query(kinds=["performance"]) == []
        settle = dict(ledger=app.state.ledger, store=cl.store, config=config, now=cl.clock.now(),
                      dispatches=list(app.state.book.dispatches.values()), plan_import=plan_importer(ctl))
        (written,) = settle_due(**settle)
        assert settle_due(**settle) == []  # exactly one performance record per dispatch
        perf = (await c.get(f"/api/v1/dispatches/{d['id']}/performance", headers=agg)).json()
        assert perf["method"] == "plan" and perf["recorded"] and len(perf["slots"]) == 2
        assert perf["record_id"] == written.id
        assert perf["instructed_kwh"] == pytest.approx(kw * 1.0)
        assert all(s["metered_kw"] is not None for s in perf["slots"])
        rec = app.state.ledger.get(perf["record_id"])
        assert rec.kind == "performance" and rec.ref == d["id"]
        assert rec.algorithm_version == "plan-baseline/1" and rec.tariff_version.startswith("tariff:")
        assert rec.co2_version.startswith("co2:")
        # the battery charged about the dispatched kWh more than the plan made before the dispatch
        kwh = cl.store.energy_slots("bat1", start=W0, end=W1)["bat1"]
        planned = sum(plan_bat[t] for t in plan_bat if W0 <= t < W1) * 0.5 / 1000
        # against the frozen plan baseline the meter saw more than the dispatched kWh: the
        # plan's PV/load forecast error lands in the settlement too (that is what is paid)
        assert perf["delivered_kwh"] > 0 and perf["compliance_ratio"] > 0.5
        assert planned - float(kwh.sum()) == pytest.approx(kw * 1.0, abs=0.35), (kwh, planned)

