"""Disaster reserve: the floor, storm mode and the controller's reserve state machine.

The floor [fraction of usable capacity] is the larger of ``floor_pct / 100`` and the SoC that
still carries the battery's share of the critical load for ``autonomy_h`` in *usable* energy
(:func:`floor_sizing`: above ``soc_min``, after discharge losses and the inverter's standby
draw), raised by storm mode toward its target by its deadline. The
state machine is the controller's lock on it (the optimiser's floor constraint is the other):
outside a grid outage it never lets a setpoint discharge the battery below the floor.

States (OpenEMS-style hysteresis, ``h`` = hysteresis fraction)::

    NORMAL ──soc ≤ floor──► HOLD ──soc < floor − h──► FORCE_CHARGE
      ▲                      │  ▲                          │
      └───soc ≥ floor + h────┘  └────────soc ≥ floor───────┘
    any ──grid outage──► OUTAGE ──grid back──► (NORMAL | HOLD | FORCE_CHARGE by SoC)
"""
from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Protocol

import numpy as np

from vpp.config import Device, OutageDetection, Reserve, SiteConfig
from vpp.control.outage import Sample, classify


class BatteryRatings(Protocol):
    """The battery ratings the floor needs (:class:`vpp.config.Ratings` has them)."""

    capacity_wh: float | None
    soc_min: float
    soc_max: float
    discharge_efficiency: float


@dataclass(frozen=True)
class FloorSizing:
    """How one battery's base floor was sized (:func:`floor_sizing`).

    ``floor`` [fraction] is the one in force (capped at ``soc_max``); ``required`` [fraction]
    the one the autonomy rule asks for (may exceed ``soc_max`` or 1: the battery is too
    small); ``capped`` says ``required > soc_max``; ``load_w`` [W] is the AC load the battery
    carries for ``autonomy_h`` (its critical share plus its inverter's standby) and
    ``need_wh`` [Wh] that load × ``autonomy_h``."""

    floor: float
    required: float
    capped: bool
    load_w: float
    need_wh: float


def floor_sizing(reserve: Reserve, ratings: BatteryRatings, share: float = 1.0) -> FloorSizing:
    """Size one battery's base floor in usable energy.

    The autonomy rule asks that the energy the battery can still deliver at the floor carries
    its ``share`` [0..1] of ``reserve.critical_load_w`` [W] for ``reserve.autonomy_h`` [h]::

        (floor − soc_min) × capacity_wh × discharge_efficiency − standby_w × autonomy_h
            ≥ share × critical_load_w × autonomy_h

    so ``floor = soc_min + (share × critical_load_w + standby_w) × autonomy_h /
    (capacity_wh × discharge_efficiency)``. ``standby_w`` is ``reserve.inverter_standby_w``
    (per battery inverter; only counted when there is a critical load to carry). The base
    floor is the larger of that and ``floor_pct / 100``, capped at ``soc_max`` (a floor the
    battery cannot hold would force-charge forever; ``capped`` says so)."""
    cap = float(ratings.capacity_wh or 0.0)
    crit = max(share, 0.0) * reserve.critical_load_w
    load_w = crit + reserve.inverter_standby_w if crit > 0 else 0.0
    need_wh = load_w * reserve.autonomy_h
    required = 0.0
    if need_wh > 0:
        required = ratings.soc_min + need_wh / (cap * ratings.discharge_efficiency) if cap > 0 else math.inf
    floor = max(reserve.floor_pct / 100.0, required)
    return FloorSizing(float(min(floor, ratings.soc_max)), float(required), floor > ratings.soc_max + 1e-12,
                       float(load_w), float(need_wh))


def base_floor(reserve: Reserve, ratings: BatteryRatings, share: float = 1.0) -> float:
    """Base reserve floor [fraction] of a battery with ``ratings`` carrying ``share`` [0..1]
    of the site's critical load: :attr:`FloorSizing.floor` of :func:`floor_sizing`. THE one
    floor formula of the service."""
    return floor_sizing(reserve, ratings, share).floor


def capacity_shares(batteries: Sequence[Device]) -> dict[str, float]:
    """Share [0..1] of the site's critical load each battery carries: its usable capacity
    over the site's (the critical load is one site load, not one per battery)."""
    caps = {b.id: float(b.ratings.capacity_wh or 0.0) for b in batteries}
    tot = sum(caps.values())
    return {k: (c / tot if tot > 0 else 1.0 / len(caps)) for k, c in caps.items()}


