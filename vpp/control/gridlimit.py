"""Real-time grid-connection limit: keep the next step's grid exchange within
``import_limit_w`` / ``export_limit_w`` [W] from the measured grid power.

The grid power after this step's commands is predicted from the meter (W, > 0 import) and
the change each command makes: ``grid' = grid + Σ ΔEV − Σ Δbattery`` (battery > 0
discharges). An excess import is removed by, in order: lowering EV charging (a charger cut
below its minimum power pauses), then more battery discharge / less charge. An excess export
by more battery charge / less discharge, then PV curtailment. The battery corrections come
back as windows that the loop composes as the ``grid`` layer, right under the reserve
(which keeps top priority). Pure functions; no I/O. :func:`hold_grid_limit` applies them to
one dispatch step (process image, battery decisions and windows, EV commands).
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from vpp.config import Device, SiteConfig
from vpp.control import ev as evpolicy
from vpp.control.alarms import AlarmChange, clear_alarm, raise_alarm
from vpp.control.bounds import Decision, Proposal, compose
from vpp.control.decide import Window
from vpp.control.ev import EvCommand
from vpp.control.image import ProcessImage


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


# --------------------------------------------------------------- the loop's grid-limit step

@dataclass(frozen=True)
class GridStep:
    """Result of :func:`hold_grid_limit`: the battery decisions (some recomposed with a
    ``grid`` layer), the EV commands (some cut), PV limits [W] per inverter and the
    ``grid`` alarm change."""

    decisions: list[Decision]
    ev_commands: dict[str, EvCommand]
    pv_limits: dict[str, float] = field(default_factory=dict)
    alarms: list[AlarmChange] = field(default_factory=list)


def ev_expected_w(cmd: EvCommand, values: Mapping[str, float], charger: Device) -> tuple[float, float]:
    """(now, after the command) EV charging power [W]: a car drawing clearly less than the
    limit in force is limited by itself (or full), so it will not draw more later."""
    p = values.get("power_w", 0.0)
    p = p if math.isfinite(p) else 0.0
    if not evpolicy.connected(values):
        return p, 0.0
    limit_now = values.get("current_limit_a", math.nan)
    if math.isfinite(limit_now) and limit_now > 0 and p < 0.9 * evpolicy.power_for(limit_now, charger):
        return p, min(cmd.power_w, p)
    return p, cmd.power_w


def hold_grid_limit(config: SiteConfig, image: ProcessImage, decisions: list[Decision],
                    windows: Mapping[str, Window], ev_commands: Mapping[str, EvCommand]) -> GridStep:
    """Keep the predicted grid exchange within ``config.grid``'s limits from the meter's
    usable ``image.grid_w`` [W]: EV first, then a ``grid`` window for the batteries (within
    their reserve window, never against it), then PV curtailment for export. The ``grid``
    alarm is raised if the limit cannot be held, else cleared. Call only with a usable,
    finite grid reading and the grid up."""
    g = config.grid
    ev_cmds = dict(ev_commands)
    ev_now, ev_next, ev_min = {}, {}, {}
    for cid, cmd in ev_cmds.items():
        ch = config.device(cid)
        ev_now[cid], ev_next[cid] = ev_expected_w(cmd, image.reading(cid).snap.values, ch)
        ev_min[cid] = evpolicy.power_window_w(ch)[0]
    bat_now = {d.device: image.reading(d.device).snap.values.get("power_w", 0.0)
               for d in decisions if image.reading(d.device).snap is not None}
    bat_next = {d.device: d.setpoint_w for d in decisions}
    pred = predicted_grid_w(image.grid_w, ev_now, ev_next, bat_now, bat_next)
    if pred > g.import_limit_w:
        excess, direction = pred - g.import_limit_w, "import"
    elif pred < -g.export_limit_w:
        excess, direction = -g.export_limit_w - pred, "export"
    else:
        return GridStep(decisions, ev_cmds, {}, [clear_alarm("grid", "within the grid limits")])
    left = excess
    if direction == "import":
        shed, left = shed_ev(excess, ev_next, ev_min)
        for cid, w in shed.items():
            if w < ev_next[cid] - 1e-6:
                ch = config.device(cid)
                a = evpolicy.amps_for(w, ch) if w > 0 else 0.0
                ev_cmds[cid] = EvCommand(cid, a, evpolicy.power_for(a, ch), "grid",
                                         f"import {pred:.0f} W over limit {g.import_limit_w:.0f} W")
    sps = {d.device: d.setpoint_w for d in decisions}
    room = {}
    for d in decisions:
        if d.device not in windows:
            continue  # idled for stale inputs: not ours to move
        w = windows[d.device]
        res = w.layers["reserve"]
        wlo, whi = max(w.lo_w, res.min_w), min(w.hi_w, res.max_w)
        room[d.device] = max(whi - d.setpoint_w, 0.0) if direction == "import" else max(d.setpoint_w - wlo, 0.0)
    if left > 0 and room:
        shift, left = battery_shift(left, {k: sps[k] for k in room}, room)
        out = []
        for d in decisions:
            dw = shift.get(d.device, 0.0)
            if dw <= 0:
                out.append(d)
                continue
            w = windows[d.device]
            why = f"{direction} {pred:.0f} W beyond the grid limit"
            layers = {**w.layers, "grid": Proposal("grid", None, min_w=d.setpoint_w + dw, reason=why)
                      if direction == "import" else Proposal("grid", None, max_w=d.setpoint_w - dw, reason=why)}
            out.append(compose(d.device, w.lo_w, w.hi_w, layers))
        decisions = out
    pv_limits: dict[str, float] = {}
    if left > 0 and direction == "export":
        pvs = {}
        for p in config.devices_of("pv"):
            pw = image.reading(p.id).value("power_w")
            if math.isfinite(pw):
                pvs[p.id] = max(pw, 0.0)
        cut, left = battery_shift(left, pvs, pvs)
        pv_limits = {k: max(pvs[k] - cut[k], 0.0) for k in pvs if cut[k] > 0}
    if left > 1.0:
        change = raise_alarm("grid", f"{direction} limit cannot be held: {left:.0f} W left after "
                             "EV, battery and PV measures")
    else:
        change = clear_alarm("grid", f"{direction} held within the limit")
    return GridStep(decisions, ev_cmds, pv_limits, [change])
