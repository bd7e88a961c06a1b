"""Drivers' needs (energy, departure) replace the fixed guess, and the plan delivers them."""
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from vpp.config import Tariff, updated
from vpp.control.ev_needs import EvNeeds, NeedsError, energy_from_soc
from vpp.control.loop import Controller

from .test_ev_grid import RecTable, set_ev
from .test_loop import Clock, cfg, set_readings

EVENING = datetime(2026, 12, 4, 9, 7, tzinfo=timezone.utc)  # 18:07 JST, winter: no PV before 07:00
DEPART = datetime(2026, 12, 4, 22, 0, tzinfo=timezone.utc)  # 07:00 JST next morning
PRICES = [  # local time: a cheap band of 10 slots, a middling one, dear otherwise
    {"name": "cheap", "start": "23:00", "end": "04:00", "buy_per_kwh": 10.0},
    {"name": "mid", "start": "04:00", "end": "07:00", "buy_per_kwh": 20.0},
    {"name": "dear", "start": "07:00", "end": "23:00", "buy_per_kwh": 30.0},
]


def controller():
    # the TOU table is the price source here (the example site's own is a JEPX file)
    config = updated(cfg(), tariff=Tariff(currency="JPY", periods=PRICES, sell_per_kwh=0.0), prices={"source": "tou"},
                     bill={"sell_scheme": "fixed"})
    ctl = Controller(config, fleet=RecTable(), clock=Clock(EVENING))
    set_readings(ctl, soc=0.6, grid_w=5000.0)
    return ctl


def test_driver_needs_30_kwh_by_0700_planned_in_cheapest_slots_within_grid_limit():
    ctl = controller()
    set_ev(ctl, "ev1", plugged=True)
    ctl.ev_needs.set("ev1", EVENING, "driver", energy_wh=30_000.0, departure=DEPART)
    plan = ctl.plan_job()
    s = plan.problem.evs[0]
    start = plan.schedule.start
    assert s.charger_id == "ev1" and s.energy_wh == 30_000.0
    assert start + timedelta(seconds=1800 * s.departure_slot) == DEPART
    ev_w = np.asarray(plan.schedule.ev_w["ev1"])
    assert ev_w[:s.departure_slot].sum() * 0.5 == pytest.approx(30_000.0, rel=1e-3)  # by 07:00
    assert ev_w[s.departure_slot:].sum() == pytest.approx(0.0, abs=1.0)
    times = [start + timedelta(seconds=1800 * k) for k in range(len(ev_w))]
    cheap = np.array([(t.astimezone(timezone(timedelta(hours=9))).hour in (23, 0, 1, 2, 3)) for t in times])
    # 30 kWh at ≤ 6.4 kW fits into the ten cheap slots: nothing is bought dearer
    assert ev_w[~cheap].sum() == pytest.approx(0.0, abs=1.0)
    assert ev_w.max() <= 6400.0 + 1e-6
    assert (np.asarray(plan.schedule.grid_import_w) <= ctl.config.grid.import_limit_w + 1e-3).all()


def test_default_guess_stays_without_needs_and_needs_end_with_the_car():
    ctl = controller()
    set_ev(ctl, "ev1", plugged=True)
    assert ctl.plan_job().problem.evs[0].energy_wh == 15_000.0  # the fixed guess, as before
    ctl.ev_needs.set("ev1", EVENING, "operator", energy_wh=22_000.0)
    assert ctl.plan_job().problem.evs[0].energy_wh == 22_000.0
    set_ev(ctl, "ev1", plugged=False)
    ctl.unplanned_cars(EVENING)
    assert ctl.ev_needs.get("ev1") is None


def test_needs_validation_and_station_reports_lose_to_people():
    n = EvNeeds()
    with pytest.raises(NeedsError, match="energy_wh"):
        n.set("ev1", EVENING, "driver", energy_wh=-5.0)
    with pytest.raises(NeedsError, match="departure"):
        n.set("ev1", EVENING, "driver", departure=EVENING - timedelta(hours=1))
    with pytest.raises(NeedsError, match="departure"):
        n.set("ev1", EVENING, "driver", departure=EVENING + timedelta(days=8))
    n.set("ev1", EVENING, "driver", energy_wh=30_000.0, departure=DEPART)
    assert n.set_from_station("ev1", {"energy_wh": 5_000.0}, EVENING).energy_wh == 30_000.0
    assert n.set_from_station("ev2", {"energy_wh": 5_000.0, "departure": DEPART}, EVENING).source == "station"
    assert energy_from_soc(0.8, 0.3, 60_000.0) == pytest.approx(30_000.0)
    t = n.link("ev1")
    assert n.link("ev1") == t and n.charger_of(t) == "ev1" and n.charger_of("guess") is None
    n.car_left("ev1")
    assert n.charger_of(t) is None and n.get("ev1") is None