def capped_floor_warnings(config: SiteConfig, reserve: Reserve | None = None) -> list[str]:
    """One sentence per battery whose autonomy floor is capped at ``soc_max`` (it cannot
    carry its share of the critical load for ``autonomy_h``); logged by the controller at
    start and printed by ``vpp reserve check``."""
    reserve = reserve or config.reserve
    bats = config.devices_of("battery")
    shares = capacity_shares(bats)
    out = []
    for b in bats:
        f = floor_sizing(reserve, b.ratings, shares[b.id])
        if f.capped:
            out.append(f"{b.id}: the autonomy floor {100 * f.required:.1f} % is capped at soc_max "
                       f"{100 * b.ratings.soc_max:.0f} %: {reserve.autonomy_h:g} h of "
                       f"{f.load_w:.0f} W are not covered")
    return out


@dataclass
class StormMode:
    """Manual (or warning-triggered) storm mode: raise the floor to ``target`` [fraction] by
    ``deadline``, ramping linearly over the ``lead`` before it (or from activation if later)."""

    active: bool = False
    target: float = 0.9
    deadline: datetime | None = None
    activated_at: datetime | None = None
    lead: timedelta = timedelta(hours=12)
    reason: str = ""

    def on(self, now: datetime, target: float, deadline: datetime, reason: str = "manual") -> None:
        self.active, self.target, self.deadline, self.activated_at = True, target, deadline, now
        self.reason = reason

    def off(self) -> None:
        self.active, self.deadline, self.activated_at, self.reason = False, None, None, ""


def floor_trajectory(base: float, times: list[datetime] | np.ndarray, storm: StormMode | None) -> np.ndarray:
    """Reserve floor [fraction] at each of ``times`` (tz-aware datetimes).

    Without an active storm it is ``base``. With one it is ``base`` until
    ``ramp_start = max(activated_at, deadline − lead)``, rises linearly to ``target`` at the
    deadline and stays there while storm mode lasts; never below ``base``.
    """
    n = len(times)
    out = np.full(n, float(base))
    if storm is None or not storm.active or storm.deadline is None or n == 0:
        return out
    t = np.array([x.timestamp() for x in times], dtype=float)
    d = storm.deadline.timestamp()
    start = d - storm.lead.total_seconds()
    if storm.activated_at is not None:
        start = max(start, storm.activated_at.timestamp())
    frac = np.clip((t - start) / (d - start), 0.0, 1.0) if d > start else (t >= start).astype(float)
    return np.maximum(out, base + frac * (storm.target - base))


def window_floor(base: float | np.ndarray, times: Sequence[datetime], target: float,
                 windows: Iterable[tuple[datetime, datetime | None]], lead: timedelta) -> np.ndarray:
    """Reserve floor [fraction] at ``times`` raised for warning windows ``(start, end)``
    (``end`` None: open-ended): from ``base`` (scalar or per time) linearly up to ``target``
    over ``lead`` before each window's start, held to its end, then back to ``base``; never
    below ``base``."""
    t = np.array([x.timestamp() for x in times], dtype=float)
    base = np.broadcast_to(np.asarray(base, dtype=float), t.shape)
    out = base.copy()
    for start, end in windows:
        d = start.timestamp()
        a = d - lead.total_seconds()  # start of the ramp
        e = np.inf if end is None else end.timestamp()
        frac = np.clip((t - a) / max(d - a, 1.0), 0.0, 1.0)
        frac[t >= e] = 0.0
        out = np.maximum(out, base + frac * np.maximum(target - base, 0.0))
    return out


def battery_floor(reserve: Reserve, battery: Device, times: Sequence[datetime], storm: StormMode | None,
                  share: float = 1.0) -> np.ndarray:
    """Reserve floor [fraction] of ``battery`` carrying ``share`` of the critical load
    (:func:`capacity_shares`) at ``times``: its :func:`base_floor` raised by storm mode
    (:func:`floor_trajectory`)."""
    return floor_trajectory(base_floor(reserve, battery.ratings, share), times, storm)


def battery_floors(config: SiteConfig, times: Sequence[datetime], storm: StormMode | None) -> dict[str, np.ndarray]:
    """:func:`battery_floor` of every battery of ``config`` at ``times`` [fraction]."""
    bats = config.devices_of("battery")
    shares = capacity_shares(bats)
    return {b.id: battery_floor(config.reserve, b, times, storm, shares[b.id]) for b in bats}


