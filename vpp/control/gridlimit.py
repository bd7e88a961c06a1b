"""Real-time grid-connection limit: keep the next step's grid exchange within
``import_limit_w`` / ``export_limit_w`` [W] from the measured grid power.

The grid power after this step's commands is predicted from the meter (W, > 0 import) and
the change each command makes: ``grid' = grid + Σ ΔEV − Σ Δbattery`` (battery > 0
discharges). An excess import is removed by, in order: lowering EV charging (a charger cut
below its minimum power pauses), then more battery discharge / less charge. An excess export
by more battery charge / less discharge, then PV curtailment. The battery corrections come
back as windows that the loop composes as the ``grid`` layer, right under the reserve
(which keeps top priority). Pure functions; no I/O.
"""
from __future__ import annotations

from collections.abc import Mapping


def predicted_grid_w(grid_w: float, ev_now_w: Mapping[str, float], ev_next_w: Mapping[str, float],
                     bat_now_w: Mapping[str, float], bat_next_w: Mapping[str, float]) -> float:
    """Grid power [W] (> 0 import) expected once the EV (charging, W ≥ 0) and battery (> 0
    discharge) commands take effect, from the measured ``grid_w`` [W]."""
    d_ev = sum(ev_next_w[k] - ev_now_w.get(k, 0.0) for k in ev_next_w)
    d_bat = sum(bat_next_w[k] - bat_now_w.get(k, 0.0) for k in bat_next_w)
    return grid_w + d_ev - d_bat


def shed_ev(excess_w: float, ev_w: Mapping[str, float], ev_min_w: Mapping[str, float]
            ) -> tuple[dict[str, float], float]:
    """Lower EV charging [W] by up to ``excess_w`` [W]; returns the new powers and the
    excess left. Chargers are cut in turn; one that would drop below its minimum power
    pauses (0 W), which may shed more than asked."""
    out = dict(ev_w)
    left = excess_w
    for k in sorted(out, key=lambda c: -out[c]):  # largest first: fewest chargers touched
        if left <= 0:
            break
        p = out[k]
        if p <= 0:
            continue
        new = p - left
        if new < ev_min_w.get(k, 0.0):
            new = 0.0
        out[k] = new
        left -= p - new
    return out, max(left, 0.0)


def battery_shift(excess_w: float, setpoint_w: Mapping[str, float], room_w: Mapping[str, float]
                  ) -> tuple[dict[str, float], float]:
    """Share a battery power shift of ``excess_w`` [W] (≥ 0) over batteries in proportion to
    their ``room_w`` [W] (how far each can move in the needed direction, ≥ 0). Returns the
    shift per battery (≤ its room) and the part no battery can take."""
    total = sum(max(r, 0.0) for r in room_w.values())
    if excess_w <= 0 or total <= 0:
        return {k: 0.0 for k in setpoint_w}, max(excess_w, 0.0)
    take = min(excess_w, total)
    return {k: take * max(room_w.get(k, 0.0), 0.0) / total for k in setpoint_w}, excess_w - take
