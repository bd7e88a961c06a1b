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
stays, a future booking API) passes its own to the controller (``Controller.ev_policy``).

The plug-in time is the first control step that saw the car (remembered per charger in
:class:`EvPlug` until it is unplugged), so the departure does not drift between re-plans.

The plan's EV power becomes a current limit ``A = W / (V × phases)`` [A] with the charger's
rated voltage and phases, clamped to ``min_current_a … max_current_a``; below half the
minimum current the charger is paused (0 A).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import optimizer
from vpp.config import Device

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