class ReserveState(str, enum.Enum):
    NORMAL = "normal"
    HOLD = "hold"                  #: at the floor: no discharge
    FORCE_CHARGE = "force_charge"  #: below floor − hysteresis: charge toward the floor
    OUTAGE = "outage"              #: grid outage: floor unlocked, battery serves the site


@dataclass(frozen=True)
class ReserveLimits:
    """What the reserve allows for one battery in this control step: ``min_w ≤ p ≤ max_w``
    [W] (> 0 discharge). In FORCE_CHARGE ``max_w < 0`` (a charge is required)."""

    state: ReserveState
    min_w: float
    max_w: float
    floor: float
    reason: str


def lease_discharge_cap_w(soc: float, floor: float, capacity_wh: float, discharge_efficiency: float,
                          horizon_s: float) -> float:
    """Largest discharge [W] (AC) that, held for ``horizon_s`` [s] from the moment ``soc``
    [fraction] was read, keeps the battery at or above ``floor`` [fraction]: the stored
    headroom ``(soc − floor)⁺ × capacity_wh`` times ``discharge_efficiency`` spread over the
    horizon. ``horizon_s`` ≤ 0 or not finite (a setpoint that never reverts): 0 W."""
    if not (math.isfinite(horizon_s) and horizon_s > 0):
        return 0.0
    return max(soc - floor, 0.0) * capacity_wh * discharge_efficiency * 3600.0 / horizon_s


@dataclass(frozen=True)
class Transition:
    at: datetime
    old: ReserveState
    new: ReserveState
    reason: str


