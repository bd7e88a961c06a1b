"""Fleet planning with VPP commitments and EV sessions: awards stay deliverable by the
homes, dispatch is followed, every car gets its energy by departure (real HiGHS)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from optimizer import EvSession, VppCommitments
from optimizer.examples import example_fleet
from optimizer.fleet import plan_fleet
from optimizer.fleet.checks import check_vpp

N, SLOT_S = 48, 1800  # one day at 30 min from 00:00; slot 36 = 18:00
AWARD = np.where((np.arange(N) >= 36) & (np.arange(N) < 38), 60_000.0, 0.0)  # [W] 18:00-19:00
TAU_S = 7200.0


def fleet20():
    return example_fleet(n_homes=20, n=N, slot_s=SLOT_S, seed=4)


def energy_above_floor(fp, soc) -> np.ndarray:
    """Σ_h η_d·C_h·(soc − floor)⁺ [Wh] per column of ``soc`` (H, n)."""
    a = fp.arrays()
    return (a["eta_discharge"][:, None] * a["capacity_wh"][:, None] * np.clip(soc - a["floor"], 0, None)).sum(axis=0)


def test_up_award_keeps_the_homes_energy_above_their_floors():
    fp = fleet20()
    free = plan_fleet(fp)
    need = AWARD * TAU_S / 3600  # [Wh]
    # the evening peak tariff alone drains the fleet below the award at 18:30
    assert energy_above_floor(fp, free.soc)[37] < need[37]
    fp.vpp = VppCommitments(award_up_w=AWARD, duration_s=TAU_S)
    r = plan_fleet(fp)
    assert r.violations == []
    assert not any("not planned" in w for w in r.warnings)
    before = np.concatenate([fp.soc0[:, None], r.soc[:, :-1]], axis=1)
    for t in (36, 37):
        # at the start and at the end of each award slot, summed over the homes
        assert energy_above_floor(fp, before)[t] >= need[t] - 1.0
        assert energy_above_floor(fp, r.soc)[t] >= need[t] - 1.0
    assert np.all(r.headroom_up_wh[36:38] >= need[36:38] - 1.0)
    assert np.all(r.headroom_up_w[36:38] >= AWARD[36:38] - 1.0)
    # holding the award costs energy arbitrage
    assert r.total_cost > free.total_cost
    # floors: homes starting on or above theirs never go below
    above = fp.soc0 >= 0.3
    assert r.soc[above].min() >= 0.3 - 1e-9


def test_dispatch_is_followed_by_the_aggregate_and_the_homes():
    fp = fleet20()
    disp = np.full(N, np.nan)
    disp[10] = -20_000.0  # charge 20 kW at 05:00
    disp[40:42] = 30_000.0  # discharge 30 kW at 20:00
    fp.vpp = VppCommitments(award_up_w=AWARD, dispatch_w=disp, duration_s=TAU_S)
    r = plan_fleet(fp)
    assert r.violations == []
    on = np.isfinite(disp)
    assert np.allclose(r.battery_w.sum(axis=0)[on], disp[on], atol=1.0)
    # the virtual battery carries the recovery charging on top of the homes' dispatch
    assert np.allclose(r.aggregate.dispatch_shortfall_w[on], 0.0, atol=1e-6)
    above = fp.soc0 >= 0.3
    assert r.soc[above].min() >= 0.3 - 1e-9
    low = ~above
    assert np.all(np.diff(np.concatenate([fp.soc0[low, None], r.soc[low]], axis=1), axis=1)[r.soc[low] < 0.3 - 1e-9] >= 0)


def test_down_award_keeps_room_below_soc_max():
    fp = fleet20()
    dn = np.where((np.arange(N) >= 24) & (np.arange(N) < 26), 40_000.0, 0.0)  # noon, PV surplus
    fp.vpp = VppCommitments(award_down_w=dn, duration_s=3600.0)
    r = plan_fleet(fp)
    assert r.violations == []
    a = fp.arrays()
    room = (a["capacity_wh"][:, None] / a["eta_charge"][:, None] * np.clip(a["soc_max"][:, None] - r.soc, 0, None)).sum(axis=0)
    assert np.all(room[24:26] >= 40_000.0 - 1.0)
    assert np.all(r.headroom_down_w[24:26] >= 40_000.0 - 1.0)


def test_a_plan_that_cannot_deliver_the_award_is_reported():
    fp = fleet20()
    r = plan_fleet(fp)  # planned without the award
    late = dataclasses.replace(fp, vpp=VppCommitments(award_up_w=AWARD, duration_s=TAU_S))
    head = {"up_wh": r.headroom_up_wh, "down_wh": r.headroom_down_wh,
            "up_w": r.headroom_up_w, "down_w": r.headroom_down_w}
    viol = check_vpp(late, r.aggregate, r.battery_w, r.feeder_import_w, r.feeder_export_w, head)
    assert len(viol) == 1 and viol[0].startswith("VPP up award not deliverable by the homes in slots")
    assert "37" in viol[0]
    disp = np.full(N, np.nan)
    disp[5] = 25_000.0
    viol = check_vpp(dataclasses.replace(fp, vpp=VppCommitments(dispatch_w=disp)), r.aggregate, r.battery_w,
                      r.feeder_import_w, r.feeder_export_w, head)
    assert viol == ["VPP dispatch not followed by the homes in slots 5"]


EVS = (
    # three cars plugged in overnight, leaving 07:30 (same window, very different needs)
    EvSession("ev-a", 0, 15, 20_000.0, 1400.0, 7400.0),
    EvSession("ev-b", 0, 15, 3000.0, 1400.0, 7400.0),
    EvSession("ev-c", 0, 15, 12_000.0, 1400.0, 3700.0),
    # two arriving in the evening peak
    EvSession("ev-d", 36, 47, 15_000.0, 1400.0, 7400.0),
    EvSession("ev-e", 38, 47, 8000.0, 1400.0, 7400.0),
)


def test_every_ev_session_gets_its_energy_by_departure_within_limits():
    fp = fleet20()
    fp.evs, fp.ev_home = EVS, [0, 3, 5, 7, 11]
    r = plan_fleet(fp)
    assert r.violations == [] and r.warnings == []
    dt = SLOT_S / 3600
    t = np.arange(N)
    for k, s in enumerate(EVS):
        window = (t >= s.arrival_slot) & (t < s.departure_slot)
        assert r.ev_w[k, window].sum() * dt == pytest.approx(s.energy_wh, abs=1.0), s.charger_id
        assert np.all(r.ev_w[k, ~window] == 0.0)
        assert np.all(r.ev_w[k] <= s.max_w + 1e-6) and np.all(r.ev_w[k] >= 0)
    assert np.all(r.ev_unmet_wh < 1.0)
    # the cars draw through their homes' meters and the feeder; both limits hold
    assert r.feeder_import_w.max() <= fp.feeder.import_limit_w + 1.0
    assert r.grid_w.max() <= 8000.0 + 1.0
    cars = r.grid_w[[0, 3, 5, 7, 11]] - (fp.load_w - fp.pv_w + r.curtail_w - r.battery_w)[[0, 3, 5, 7, 11]]
    assert np.allclose(cars, r.ev_w, atol=1e-6)
    above = fp.soc0 >= 0.3
    assert r.soc[above].min() >= 0.3 - 1e-9


def test_evs_and_an_award_together():
    fp = fleet20()
    fp.evs, fp.ev_home = EVS, [0, 3, 5, 7, -1]  # the last car on a public charger
    fp.vpp = VppCommitments(award_up_w=AWARD, duration_s=TAU_S)
    r = plan_fleet(fp)
    assert r.violations == []
    assert np.all(r.ev_unmet_wh < 1.0)
    assert np.all(r.headroom_up_wh[36:38] >= AWARD[36:38] * TAU_S / 3600 - 1.0)
    assert r.feeder_import_w.max() <= fp.feeder.import_limit_w + 1.0


def test_ev_groups_stay_one_load_unless_they_cannot_be_split():
    fp = fleet20()
    # alike cars leaving together: one flexible load in the aggregate LP, split exactly
    fp.evs = tuple(EvSession(f"ev{i}", 0, 15, 6000.0, 1400.0, 7400.0) for i in range(4))
    fp.ev_home = [1, 2, 3, 4]
    r = plan_fleet(fp)
    assert list(r.aggregate.ev_w) == ["fleet-ev000"]
    assert np.allclose(r.ev_w.sum(axis=1) * SLOT_S / 3600, 6000.0, atol=1.0)
    # a big and a small need in one window: the LP packs the group into the cheapest
    # slots at the summed cap, which the big car alone cannot absorb -> planned per session
    fp.evs, fp.ev_home = EVS[:3], [0, 3, 5]
    r = plan_fleet(fp)
    assert len(r.aggregate.ev_w) == 3
    assert np.all(r.ev_unmet_wh < 1.0)
