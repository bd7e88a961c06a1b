"""The storage contract, run against InfluxDB (real influxd) and the embedded SQLite store."""
from __future__ import annotations

import math
from datetime import timedelta

import pandas as pd
import pytest

from drivers.protocols import DeviceKind, Quality
from vpp.storage import TelemetryPipeline, open_store

from storage_helpers import T0, snap


def test_latest_roundtrip(store):
    store.write([snap("pv1", "pv", 0, power_w=1000.0, energy_wh=5.0),
                 snap("pv1", "pv", 10, power_w=1200.5, energy_wh=8.25),
                 snap("bat1", "battery", 5, power_w=-300.0, soc=0.5),
                 snap("m1", "meter", 7, Quality.STALE, "frozen", power_w=10.0)])
    latest = store.latest()
    assert set(latest) == {"pv1", "bat1", "m1"}
    pv = latest["pv1"]
    assert pv.ts == T0 + timedelta(seconds=10)
    assert pv.kind is DeviceKind.PV
    assert pv.values == {"power_w": 1200.5, "energy_wh": 8.25}
    assert pv.quality is Quality.GOOD and pv.reason == ""
    assert latest["bat1"].values == {"power_w": -300.0, "soc": 0.5}
    assert latest["m1"].quality is Quality.STALE and latest["m1"].reason == "frozen"
    assert set(store.latest("bat1")) == {"bat1"}
    assert store.latest("nope") == {}
    assert store.devices() == {"pv1": "pv", "bat1": "battery", "m1": "meter"}


def test_sub_second_timestamps_are_kept(store):
    t = T0 + timedelta(microseconds=123456)
    store.write([snap("pv1", "pv", t, power_w=1.0)])
    assert store.latest()["pv1"].ts == t