@dataclass
class ReserveStateMachine:
    """Reserve lock for one battery.

    Parameters
    ----------
    capacity_wh : float
        Usable capacity [Wh].
    max_charge_w, max_discharge_w : float
        Rated AC power [W], >= 0.
    hysteresis : float
        [fraction] release above the floor / force-charge below it.
    step_s : float
        Control step [s].
    lease_s : float
        Setpoint lease [s] (``optimiser.lease_s``): a written setpoint lasts this long if
        renewals stop. In NORMAL the discharge is capped so that discharging at the cap from
        the moment the SoC was read until the lease expires (``age_s`` + ``max(step_s,
        lease_s)``) cannot cross the floor. 0: one control step.
    charge_efficiency, discharge_efficiency : float
        One-way efficiencies [-] (stored energy per AC energy in; AC energy out per stored
        energy), named as in the config's battery ratings.
    force_charge_h : float
        Target time [h] to climb back to the floor in FORCE_CHARGE (power ≥ 10 % rated).
    """

    capacity_wh: float
    max_charge_w: float
    max_discharge_w: float
    hysteresis: float = 0.02
    step_s: float = 60.0
    lease_s: float = 0.0
    discharge_efficiency: float = 0.95
    charge_efficiency: float = 0.95
    force_charge_h: float = 1.0
    state: ReserveState = ReserveState.NORMAL
    history: list[Transition] = field(default_factory=list)

    @classmethod
    def for_battery(cls, battery: Device, reserve: Reserve, step_s: float,
                    lease_s: float = 0.0) -> ReserveStateMachine:
        """The lock for ``battery`` with ``reserve.hysteresis_pct``, control step ``step_s`` [s]
        and setpoint lease ``lease_s`` [s]."""
        r = battery.ratings
        return cls(capacity_wh=r.capacity_wh, max_charge_w=r.max_charge_w, max_discharge_w=r.max_discharge_w,
                   hysteresis=reserve.hysteresis_pct / 100.0, step_s=step_s, lease_s=lease_s,
                   discharge_efficiency=r.discharge_efficiency, charge_efficiency=r.charge_efficiency)

    def _go(self, new: ReserveState, now: datetime, reason: str) -> None:
        if new is not self.state:
            self.history.append(Transition(now, self.state, new, reason))
            del self.history[:-100]
            self.state = new

    def step(self, now: datetime, soc: float, floor: float, grid_ok: bool = True,
             age_s: float = 0.0) -> ReserveLimits:
        """Advance the state from measured ``soc`` [fraction], ``floor`` [fraction] and grid
        status, and return this step's limits (``age_s``: age [s] of the SoC reading)."""
        h = self.hysteresis
        s = self.state
        if not grid_ok:
            self._go(ReserveState.OUTAGE, now, "grid outage detected: floor unlocked")
        elif s is ReserveState.OUTAGE:
            if soc < floor - h:
                self._go(ReserveState.FORCE_CHARGE, now, f"grid restored, soc {soc:.3f} < floor {floor:.3f} − {h:.3f}")
            elif soc <= floor:
                self._go(ReserveState.HOLD, now, f"grid restored, soc {soc:.3f} ≤ floor {floor:.3f}")
            else:
                self._go(ReserveState.NORMAL, now, "grid restored")
        elif s is ReserveState.NORMAL:
            if soc < floor - h:
                self._go(ReserveState.FORCE_CHARGE, now, f"soc {soc:.3f} < floor {floor:.3f} − {h:.3f}")
            elif soc <= floor:
                self._go(ReserveState.HOLD, now, f"soc {soc:.3f} reached floor {floor:.3f}")
        elif s is ReserveState.HOLD:
            if soc < floor - h:
                self._go(ReserveState.FORCE_CHARGE, now, f"soc {soc:.3f} < floor {floor:.3f} − {h:.3f}")
            elif soc >= floor + h:
                self._go(ReserveState.NORMAL, now, f"soc {soc:.3f} ≥ floor {floor:.3f} + {h:.3f}")
        elif s is ReserveState.FORCE_CHARGE:
            if soc >= floor + h:
                self._go(ReserveState.NORMAL, now, f"soc {soc:.3f} ≥ floor {floor:.3f} + {h:.3f}")
            elif soc >= floor:
                self._go(ReserveState.HOLD, now, f"soc {soc:.3f} back at floor {floor:.3f}")
        return self.limits(soc, floor, age_s)

    @property
    def horizon_s(self) -> float:
        """How long [s] a setpoint written now may act if renewals stop: the lease (at least
        one control step)."""
        return max(self.step_s, self.lease_s)

    def limits(self, soc: float, floor: float, age_s: float = 0.0) -> ReserveLimits:
        """Power window [W] for the current state (see :class:`ReserveLimits`); ``age_s`` [s]
        is the age of the ``soc`` reading (negative ages count as 0)."""
        lo, hi = -self.max_charge_w, self.max_discharge_w
        st = self.state
        if st is ReserveState.OUTAGE:
            return ReserveLimits(st, lo, hi, floor, "outage: floor unlocked")
        if st is ReserveState.HOLD:
            return ReserveLimits(st, lo, 0.0, floor, f"hold at floor {floor:.3f}: discharge capped to 0 W")
        if st is ReserveState.FORCE_CHARGE:
            need_wh = max(floor - soc, 0.0) * self.capacity_wh / self.charge_efficiency
            p = float(np.clip(need_wh / self.force_charge_h, 0.1 * self.max_charge_w, self.max_charge_w))
            return ReserveLimits(st, lo, -p, floor, f"force charge ≥ {p:.0f} W toward floor {floor:.3f}")
        cap = min(hi, lease_discharge_cap_w(soc, floor, self.capacity_wh, self.discharge_efficiency,
                                            self.horizon_s + max(age_s, 0.0)))
        why = "" if cap >= hi else f"discharge capped to {cap:.0f} W by floor {floor:.3f}"
        return ReserveLimits(st, lo, cap, floor, why)


def grid_outage(voltage_v: float | None, frequency_hz: float | None, nominal_v: float | None = None,
                available: bool = True) -> bool:
    """True if this *one* grid-meter sample reads a dead grid: voltage and frequency both dead
    (:func:`vpp.control.outage.classify` with the default :class:`vpp.config.OutageDetection`).
    Implausible, inconsistent, missing or unavailable readings are not an outage. The
    controller never acts on one sample: it uses :class:`vpp.control.outage.OutageDetector`.
    ``nominal_v`` is accepted for compatibility and not used."""
    if not available:
        return False
    kind, _ = classify({"voltage_v": voltage_v, "frequency_hz": frequency_hz}, OutageDetection())
    return kind is Sample.DEAD


def capacity_weighted(values: Mapping[str, float], capacities_wh: Mapping[str, float]) -> float:
    """Site value of a per-battery fraction (SoC, floor) weighted by usable capacity [fraction]:
    ``Σ value_b × capacity_b / Σ capacity_b`` over the batteries in ``values`` whose value is
    finite; NaN when none is. The one capacity-weighting rule of the service."""
    num = den = 0.0
    for k, v in values.items():
        if v is None or not np.isfinite(v):
            continue
        c = float(capacities_wh[k])
        num += float(v) * c
        den += c
    return num / den if den > 0 else float("nan")
