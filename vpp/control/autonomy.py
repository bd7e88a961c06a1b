"""Autonomy in an outage: how long the batteries carry the site's critical load, sized
(``vpp reserve check``) and live (API, dashboard, load shedding).

Energy is *usable* energy: above each battery's ``soc_min``, after its discharge efficiency
[Wh AC]. The load the batteries carry is the critical load plus every battery inverter's
standby draw (:attr:`vpp.config.Reserve.inverter_standby_w`), plus, live, the non-critical
load groups still switched on. PV is counted hour by hour: surplus charges the batteries up
to ``soc_max`` (what a full battery cannot take is curtailed).

Load shedding (:func:`shed_plan`): in an outage, non-critical groups are shed in priority order
(highest ``priority`` number first) once the critical-only autonomy falls below their threshold;
a shed group stays shed until the grid returns (no chatter at a threshold).
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from vpp.config import LoadGroup, Reserve, SiteConfig
from vpp.control.problem import OutageInputs
from vpp.control.reserve import base_floor, capacity_shares, floor_sizing

#: Clear-sky index of the pessimistic ("p10") PV day: heavy overcast / light snow. Where the
#: forecast has no PV p10 (``Forecast.pv_p10_w``: too little measured PV, slots beyond its
#: horizon, the 21 December sizing of ``vpp reserve check``) the clear-sky forecast scaled by
#: this stands in for the 10th percentile.
P10_CLEAR_SKY_INDEX = 0.15


def usable_wh(config: SiteConfig, socs: Mapping[str, float]) -> float:
    """Usable energy [Wh AC] of the batteries at ``socs`` [fraction] (NaN SoCs count 0)."""
    tot = 0.0
    for b in config.devices_of("battery"):
        s = socs.get(b.id, math.nan)
        if s is None or not math.isfinite(s):
            continue
        r = b.ratings
        tot += max(s - r.soc_min, 0.0) * float(r.capacity_wh) * r.discharge_efficiency
    return tot


def full_wh(config: SiteConfig) -> float:
    """Usable energy [Wh AC] with every battery at ``soc_max``."""
    return usable_wh(config, {b.id: b.ratings.soc_max for b in config.devices_of("battery")})


def standby_w(config: SiteConfig, reserve: Reserve | None = None) -> float:
    """Standby draw of the battery inverters [W] (counted only with a critical load)."""
    reserve = reserve or config.reserve
    return reserve.inverter_standby_w * len(config.devices_of("battery")) if reserve.critical_load_w > 0 else 0.0


def hours_served(start_wh: float, max_wh: float, load_w: float, pv_w: Sequence[float] | np.ndarray = (),
                 step_h: float = 1.0, limit_h: float = 240.0) -> float:
    """Hours [h] a store of ``start_wh`` (at most ``max_wh``) [Wh] carries ``load_w`` [W] with
    PV ``pv_w`` [W] per step of ``step_h`` [h] (then none), up to ``limit_h``."""
    if load_w <= 0:
        return limit_h
    e, t, k = float(start_wh), 0.0, 0
    pv = np.asarray(pv_w, dtype=float)
    while t < limit_h:
        p = float(pv[k]) if k < len(pv) else 0.0
        net = load_w - p  # > 0: the battery supplies it
        if net > 0 and e < net * step_h:
            return t + e / net
        e = min(e - net * step_h, max_wh)
        t += step_h
        k += 1
    return limit_h


def p10_pv_w(config: SiteConfig, start: datetime, hours: float, index: pd.DatetimeIndex | None = None,
             p10: pd.Series | None = None) -> pd.Series:
    """Pessimistic site PV [W] (hourly from ``start`` for ``hours``, or at the slots of
    ``index``): the forecast's PV p10 ``p10`` [W] (``Forecast.pv_p10_w``) where it covers a
    slot, else the clear-sky PV forecast (:func:`vpp.forecast.pv.forecast_pv` on
    :func:`vpp.forecast.weather.clear_sky_weather`) × :data:`P10_CLEAR_SKY_INDEX` (the
    stated fallback)."""
    from vpp.forecast.pv import forecast_pv
    from vpp.forecast.site import site_pv
    from vpp.forecast.weather import clear_sky_weather

    idx = index if index is not None else pd.date_range(pd.Timestamp(start), periods=max(int(math.ceil(hours)), 1),
                                                        freq="1h")
    if not config.pv_arrays:
        return pd.Series(0.0, index=idx)
    w = clear_sky_weather(config.site, idx)
    pv = site_pv(config, forecast_pv(config.pv_arrays, config.site, w))
    stand_in = (pv.reindex(idx).fillna(0.0) * P10_CLEAR_SKY_INDEX).clip(lower=0.0)
    if p10 is None or len(p10) == 0:
        return stand_in
    real = pd.to_numeric(p10, errors="coerce").sort_index()
    step = real.index[1] - real.index[0] if len(real) > 1 else pd.Timedelta("1h")
    real = real.reindex(idx, method="ffill", tolerance=step - pd.Timedelta("1ns"))  # a slot's value holds over it
    return real.where(np.isfinite(real) & (real >= 0), stand_in).astype(float)


def outage_inputs(config: SiteConfig, times: Sequence[datetime], on_groups: Sequence[str] = (),
                  reserve: Reserve | None = None, pv_p10: pd.Series | None = None) -> OutageInputs:
    """Inputs of an outage plan over the slots starting at ``times``: every slot islanded
    (when the grid returns is unknown: plan for the worst), the pessimistic PV
    (:func:`p10_pv_w`: the forecast's ``pv_p10``, else the stand-in) and the load the
    batteries carry now (critical + standby + the groups
    in ``on_groups``), flat. With the optimiser's unserved-load penalty the plan maximises
    the critical-load energy served, i.e. its hours."""
    reserve = reserve or config.reserve
    idx = pd.DatetimeIndex(pd.to_datetime(list(times), utc=True))
    if len(idx) > 1:
        idx.freq = pd.tseries.frequencies.to_offset(idx[1] - idx[0])
    pv = p10_pv_w(config, idx[0], 0, index=idx, p10=pv_p10).to_numpy()
    load = reserve.critical_load_w + standby_w(config, reserve) + sum(
        g.nominal_w for g in config.loads if not g.critical and g.id in set(on_groups))
    n = len(idx)
    return OutageInputs(np.ones(n, bool), pv, np.full(n, float(load)))


@dataclass(frozen=True)
class ReserveCheck:
    """Result of :func:`check_reserve` (all energies usable [Wh AC], powers [W], times [h])."""

    autonomy_h: float
    load_w: float
    critical_load_w: float
    standby_w: float
    floors: dict[str, float]
    required_floors: dict[str, float]
    capped: list[str]
    usable_at_floor_wh: float
    hours_no_pv: float
    hours_p10_pv: float
    p10_start: str
    pv_basis: str
    meets_no_pv: bool
    meets_p10_pv: bool
    floor_pct_needed: float | None
    capacity_kwh_needed: float | None

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def check_reserve(config: SiteConfig, p10_start: datetime | None = None) -> ReserveCheck:
    """Do the configured batteries carry the critical load for ``autonomy_h`` from the floor?

    Without PV and with the pessimistic PV (:func:`p10_pv_w`) of the ``autonomy_h`` from
    ``p10_start`` (default: the site's next 21 December, local midnight: the shortest days).
    If not, the floor [% of capacity, one for every battery] and, when no floor below
    ``soc_max`` suffices, the total battery capacity [kWh] (same ``soc_min``/``soc_max``/η
    as configured) that would carry it without PV."""
    from zoneinfo import ZoneInfo

    r = config.reserve
    bats = config.devices_of("battery")
    shares = capacity_shares(bats)
    floors = {b.id: base_floor(r, b.ratings, shares[b.id]) for b in bats}
    sizing = {b.id: floor_sizing(r, b.ratings, shares[b.id]) for b in bats}
    sb = standby_w(config)
    load = r.critical_load_w + sb
    at_floor = usable_wh(config, floors)
    h0 = hours_served(at_floor, full_wh(config), load, limit_h=max(r.autonomy_h * 2, 1.0))
    tz = ZoneInfo(config.site.timezone)
    if p10_start is None:
        now = datetime.now(tz)
        p10_start = datetime(now.year if (now.month, now.day) <= (12, 21) else now.year + 1, 12, 21, tzinfo=tz)
    pv = p10_pv_w(config, p10_start, max(r.autonomy_h * 2, 1.0))
    h10 = hours_served(at_floor, full_wh(config), load, pv.to_numpy(), limit_h=max(r.autonomy_h * 2, 1.0))
    ok0, ok10 = h0 >= r.autonomy_h - 1e-6, h10 >= r.autonomy_h - 1e-6
    floor_needed = cap_needed = None
    capped = [b.id for b in bats if sizing[b.id].capped]
    if not ok0 or capped:
        req = max(f.required for f in sizing.values()) if sizing else math.inf
        floor_needed = round(100 * req, 1) if math.isfinite(req) and req <= 1.0 else None
        span = [(b.ratings.soc_max - b.ratings.soc_min) * b.ratings.discharge_efficiency for b in bats]
        if span and min(span) > 0:
            cap_needed = round(load * r.autonomy_h / min(span) / 1000.0, 1)
    return ReserveCheck(
        autonomy_h=r.autonomy_h, load_w=load, critical_load_w=r.critical_load_w, standby_w=sb,
        floors={k: round(100 * v, 2) for k, v in floors.items()},
        required_floors={k: round(100 * v.required, 2) for k, v in sizing.items()},
        capped=capped, usable_at_floor_wh=round(at_floor, 1), hours_no_pv=round(h0, 2), hours_p10_pv=round(h10, 2),
        p10_start=p10_start.isoformat(),
        pv_basis=f"clear-sky PV forecast × {P10_CLEAR_SKY_INDEX} (pessimistic stand-in for p10) from {p10_start.date()}",
        meets_no_pv=ok0, meets_p10_pv=ok10, floor_pct_needed=floor_needed, capacity_kwh_needed=cap_needed)


# ---------------------------------------------------------------------------------- live
@dataclass(frozen=True)
class Autonomy:
    """Live autonomy: ``hours`` [h] the usable energy ``usable_wh`` [Wh] carries ``load_w`` [W]
    (critical + standby + non-critical groups on) from ``at``; ``until`` when it runs out;
    ``critical_hours`` [h] on the critical load (+ standby) alone."""

    at: datetime
    usable_wh: float
    load_w: float
    hours: float
    until: datetime | None
    critical_hours: float


def live_autonomy(config: SiteConfig, socs: Mapping[str, float], at: datetime,
                  on_groups: Sequence[str] = (), reserve: Reserve | None = None) -> Autonomy | None:
    """:class:`Autonomy` at ``at`` from battery ``socs`` (None when a SoC is unknown or there
    is no critical load to carry)."""
    reserve = reserve or config.reserve
    bats = config.devices_of("battery")
    if not bats or any(not math.isfinite(socs.get(b.id, math.nan)) for b in bats):
        return None
    crit = reserve.critical_load_w + standby_w(config, reserve)
    if crit <= 0:
        return None
    extra = sum(g.nominal_w for g in config.loads if not g.critical and g.id in set(on_groups))
    e = usable_wh(config, socs)
    h = e / (crit + extra)
    return Autonomy(at, e, crit + extra, h, at + timedelta(hours=min(h, 24 * 365)), e / crit)


# ---------------------------------------------------------------------------------- shedding
def shed_order(config: SiteConfig) -> list[LoadGroup]:
    """Non-critical groups in the order they are shed (highest ``priority`` number first)."""
    return sorted((g for g in config.loads if not g.critical), key=lambda g: (-g.priority, g.id))


def shed_threshold_h(config: SiteConfig, group: LoadGroup, reserve: Reserve | None = None) -> float:
    """Critical-only autonomy [h] below which ``group`` is shed (its ``shed_below_h`` or
    ``autonomy_h`` + ``island.shed_step_h`` × the number of groups shed after it)."""
    if group.shed_below_h is not None:
        return group.shed_below_h
    reserve = reserve or config.reserve
    order = [g.id for g in shed_order(config)]
    after = len(order) - 1 - order.index(group.id)
    return reserve.autonomy_h + config.island.shed_step_h * after


@dataclass
class LoadShedder:
    """The shed state of the site's load groups: ``shed`` maps a shed group to why, in the
    order shed (kept until the grid returns); ``history`` lists ``(time, group, on)``."""

    config: SiteConfig
    shed: dict[str, str] = field(default_factory=dict)
    history: list[tuple[datetime, str, bool]] = field(default_factory=list)

    def on_groups(self) -> list[str]:
        return [g.id for g in self.config.loads if g.id not in self.shed]

    def step(self, now: datetime, grid_ok: bool, autonomy: Autonomy | None,
             reserve: Reserve | None = None) -> dict[str, bool]:
        """Switch changes ``{group: on}`` for this step: shed in outage as the critical-only
        autonomy falls (unknown autonomy sheds every non-critical group: the safe side),
        restore everything once the grid is back."""
        changes: dict[str, bool] = {}
        if grid_ok:
            for gid in list(self.shed):
                del self.shed[gid]
                changes[gid] = True
        else:
            for g in shed_order(self.config):
                if g.id in self.shed:
                    continue
                th = shed_threshold_h(self.config, g, reserve)
                if autonomy is None:
                    self.shed[g.id] = "outage: autonomy unknown"
                elif autonomy.critical_hours < th:
                    self.shed[g.id] = f"outage: autonomy {autonomy.critical_hours:.1f} h < {th:g} h"
                else:
                    continue
                changes[g.id] = False
        for gid, on in changes.items():
            self.history.append((now, gid, on))
        del self.history[:-200]
        return changes