def test_query_aggregates_per_bucket(store):
    # 2 devices, samples every 10 s for 3 min; power = 100 * minute + second/10
    snaps = []
    for i in range(18):
        for dev, off in (("pv1", 0.0), ("pv2", 1000.0)):
            snaps.append(snap(dev, "pv", i * 10, power_w=off + 100.0 * (i // 6) + i % 6))
    store.write(snaps)
    start, end = T0, T0 + timedelta(minutes=3)
    df = store.query(device="pv1", fields=["power_w"], start=start, end=end, every="1m", agg="mean")
    assert isinstance(df.index, pd.DatetimeIndex) and str(df.index.tz) == "UTC"
    assert list(df.columns) == ["power_w"]
    assert list(df.index) == [T0, T0 + timedelta(minutes=1), T0 + timedelta(minutes=2)]
    assert df["power_w"].tolist() == pytest.approx([2.5, 102.5, 202.5])
    for agg, want in (("last", [5, 105, 205]), ("max", [5, 105, 205]), ("min", [0, 100, 200])):
        got = store.query(device="pv1", fields=["power_w"], start=start, end=end, every=timedelta(minutes=1), agg=agg)
        assert got["power_w"].tolist() == want, agg
    pooled = store.query(kind="pv", fields=["power_w"], start=start, end=end, every="1m", agg="mean")
    assert pooled["power_w"].tolist() == pytest.approx([502.5, 602.5, 702.5])
    # end is exclusive, buckets with no data are omitted, 1 s … 1 d widths
    assert len(store.query(device="pv1", fields=["power_w"], start=start, end=T0 + timedelta(minutes=1),
                           every="1s", agg="last")) == 6
    day = store.query(device="pv1", fields=["power_w", "energy_wh"], start=T0 - timedelta(days=1),
                      end=T0 + timedelta(days=1), every="1d", agg="max")
    assert list(day.index) == [T0] and day["power_w"].iloc[0] == 205 and math.isnan(day["energy_wh"].iloc[0])
    r15 = store.rollup(device="pv2", fields=["power_w"], start=start, end=end, every="15m")
    assert r15["power_w"].tolist() == pytest.approx([1102.5])
    with pytest.raises(ValueError):
        store.query(device="pv1", fields=["power_w"], start=start, end=end, every="2d")


def test_energy_slots_exact_kwh(store):
    snaps = []
    # meter: counters present (import 2 Wh/s for the first 30 min, then export 1 Wh/s)
    imp = exp = 0.0
    for i in range(0, 3601, 60):
        snaps.append(snap("m1", "meter", i, power_w=0.0, import_energy_wh=imp, export_energy_wh=exp))
        if i < 1800:
            imp += 120.0
        else:
            exp += 60.0
    # EV charger: no counter → integrate power: 7400 W for 15 min of the first slot, 3700 W all of the second
    for i in range(0, 3601, 10):
        p = 7400.0 if i <= 900 else (0.0 if i <= 1800 else 3700.0)
        snaps.append(snap("ev1", "ev_charger", i, power_w=p))
    store.write(snaps)
    e = store.energy_slots(start=T0, end=T0 + timedelta(hours=1))
    assert list(e.index) == [T0, T0 + timedelta(minutes=30)]
    assert e.loc[T0, "m1"] == pytest.approx(3.6)        # 30 × 120 Wh
    assert e.iloc[1]["m1"] == pytest.approx(-1.8)        # 30 × 60 Wh exported
    # 7400 W × 900 s plus the 10-s ramp down to 0 W (half of 7400 W × 10 s)
    assert e.loc[T0, "ev1"] == pytest.approx((7400 * 900 + 7400 * 5) / 3.6e6)
    assert e.iloc[1]["ev1"] == pytest.approx((3700 * 1790 + 3700 * 5) / 3.6e6)
    one = store.energy_slots("ev1", start=T0, end=T0 + timedelta(hours=1), slot_s=3600)
    assert list(one.columns) == ["ev1"] and len(one) == 1


async def test_pipeline_marks_bad_values_and_keeps_running(store_cfg, tmp_path, caplog):
    store = open_store(store_cfg, site="town", connect=False)
    p = TelemetryPipeline(store, store_cfg, tmp_path / "spool")
    await p.start()
    p.submit(snap("bat1", "battery", 0, soc=2.5, power_w=100.0))        # 250 %: unit mistake
    p.submit(snap("bat1", "battery", 1, soc=float("nan"), power_w=float("inf")))
    p.submit(snap("bat1", "battery", 2, soc="0.5", power_w=None))         # wrong types
    p.submit(snap("bat1", "battery", 3, soc=0.4, power_w=7))              # int → float
    p.submit(snap("bat1", "battery", 4, soc=0.41, power_w=50.0))
    assert await p.flushed(10)
    await p.stop()
    m = p.metrics
    assert m["written"] == 5 and m["bad"] == 3 and m["rejected"] == 0
    assert "soc=2.5 outside [0, 1]" in caplog.text
    df = store.raw("bat1", ["soc", "power_w"], T0, T0 + timedelta(seconds=10))
    # points whose values were all dropped have no numeric field left to select
    assert [(t - T0).total_seconds() for t in df.index] == [0, 3, 4]
    assert math.isnan(df["soc"].iloc[0]) and df["soc"].tolist()[1:] == [0.4, 0.41]
    assert df["power_w"].tolist() == [100.0, 7.0, 50.0]
    assert store.count(device="bat1") == 5
    bad = store.query(device="bat1", fields=["soc"], start=T0, end=T0 + timedelta(seconds=10), every="1s", agg="max")
    assert bad["soc"].max() == 0.41
    latest = store.latest("bat1")["bat1"]
    assert latest.quality is Quality.GOOD and latest.values == {"soc": 0.41, "power_w": 50.0}
    store.close()


def test_rewrite_is_idempotent(store):
    batch = [snap("pv1", "pv", i, power_w=float(i)) for i in range(100)]
    store.write(batch)
    store.write(batch)
    store.write(batch[:10])
    assert store.count() == 100 and store.count(kind="pv") == 100 and store.count(device="pv1") == 100
    s = store.query(device="pv1", fields=["power_w"], start=T0, end=T0 + timedelta(hours=1), every="1h", agg="mean")
    assert s["power_w"].iloc[0] == pytest.approx(49.5)


async def test_full_queue_spills_to_spool_never_drops(store_cfg, tmp_path, caplog):
    cfg = store_cfg.model_copy(update={"queue_max": 20, "batch_size": 10})
    store = open_store(cfg, site="town", connect=False)
    p = TelemetryPipeline(store, cfg, tmp_path / "spool")
    for i in range(105):  # before start: nothing drains the queue
        p.submit(snap("pv1", "pv", i, power_w=float(i)))
    m = p.metrics
    assert m["overflows"] > 0 and m["spooled"] == 90 and m["queued"] == 15 and m["dropped"] == 0
    assert "telemetry queue full" in caplog.text
    await p.start()
    assert await p.flushed(10)
    await p.stop()
    assert p.metrics["written"] == 105 and p.metrics["replayed"] == 90
    assert store.count(device="pv1") == 105
    store.close()


def test_awkward_names_and_reasons_round_trip(store):
    dev = 'odd dev,1=2"x\\y'  # a trailing backslash cannot be a line-protocol tag value
    store.write([snap(dev, "meter", 0, Quality.BAD, 'said "no", then \\ quit', power_w=1.5)])
    got = store.latest(dev)[dev]
    assert got.device == dev and got.values == {"power_w": 1.5}
    assert got.quality is Quality.BAD and got.reason == 'said "no", then \\ quit'
    assert store.count(device=dev) == 1 and dev in store.devices()
