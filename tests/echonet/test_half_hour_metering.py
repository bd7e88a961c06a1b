"""The smart meter's fixed-time 30-minute readings (EA/EB) as the metering of an ECHONET home,
read over loopback UDP from the emulator: differenced counts (D3 × E1), not integrated power;
missed and going-backwards readings are flagged and never used."""
from __future__ import annotations

import math
from datetime import timedelta

import pandas as pd
import pytest

from drivers.fleet import DriverFleet
from simulators.echonet_site import METER_UNIT_KWH
from vpp.market.baseline import BaselineError
from vpp.market.half_hour_metering import HalfHourLog, slot_energy
from vpp.market.metering import home_import_w
from vpp.slots import SLOT_S

COUNT_WH = METER_UNIT_KWH * 1000.0


def _to_next_boundary(town) -> None:
    now = town.clock.now()
    nxt = pd.Timestamp(now).ceil(f"{SLOT_S}s")
    town.step((nxt - pd.Timestamp(now)).total_seconds() or SLOT_S)


@pytest.fixture
async def meter(town):
    cfg = town.config.model_copy(update={"devices": [town.config.device("h001-meter")]})
    f = DriverFleet(cfg)
    await f.poll_once()
    yield f.device("h001-meter")
    await f.stop()


async def test_slot_energy_is_the_difference_of_the_latched_counts(town, meter):
    model, log, wh_at = town.model("h001-meter"), HalfHourLog(), {}
    _to_next_boundary(town)
    for _ in range(4):
        assert log.record("h001-meter", await meter.read_half_hour())
        wh_at[pd.Timestamp(town.clock.now())] = (model.import_energy_wh, model.export_energy_wh)
        town.step(SLOT_S)
    slots = sorted(wh_at)
    e = slot_energy(log.series("h001-meter"), town.config.site.timezone)
    assert list(e.index) == [t - pd.Timedelta(seconds=SLOT_S) for t in slots]
    assert e["flag"].tolist() == ["missing", "ok", "ok", "ok"]  # the first latch has no predecessor
    for a, b in zip(slots, slots[1:]):
        imp = math.floor(wh_at[b][0] / COUNT_WH) - math.floor(wh_at[a][0] / COUNT_WH)
        exp = math.floor(wh_at[b][1] / COUNT_WH) - math.floor(wh_at[a][1] / COUNT_WH)
        assert e.loc[a, "import_wh"] == pytest.approx(imp * COUNT_WH)  # whole counts × D3 × E1
        assert e.loc[a, "export_wh"] == pytest.approx(exp * COUNT_WH)
        assert e.loc[a, "import_wh"] == pytest.approx(wh_at[b][0] - wh_at[a][0], abs=COUNT_WH)
    assert e["import_wh"].iloc[1:].sum() + e["export_wh"].iloc[1:].sum() > 0
    # the home's metering of record: from EA/EB (no store exists here to integrate power from)
    w = home_import_w(None, town.config, "h001", slots[0].to_pydatetime() - timedelta(minutes=30),
                      slots[-1].to_pydatetime(), half_hour=log)
    assert math.isnan(w.iloc[0])
    assert w.iloc[1:].tolist() == pytest.approx(
        ((e["import_wh"] - e["export_wh"]) * 3600.0 / SLOT_S).iloc[1:].tolist())
    with pytest.raises(BaselineError, match="30-minute readings"):
        home_import_w(None, town.config, "h001", slots[0].to_pydatetime(), slots[-1].to_pydatetime())


async def test_missed_and_backwards_readings_are_flagged_not_used(town, meter):
    model, log = town.model("h001-meter"), HalfHourLog()
    tz = town.config.site.timezone
    _to_next_boundary(town)
    log.record("h001-meter", await meter.read_half_hour())
    town.step(SLOT_S)
    log.record("h001-meter", await meter.read_half_hour())
    town.step(2 * SLOT_S)  # one latch never read (the node was unreachable at the time)
    log.record("h001-meter", await meter.read_half_hour())
    town.step(SLOT_S - 1)
    assert max(model.import_energy_wh, model.export_energy_wh) >= 2 * COUNT_WH
    model.import_energy_wh = model.export_energy_wh = 0.0  # a meter swap: counts restart
    town.step(1)
    log.record("h001-meter", await meter.read_half_hour())
    town.step(SLOT_S)
    log.record("h001-meter", await meter.read_half_hour())
    e = slot_energy(log.series("h001-meter"), tz)
    assert e["flag"].tolist() == ["missing", "ok", "missing", "backwards", "ok"]
    assert e.loc[e["flag"] != "ok", ["import_wh", "export_wh"]].isna().all().all()
    assert e.loc[e["flag"] == "ok", ["import_wh", "export_wh"]].notna().all().all()
    w = home_import_w(None, town.config, "h001", e.index[0].to_pydatetime(),
                      (e.index[-1] + pd.Timedelta(seconds=SLOT_S)).to_pydatetime(), half_hour=log)
    assert w.isna().tolist() == [True, False, True, True, True, False]  # the unread slot is NaN too


async def test_collector_reads_every_meter_once_per_slot_and_survives_an_offline_home(town):
    from vpp.market.half_hour_collector import HalfHourCollector, half_hour_meters

    ids = [d.id for d in town.config.devices if d.protocol == "echonet_lite" and d.kind == "meter"]
    cfg = town.config.model_copy(update={"devices": [town.config.device(i) for i in ids]})
    f = DriverFleet(cfg)
    try:
        await f.poll_once()
        c = HalfHourCollector(half_hour_meters({i: f.device(i) for i in ids}))
        assert sorted(c.meters) == ["h001-meter", "h002-meter"]
        _to_next_boundary(town)
        assert await c.collect(town.clock.now()) == {}
        town.step(SLOT_S)
        await town.echonet.inject("h002-meter", "offline")
        failed = await c.collect(town.clock.now())
        assert list(failed) == ["h002-meter"]
        assert [len(c.log.series(i)) for i in ids] == [2, 1]
        await town.echonet.inject("h002-meter", None)
        assert await c.collect(town.clock.now()) == {}  # retried within the slot
        assert [len(c.log.series(i)) for i in ids] == [2, 2]
        calls = []
        for dev in c.meters.values():
            async def counted(read=dev.read_half_hour):
                calls.append(1)
                return await read()
            dev.read_half_hour = counted
        assert await c.collect(town.clock.now()) == {}
        assert calls == []  # nothing asked again in the same slot
        town.step(SLOT_S)
        assert await c.collect(town.clock.now()) == {} and len(calls) == 2
        e = slot_energy(c.log.series("h001-meter"), town.config.site.timezone)
        assert e["flag"].tolist() == ["missing", "ok", "ok"]
    finally:
        await f.stop()
