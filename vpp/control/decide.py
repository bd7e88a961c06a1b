"""One dispatch step's battery decisions, from the process image, the plan and the loop's state.

Recipe per battery (:func:`decide_batteries`)::

    usable SoC? ──no──► idle (alarm inputs:<id>)
        │ yes
    reserve state machine (floor now, grid state) ─► reserve window (outage: serve the site)
    override ─► dispatch ─► plan (fresh, in horizon) ─► fallback rule (alarm says why)
        └─► compose() within what the device accepts at its SoC

Inputs are the :class:`~vpp.control.image.ProcessImage`, the :class:`~vpp.control.problem.Plan`
and the loop's state passed in; outputs are the decisions, each composed battery's window (the
grid-limit step composes again from it) and the alarm changes, applied by the caller. The
one side effect is the reserve state machines' own step: they *are* the state of the lock.

Units: W (> 0 discharge), SoC and floor [fraction].
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from vpp.config import Device
from vpp.control.alarms import AlarmChange, clear_alarm, raise_alarm
from vpp.control.bounds import Decision, Override, Proposal, compose
from vpp.control.fallback import fallback_proposal, self_consumption_w, split_by_rating
from vpp.control.image import ProcessImage
from vpp.control.problem import Plan, plan_slot
from vpp.control.reserve import ReserveStateMachine


@dataclass(frozen=True)
class Window:
    """What one battery's decision was composed from: the window the device accepts at its
    SoC ``[lo_w, hi_w]`` [W] and the layers (:data:`vpp.control.bounds.PRIORITY` names)."""

    lo_w: float
    hi_w: float
    layers: Mapping[str, Proposal | None]


@dataclass(frozen=True)
class BatteryStep:
    """Result of :func:`decide_batteries`: one decision per battery (config order), the
    :class:`Window` of every battery that was composed (not idled for its inputs), alarm
    changes in the order they arose, and the overrides that have expired."""

    decisions: list[Decision]
    windows: dict[str, Window] = field(default_factory=dict)
    alarms: list[AlarmChange] = field(default_factory=list)
    expired_overrides: list[str] = field(default_factory=list)


def plan_proposal(plan: Plan | None, device_id: str, now: datetime, stale_plan_s: float) -> tuple[Proposal | None, str]:
    """The plan's setpoint [W] for battery ``device_id`` at ``now``, or why there is none usable."""
    k, why = plan_slot(plan, now, stale_plan_s)
    if k < 0:
        return None, why
    if device_id not in plan.schedule.battery_w:
        return None, f"plan has no setpoint for {device_id}"
    return Proposal("plan", float(plan.schedule.battery_w[device_id][k]), reason=f"slot {k}"), ""


def site_target_w(image: ProcessImage, batteries: list[Device]) -> float | None:
    """Site-wide self-consumption setpoint [W] (> 0 discharge) from the grid meter and every
    battery's power; None unless all of them are usable."""
    meter = image.meter_reading.snap
    snaps = [image.reading(b.id).snap for b in batteries]
    if meter is None or any(s is None for s in snaps):
        return None
    bat_sum = sum(s.values.get("power_w", 0.0) for s in snaps)
    return self_consumption_w(meter.values.get("power_w", 0.0), bat_sum)


def decide_batteries(image: ProcessImage, batteries: list[Device], plan: Plan | None, *,
                     reserve: Mapping[str, ReserveStateMachine], floors: Mapping[str, float],
                     overrides: Mapping[str, Override], dispatch: Mapping[str, Proposal],
                     stale_plan_s: float, mono: float | None = None) -> BatteryStep:
    """Compose this step's decision per battery (see the module docstring).

    Parameters
    ----------
    reserve : mapping
        Reserve state machine per battery (stepped here).
    floors : mapping
        Reserve floor [fraction] per battery at ``image.at`` (storm mode included).
    overrides, dispatch : mapping
        Operator overrides and the aggregator's dispatch proposals per battery.
    stale_plan_s : float
        A plan older than this [s] is not followed.
    mono : float or None
        The clock's monotonic seconds [s]: overrides with a monotonic expiry end by it.
    """
    now = image.at
    site_target = site_target_w(image, batteries)
    shares = dict(zip([b.id for b in batteries], split_by_rating(site_target or 0.0, [
        (b.ratings.max_charge_w, b.ratings.max_discharge_w) for b in batteries]) if batteries else []))
    meter_why = image.meter_reading.why
    out, windows, alarms, expired = [], {}, [], []
    for b in batteries:
        r = b.ratings
        snap, why = image.snapshot(b.id)
        if snap is None or not math.isfinite(snap.values.get("soc", math.nan)):
            alarms.append(raise_alarm(f"inputs:{b.id}", f"{b.id}: {why or 'no SoC'}; idling"))
            out.append(Decision(b.id, 0.0, "inputs-stale", (why or "no SoC",), 0.0, 0.0))
            continue
        alarms.append(clear_alarm(f"inputs:{b.id}", "fresh reading"))
        soc = snap.values["soc"]
        # the cap near the floor covers the reading's age too: the battery kept discharging since
        age_s = max((now - snap.ts).total_seconds(), 0.0)
        lim = reserve[b.id].step(now, soc, floors[b.id], image.grid_ok, age_s)
        res = Proposal("reserve", None, lim.min_w, lim.max_w, f"{lim.state.value}: {lim.reason}".rstrip(": "))
        if not image.grid_ok:
            # islanded: keep serving the site (the inverter's island mode decides anyway)
            res = Proposal("reserve", shares.get(b.id, 0.0), lim.min_w, lim.max_w, "outage: serve the site")
        layers: dict[str, Proposal | None] = {"reserve": res}
        ov = overrides.get(b.id)
        if ov is not None:
            layers["override"] = ov.proposal(now, mono)
            if not ov.active(now, mono):
                expired.append(b.id)
        layers["dispatch"] = dispatch.get(b.id)
        p, plan_why = plan_proposal(plan, b.id, now, stale_plan_s)
        layers["plan"] = p
        if p is None:
            if site_target is not None:
                layers["fallback"] = fallback_proposal(shares[b.id], plan_why)
            else:
                plan_why += f"; no fresh grid reading ({meter_why}): idling"
            alarms.append(raise_alarm("fallback", f"fallback rule engaged: {plan_why}"))
        else:
            alarms.append(clear_alarm("fallback", "plan in use"))
        # the device refuses to discharge at soc_min or charge at soc_max: say so here
        lo = 0.0 if soc >= r.soc_max else -r.max_charge_w
        hi = 0.0 if soc <= r.soc_min else r.max_discharge_w
        out.append(compose(b.id, lo, hi, layers))
        windows[b.id] = Window(lo, hi, layers)
    return BatteryStep(out, windows, alarms, expired)
