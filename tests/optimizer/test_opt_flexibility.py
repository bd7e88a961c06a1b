"""Flexibility per 30-min slot: above the floor, within power and grid limits."""

from __future__ import annotations

import numpy as np
import pytest

from optimizer import solve
from optimizer.flexibility import flexibility


def test_flexibility_never_counts_energy_below_floor(make_site):
    p = make_site(battery={"floor": 0.4, "soc0": 0.4})
    s = solve(p)
    flex = flexibility(p, s)
    assert len(flex) == 48  # 24 one-hour plan slots → 48 half-hour windows
    soc = np.r_[0.4, s.soc["bat1"]]
    for k, f in enumerate(flex):
        t = k // 2
        margin = (soc[t:] - 0.4).min()  # the tightest later margin above the floor
        assert f.up_kwh == pytest.approx(max(margin, 0) * 10 * 0.95, abs=1e-6)
        assert f.up_kwh >= 0 and f.down_kwh >= 0
        assert 0 <= f.up_kw <= 5 + 5 + 1e-9 and 0 <= f.down_kw <= 10 + 1e-9
    # at the start the battery sits on its floor: no upward energy at all
    assert flex[0].up_kwh == pytest.approx(0.0, abs=1e-9)
    assert flex[0].up_kw == 0 and flex[0].up_sustain_s == 0
    assert flex[0].down_kw > 0 and flex[0].down_sustain_s >= 1800 - 1e-6
    # every offered kW lasts the whole half hour
    assert all(f.up_kw * 0.5 <= f.up_kwh + 1e-9 and f.down_kw * 0.5 <= f.down_kwh + 1e-9 for f in flex)


def test_flexibility_zero_in_outage(make_site):
    out = np.zeros(24, bool)
    out[5:7] = True
    p = make_site(outage=out)
    flex = flexibility(p, solve(p))
    assert all(f.up_kw == 0 and f.down_kw == 0 for f in flex[10:14])
    assert flex[0].to_dict()["start"].startswith("2026-06-21T00:00")


def test_windows_sit_on_settlement_boundaries_when_the_plan_starts_at_quarter_past(make_site):
    from datetime import timedelta

    from optimizer import Horizon
    from tests.optimizer.conftest import START

    p = make_site(n=96, slot_s=900, horizon=Horizon(START + timedelta(minutes=15), 900, 96))
    flex = flexibility(p, solve(p))
    # 24 h from 00:15: the part-window 00:15–00:30 is skipped, then 47 whole :00/:30 windows
    assert len(flex) == 47
    assert flex[0].start == START + timedelta(minutes=30)
    assert all(f.start.minute in (0, 30) and f.start.second == 0 for f in flex)
