"""EV charging in the control loop: sessions from charger readings, current limits from the plan.

A charger whose snapshot says a car is connected (``plugged`` = 1 or IEC 61851 state B, C or
D) has a session. Chargers do not report what the car needs or when it leaves, so a fixed,
config-free policy stands in for it:

* need :data:`DEFAULT_NEED_WH` (15 kWh, ~90 km) per session, minus what the charger has
  delivered in this session (``session_energy_wh``); a car that is full simply stops drawing,
  so "15 kWh or until full" needs no SoC reading;
* departure at the next :data:`DEPARTURE_LOCAL` (07:30 site time) after plug-in, or plug-in
  + :data:`MIN_STAY_H` (8 h) if that 07:30 is sooner (a car plugged in at 06:00 is not
  assumed to leave at 07:30).

These defaults are an :class:`EvPolicy`; a caller that knows better (a scenario with known
stays) passes its own to the controller (``Controller.ev_policy``). What a driver (or the
operator, or an OCPP 2.0.1 station) says a car needs — energy and departure, per charger —
overrides the guess for that plug-in (:mod:`vpp.control.ev_needs`, ``needs`` below).

The plug-in time is the first control step that saw the car (remembered per charger in
:class:`EvPlug` until it is unplugged), so the departure does not drift between re-plans.

The plan's EV power becomes a current limit ``A = W / (V × phases)`` [A] with the charger's
rated voltage and phases, clamped to ``min_current_a … max_current_a``; below half the
minimum current the charger is paused (0 A).
"""
from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import optimizer
from vpp.config import Device, SiteConfig
from vpp.control.ev_needs import EvNeed
from vpp.control.freshness import STALE_INPUT_S
from vpp.control.image import ProcessImage, read_image
from vpp.control.problem import Plan, plan_slot

#: Energy a car is assumed to want per session [Wh].
DEFAULT_NEED_WH = 15_000.0
#: Assumed departure time, site local.
DEPARTURE_LOCAL = time(7, 30)
#: Shortest assumed stay [h].
MIN_STAY_H = 8.0
#: IEC 61851 states (A=1 … F=6) with a car connected: B (connected), C, D (charging).
CONNECTED_STATES = (2.0, 3.0, 4.0)
#: Minimum charging current of IEC 61851 AC charging when the rating does not say [A].
DEFAULT_MIN_CURRENT_A = 6.0


@dataclass(frozen=True)
class EvPolicy:
    """What a connected car is assumed to want: ``need_wh`` [Wh] per session, leaving at the
    next ``departure_local`` (site time) but not before ``min_stay_h`` [h] after plug-in."""

    need_wh: float = DEFAULT_NEED_WH
    departure_local: time = DEPARTURE_LOCAL
    min_stay_h: float = MIN_STAY_H


@dataclass
class EvPlug:
    """A car seen plugged into ``charger_id`` since ``plugged_at``, assumed to leave at
    ``departure`` (both UTC)."""

    charger_id: str
    plugged_at: datetime
    departure: datetime


def connected(values: dict[str, float]) -> bool:
    """True if a charger's readings say a car is connected (``plugged`` or IEC state B–D)."""
    p = values.get("plugged")
    if p is not None and math.isfinite(p):
        return p >= 0.5
    s = values.get("state")
    return s is not None and any(abs(s - c) < 0.5 for c in CONNECTED_STATES)


def departure_for(plugged_at: datetime, timezone: str, policy: EvPolicy = EvPolicy()) -> datetime:
    """Assumed departure (UTC-aware) of a car plugged in at ``plugged_at`` (see module doc)."""
    tz = ZoneInfo(timezone)
    local = plugged_at.astimezone(tz)
    dep = datetime.combine(local.date(), policy.departure_local, tzinfo=tz)
    if dep <= local:
        dep = datetime.combine(local.date() + timedelta(days=1), policy.departure_local, tzinfo=tz)
    earliest = plugged_at + timedelta(hours=policy.min_stay_h)
    return max(dep, earliest)


def power_window_w(charger: Device) -> tuple[float, float]:
    """(min, max) charging power [W] of ``charger`` when not paused."""
    r = charger.ratings
    vph = r.voltage_v * r.phases
    lo_a = r.min_current_a if r.min_current_a is not None else DEFAULT_MIN_CURRENT_A
    hi = (r.max_current_a or 32.0) * vph
    if r.power_w:
        hi = min(hi, r.power_w)
    return min(lo_a * vph, hi), hi


def session(plug: EvPlug, horizon: optimizer.Horizon, delivered_wh: float, charger: Device,
            policy: EvPolicy = EvPolicy()) -> optimizer.EvSession:
    """Optimiser session from now (slot 0) to the assumed departure slot (at least one slot)."""
    lo, hi = power_window_w(charger)
    dep_s = (plug.departure - horizon.start).total_seconds()
    dep_slot = max(1, min(horizon.n, math.ceil(dep_s / horizon.slot_s)))
    need = max(policy.need_wh - max(delivered_wh, 0.0), 0.0)
    return optimizer.EvSession(plug.charger_id, 0, dep_slot, need, min_w=lo, max_w=hi)


