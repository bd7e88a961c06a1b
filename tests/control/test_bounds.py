import math
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vpp.control.bounds import PRIORITY, Override, Proposal, compose
from vpp.control.fallback import self_consumption_w, split_by_rating

T0 = datetime(2026, 11, 22, tzinfo=timezone.utc)


def test_highest_setpoint_wins_and_is_clipped_by_layers_above():
    d = compose("bat1", -5000, 5000, {
        "reserve": Proposal("reserve", max_w=0.0, reason="hold at floor"),
        "dispatch": Proposal("dispatch", setpoint_w=3000, reason="VPP event"),
        "plan": Proposal("plan", setpoint_w=-2000),
    })
    assert d.source == "dispatch" and d.setpoint_w == 0.0
    assert any("clipped" in r for r in d.reasons) and any("hold" in r for r in d.reasons)


def test_override_beats_dispatch_and_plan():
    ov = Override("bat1", T0 + timedelta(minutes=10), setpoint_w=-1500)
    d = compose("bat1", -5000, 5000, {"override": ov.proposal(T0), "dispatch": Proposal("dispatch", 3000),
                                      "plan": Proposal("plan", 1000)})
    assert (d.source, d.setpoint_w) == ("override", -1500)


def test_expired_override_is_silent():
    ov = Override("bat1", T0, setpoint_w=-1500)
    assert ov.proposal(T0) is None
    d = compose("bat1", -5000, 5000, {"override": ov.proposal(T0), "plan": Proposal("plan", 1000)})
    assert (d.source, d.setpoint_w) == ("plan", 1000)


def test_lower_window_cannot_widen_or_break_higher_window():
    d = compose("bat1", -5000, 5000, {
        "reserve": Proposal("reserve", max_w=-1000, reason="force charge"),
        "override": Proposal("override", min_w=0.0, max_w=2000),  # conflicts: ignored
        "plan": Proposal("plan", setpoint_w=2500),
    })
    assert d.setpoint_w == -1000 and d.max_w == -1000
    assert any("ignored" in r for r in d.reasons)


def test_window_from_override_narrows_plan():
    d = compose("bat1", -5000, 5000, {"override": Proposal("override", min_w=-1000, max_w=1000),
                                      "plan": Proposal("plan", setpoint_w=-4000)})
    assert (d.source, d.setpoint_w, d.min_w, d.max_w) == ("plan", -1000, -1000, 1000)


def test_no_proposal_idles_but_respects_force_charge():
    assert compose("b", -5000, 5000, {}).setpoint_w == 0.0
    d = compose("b", -5000, 5000, {"reserve": Proposal("reserve", max_w=-700)})
    assert (d.source, d.setpoint_w) == ("idle", -700)
    with pytest.raises(ValueError):
        compose("b", -1, 1, {"nonsense": None})


def test_nan_setpoint_is_ignored():
    d = compose("b", -5000, 5000, {"plan": Proposal("plan", math.nan), "fallback": Proposal("fallback", 300)})
    assert (d.source, d.setpoint_w) == ("fallback", 300)


def test_self_consumption_rule():
    assert self_consumption_w(grid_w=1200, battery_w=0) == 1200  # importing: discharge
    assert self_consumption_w(grid_w=-800, battery_w=0) == -800  # exporting PV: charge
    assert self_consumption_w(grid_w=0, battery_w=1000) == 1000  # already balanced: keep
    assert self_consumption_w(grid_w=-30, battery_w=0) == 0.0  # deadband


def test_fallback_never_below_floor_when_composed_with_reserve():
    sp = self_consumption_w(grid_w=3000, battery_w=0)
    d = compose("b", -5000, 5000, {"reserve": Proposal("reserve", max_w=0.0), "fallback": Proposal("fallback", sp)})
    assert d.setpoint_w == 0.0


def test_split_by_rating():
    assert split_by_rating(3000, [(2000, 1000), (4000, 2000)]) == pytest.approx([1000, 2000])
    assert split_by_rating(-3000, [(2000, 1000), (4000, 2000)]) == pytest.approx([-1000, -2000])
    assert split_by_rating(100, [(0, 0)]) == [0.0]


windows = st.tuples(st.floats(-6000, 6000), st.floats(-6000, 6000)).map(sorted)
maybe_sp = st.one_of(st.none(), st.floats(-8000, 8000))


@settings(max_examples=300, deadline=None)
@given(windows, st.lists(st.tuples(st.sampled_from(PRIORITY[1:]), windows, maybe_sp), max_size=4))
def test_reserve_window_always_holds(reserve_window, others):
    lo, hi = reserve_window
    layers = {"reserve": Proposal("reserve", min_w=lo, max_w=hi)}
    for name, (a, b), sp in others:
        layers[name] = Proposal(name, sp, a, b)
    d = compose("b", -5000, 5000, layers)
    rlo, rhi = max(lo, -5000), min(hi, 5000)
    if rlo <= rhi:
        assert rlo - 1e-9 <= d.setpoint_w <= rhi + 1e-9
    assert d.min_w <= d.setpoint_w <= d.max_w
