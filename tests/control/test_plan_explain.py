"""The plan view's "why" line and SoC band: pure functions of a plan (hand-made plans here, one
per reason, so each branch is pinned down)."""
from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

import optimizer
from vpp.control.plan_explain import soc_band, why

TZ = "Asia/Tokyo"
START = datetime(2026, 7, 1, 15, 0, tzinfo=UTC)  # 00:00 JST
N = 48  # 30-min slots


def plan(battery_w, soc, floor=0.3, pv=None, load=None, buy=None, award=None, dispatch=None, recovery=None,
         scenarios=None):
    z = np.zeros(N)
    pv = z + (0.0 if pv is None else pv)
    load = z + (1000.0 if load is None else load)
    s = optimizer.Schedule(start=START, slot_s=1800, n=N, grid_import_w=z, grid_export_w=z, pv_w=pv,
                           pv_curtail_w=z, load_w=load, unserved_w=z, cost=z, co2_kg=z,
                           battery_w={"b": z + battery_w}, soc={"b": z + soc}, floor={"b": z + floor},
                           recovery={"b": z + (0.0 if recovery is None else recovery)},
                           soc_scenarios={} if scenarios is None else {"b": scenarios})
    vpp = None
    if award is not None or dispatch is not None:
        vpp = optimizer.VppCommitments(award_up_w=z + (0.0 if award is None else award), dispatch_w=dispatch)
    p = optimizer.Problem(horizon=optimizer.Horizon(START, 1800, N), pv_w=pv, load_w=load,
                          batteries=(optimizer.BatteryParams("b", 10_000.0, 5000.0, 5000.0, soc0=0.5),),
                          prices=optimizer.Prices(buy=z + (0.25 if buy is None else buy), sell=z + 0.08), vpp=vpp)
    return s, p


def test_charging_on_cheap_night_price_before_a_storm():
    buy = np.where(np.arange(N) < 14, 0.15, 0.40)  # night until 07:00 JST
    floor = np.clip(0.3 + 0.02 * np.arange(N), 0.3, 0.9)  # storm ramp
    s, p = plan(-3000.0, 0.5, floor=floor, buy=buy)
    w = why(s, p, 4, TZ, storm_active=True)
    assert w.action == "charging" and w.reasons == ("storm", "cheap_night")
    assert w.text("en", TZ) == "charging: storm expected, cheap night price"
    assert w.text("ja", TZ) == "充電: 台風・防災に備える、安い夜間料金"
    # the same slot without storm mode: only the price
    assert why(s, p, 4, TZ).text("en", TZ) == "charging: cheap night price"
    # daytime: "cheap", not "night"
    buy2 = np.where(np.arange(N) < 30, 0.15, 0.40)
    s, p = plan(-3000.0, 0.5, buy=buy2)
    assert why(s, p, 24, TZ).text("en", TZ) == "charging: cheap price"  # 12:00 JST


def test_holding_at_the_floor():
    s, p = plan(0.0, 0.3)
    w = why(s, p, 10, TZ)
    assert w.text("en", TZ) == "holding: floor" and w.text("ja", TZ) == "待機: 予備下限"


def test_discharging_for_an_award_names_its_window_in_site_time():
    award = np.where((np.arange(N) >= 24) & (np.arange(N) < 26), 4000.0, 0.0)  # 12:00–13:00 JST
    s, p = plan(4000.0, 0.6, pv=2000.0, load=1000.0, award=award)
    w = why(s, p, 25, TZ)
    assert w.text("en", TZ) == "discharging: award 12:00–13:00"
    assert w.text("ja", TZ) == "放電: アワード 12:00–13:00"
    # before the award, charging for it
    s, p = plan(-2000.0, 0.5, award=award)
    assert why(s, p, 20, TZ).text("en", TZ) == "charging: award 12:00–13:00 ahead"
    # in the award window, not discharging: keeping it deliverable
    s, p = plan(0.0, 0.7, award=award)
    assert why(s, p, 24, TZ).text("en", TZ) == "holding: keeping award 12:00–13:00 deliverable"


def test_discharging_dear_price_and_recovery_reasons():
    buy = np.where(np.arange(N) >= 34, 0.40, 0.20)
    s, p = plan(3000.0, 0.6, buy=np.where(np.arange(N) < 36, 0.40, 0.10))
    assert why(s, p, 35, TZ).reasons == ("dear", "load")
    s, p = plan(-3000.0, 0.2, floor=0.3, recovery=0.1, buy=buy)
    assert why(s, p, 40, TZ).reasons == ("recovering",)
    s, p = plan(0.0, 0.95)
    assert why(s, p, 3, TZ).reasons == ("full",)


def test_soc_band_over_scenarios_and_without():
    rows = np.vstack([np.full(N, v) for v in (0.4, 0.5, 0.6, 0.7, 0.8)])
    s, _ = plan(0.0, 0.6, scenarios=rows)
    lo, hi = soc_band(s, {"b": 10_000.0}, 10)
    assert len(lo) == 10 and lo[0] == 44.0 and hi[0] == 76.0
    s, _ = plan(0.0, 0.6)
    lo, hi = soc_band(s, {"b": 10_000.0}, 10)
    assert lo == hi == [60.0] * 10