def amps_for(power_w: float, charger: Device) -> float:
    """Current limit [A] delivering about ``power_w`` [W]: clamped to the rated
    ``min_current_a … max_current_a``, 0 (pause) below half the minimum current."""
    r = charger.ratings
    lo = r.min_current_a if r.min_current_a is not None else DEFAULT_MIN_CURRENT_A
    hi = r.max_current_a or 32.0
    if r.power_w:
        hi = min(hi, r.power_w / (r.voltage_v * r.phases))
    a = max(power_w, 0.0) / (r.voltage_v * r.phases) if math.isfinite(power_w) else 0.0
    if a < 0.5 * lo:
        return 0.0
    return float(min(max(a, lo), hi))


def power_for(amps: float, charger: Device) -> float:
    """Charging power [W] at current limit ``amps`` [A] (the car may draw less)."""
    r = charger.ratings
    return amps * r.voltage_v * r.phases


# --------------------------------------------------------------- the loop's EV step (over the image)

@dataclass(frozen=True)
class EvCommand:
    """This step's current limit for one charger: ``amps`` [A] (0 pauses), the power it
    allows ``power_w`` [W], where it came from (``plan``, ``default``, ``grid``) and why."""

    charger: str
    amps: float
    power_w: float
    source: str
    reason: str = ""


def command(charger: Device, power_w: float, source: str, reason: str) -> EvCommand:
    """The :class:`EvCommand` that lets ``charger`` draw about ``power_w`` [W]."""
    a = amps_for(power_w, charger)
    return EvCommand(charger.id, a, power_for(a, charger), source, reason)


def ev_sessions(image: ProcessImage, chargers: list[Device], horizon: optimizer.Horizon,
                plugs: Mapping[str, EvPlug], timezone: str, policy: EvPolicy = EvPolicy(),
                needs: Mapping[str, EvNeed] | None = None
                ) -> tuple[list[optimizer.EvSession], dict[str, EvPlug]]:
    """One optimiser session per charger with a car connected (usable reading), and the plugs
    known after this step: a car seen for the first time gets its plug-in time (``image.at``)
    and assumed departure, an unplugged car is forgotten, a charger without a usable reading
    keeps what was known (and gets no session). A charger's entry in ``needs`` replaces the
    policy's energy and departure (each where given) for its session."""
    now = image.at
    known = dict(plugs)
    out = []
    for c in chargers:
        snap, _ = image.snapshot(c.id)
        if snap is None:
            continue
        if not connected(snap.values):
            known.pop(c.id, None)
            continue
        plug = known.get(c.id)
        if plug is None:
            plug = known[c.id] = EvPlug(c.id, now, departure_for(now, timezone, policy))
        need = needs.get(c.id) if needs else None
        own = policy
        if need is not None:
            if need.departure is not None:
                plug = known[c.id] = replace(plug, departure=need.departure)
            if need.energy_wh is not None:
                own = replace(policy, need_wh=need.energy_wh)
        if plug.departure <= horizon.start:
            continue  # overstayed the assumed departure: the default limit applies
        delivered = snap.values.get("session_energy_wh", 0.0)
        out.append(session(plug, horizon, delivered if math.isfinite(delivered) else 0.0, c, own))
    return out, known


def ev_commands(image: ProcessImage, chargers: list[Device], plan: Plan | None, plugs: Mapping[str, EvPlug],
                stale_plan_s: float) -> dict[str, EvCommand]:
    """Current limit per charger with a usable reading: the plan's EV power for this slot,
    or the full current when the plan has none for it (no plan, stale, car arrived after
    planning: charge now; the grid limit still applies)."""
    k, why = plan_slot(plan, image.at, stale_plan_s)
    out: dict[str, EvCommand] = {}
    for c in chargers:
        if image.reading(c.id).snap is None:
            continue
        if not why and c.id in plan.schedule.ev_w and c.id in plugs:
            w = float(plan.schedule.ev_w[c.id][k])
            out[c.id] = command(c, w, "plan", f"slot {k}: {w:.0f} W")
        else:
            out[c.id] = command(c, power_window_w(c)[1], "default", why or "no planned session: full current")
    return out


def unplanned_cars(image: ProcessImage, chargers: list[Device], planned: Collection[str],
                   tried: Collection[str]) -> tuple[list[str], list[str]]:
    """``(chargers with a car the plan has no session for and no re-plan was tried for yet,
    chargers whose car has left)`` among those with a usable reading."""
    new, left = [], []
    for c in chargers:
        snap, _ = image.snapshot(c.id)
        if snap is None:
            continue
        if not connected(snap.values):
            left.append(c.id)
        elif c.id not in planned and c.id not in tried:
            new.append(c.id)
    return new, left


def stored_sessions(config: SiteConfig, store: Any, at: datetime, horizon: optimizer.Horizon,
                    policy: EvPolicy = EvPolicy()) -> list[optimizer.EvSession]:
    """Sessions of the cars the store's latest charger readings show connected at ``at``
    (usable as :func:`vpp.control.freshness.usable` says, ``STALE_INPUT_S``), as a plan made
    without a fleet sees them (``vpp plan``, bids); none without a store or chargers."""
    chargers = config.devices_of("ev_charger")
    if store is None or not chargers:
        return []
    image = read_image(config, at, store=store, max_age_s=STALE_INPUT_S, kinds=("ev_charger",))
    return ev_sessions(image, chargers, horizon, {}, config.site.timezone, policy)[0]
