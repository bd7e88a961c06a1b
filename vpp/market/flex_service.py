"""Flexibility for the API from the controller's current plan (``optimizer.flexibility``),
falling back to :class:`~vpp.market.flexibility.BatteryFlexibility` (present SoC only)
when there is no plan, the plan is stale (older than ``optimiser.stale_plan_s``) or the
window lies outside it. Plan slots offer what the plan can deliver for the product duration
``vpp.duration_s`` from any instant of the slot, with the energy margin above the floor taken
over that delivery only (later planned usage is re-planned; see ``optimizer.flexibility``),
minus what later awards held by the plan need.

:class:`FlexDetail` is what ``GET /api/v1/flexibility`` shows per 30-min slot. The
uncertainty band is a forecast-error proxy, not a statistical interval: the plan's
flexibility depends on the PV/load forecast, whose error grows with lead time, so
``band = kw × min(0.30, 0.05 + 0.02 · lead_h)`` (lead from the plan time; the SoC-only
fallback gets the maximum 0.30). Storm mode makes every slot unavailable (reason
``storm_mode``, ``reason_detail`` = the storm's human reason: the JMA warnings, or the
operator's): the reserve is being built and nothing is offered.

The SoC-only fallback (:func:`soc_details`) reports the real energy: ``up_kwh`` is the AC
energy above the reserve floor, ``down_kwh`` the AC energy that fits below ``soc_max``, and
``*_max_duration_s`` how long the offered kW can be held on it (≥ the product duration).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import optimizer.flexibility as opt_flex
from vpp.market.flexibility import BatteryFlexibility, FlexSlot, battery_shares

SLOT = timedelta(minutes=30)
SLOT_H = SLOT.total_seconds() / 3600.0


@dataclass(frozen=True, slots=True)
class FlexDetail:
    """One 30-min slot [kW, kWh, s]; ``band_*_kw`` = ± uncertainty of the kW figure."""

    start: datetime
    up_kw: float
    down_kw: float
    up_kwh: float
    down_kwh: float
    up_max_duration_s: float
    down_max_duration_s: float
    band_up_kw: float
    band_down_kw: float
    available: bool
    reason: str  #: machine code: "" or "storm_mode"
    source: str  #: "plan" or "soc"
    #: human reason behind ``reason`` (the storm's: JMA warnings or the operator's), else ""
    reason_detail: str = ""

    def as_slot(self) -> FlexSlot:
        return FlexSlot(self.start, self.up_kw * 1000 if self.available else 0.0,
                        self.down_kw * 1000 if self.available else 0.0)


def band_fraction(lead_h: float) -> float:
    """Relative uncertainty of planned flexibility at ``lead_h`` [h] ahead (fraction)."""
    return min(0.30, 0.05 + 0.02 * max(lead_h, 0.0))


class PlanFlexibility:
    """``__call__(start, end) -> list[FlexSlot]`` (the ``Services.flexibility`` contract) and
    ``detail(start, end) -> list[FlexDetail]`` for the API.

    ``controller``: a :class:`vpp.control.loop.Controller` (its ``plan`` and ``storm`` are
    read at each call); ``fallback``: flexibility without a plan.
    """

    def __init__(self, controller: Any, fallback: BatteryFlexibility | Callable | None = None) -> None:
        self.controller = controller
        vpp = getattr(controller.config, "vpp", None)
        #: product duration [s] every offered kW must be sustainable for
        self.duration_s = float(getattr(vpp, "duration_s", SLOT.total_seconds()))
        self.fallback = fallback or BatteryFlexibility(controller.config, self._soc_of)
        self._cache: tuple[Any, dict[datetime, opt_flex.FlexSlot]] | None = None  # (plan, slots)

    def _plan_slots(self, plan: Any) -> dict[datetime, opt_flex.FlexSlot]:
        """Flexibility of ``plan`` per slot start, computed once per plan (plans are replaced,
        never edited in place)."""
        cached = self._cache
        if cached is not None and cached[0] is plan:
            return cached[1]
        flex = opt_flex.flexibility(plan.problem, plan.schedule, int(SLOT.total_seconds()), self.duration_s)
        slots = {f.start.astimezone(UTC): f for f in flex}
        self._cache = (plan, slots)
        return slots

    def _soc_of(self, device_id: str) -> float:
        snap, _ = self.controller.snapshot(device_id, self.controller.now())
        return float(snap.values.get("soc", 0.0)) if snap is not None else 0.0

    def __call__(self, start: datetime, end: datetime) -> list[FlexSlot]:
        return [d.as_slot() for d in self.detail(start, end)]

    def detail(self, start: datetime, end: datetime) -> list[FlexDetail]:
        if end <= start:
            raise ValueError("end must be after start")
        storm = bool(getattr(self.controller.storm, "active", False))
        plan = self.controller.plan
        stale_s = self.controller.config.optimiser.stale_plan_s
        if plan is not None and (self.controller.now() - plan.made_at).total_seconds() > stale_s:
            plan = None  # the control loop no longer follows it either
        by_start: dict[datetime, opt_flex.FlexSlot] = {}
        made_at = None
        if plan is not None:
            made_at = plan.made_at
            by_start = self._plan_slots(plan)
        slots: list[datetime] = []
        t = start
        while t < end:
            slots.append(t)
            t += SLOT
        missing = [s for s in slots if s.astimezone(UTC) not in by_start]
        soc_based: dict[datetime, FlexDetail] = {}
        if missing:
            rows = (soc_details(self.fallback, start, end) if isinstance(self.fallback, BatteryFlexibility)
                    else details_from_slots(self.fallback(start, end)))
            soc_based = {f.start: f for f in rows}
        out = []
        for s in slots:
            f = by_start.get(s.astimezone(UTC))
            if f is not None:
                lead = (s - made_at).total_seconds() / 3600.0
                frac = band_fraction(lead)
                d = FlexDetail(s, f.up_kw, f.down_kw, f.up_kwh, f.down_kwh, f.up_sustain_s, f.down_sustain_s,
                               f.up_kw * frac, f.down_kw * frac, True, "", "plan")
            else:
                d = soc_based.get(s) or details_from_slots([FlexSlot(s, 0.0, 0.0)])[0]
            if storm:
                d = FlexDetail(s, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, False, "storm_mode", d.source,
                               str(getattr(self.controller.storm, "reason", "") or ""))
            out.append(d)
        return out


def soc_details(flex: BatteryFlexibility, start: datetime, end: datetime) -> list[FlexDetail]:
    """:class:`FlexDetail` per slot of ``[start, end)`` from the batteries' present SoC (the
    fallback without a plan; band 30 %).

    The kW are ``flex``'s (each battery's energy spread over ``max(duration_s, window)``,
    capped by its rating). Per battery ``b`` with a finite SoC (``C`` capacity, ``fl`` floor):
    ``up_wh_b = (soc − fl)⁺ · C · η_d`` and ``dn_wh_b = (soc_max − soc)⁺ · C / η_c`` [Wh AC];
    ``up_kwh = Σ up_wh_b / 1000``, and ``up_max_duration_s = min_b 3600 · up_wh_b / up_w_b``
    over the batteries that offer something (each holds its own share; a rating-capped
    battery cannot make up for one that ran empty) — never below the duration the kW were
    sized for. Down alike. Every slot reports the same energy: it is one store, offered
    once per window."""
    if end <= start:
        raise ValueError("end must be after start")
    up_w = dn_w = up_wh = dn_wh = 0.0
    up_s = dn_s = math.inf
    for b in battery_shares(flex, start, end):
        u, d, eu, ed = b.up_w, b.down_w, b.up_wh, b.down_wh
        up_w, dn_w, up_wh, dn_wh = up_w + u, dn_w + d, up_wh + eu, dn_wh + ed
        if u > 0:
            up_s = min(up_s, 3600.0 * eu / u)
        if d > 0:
            dn_s = min(dn_s, 3600.0 * ed / d)
    up_s = up_s if up_w > 0 else 0.0
    dn_s = dn_s if dn_w > 0 else 0.0
    out = []
    t = start
    while t < end:
        out.append(FlexDetail(t, up_w / 1000, dn_w / 1000, up_wh / 1000, dn_wh / 1000, up_s, dn_s,
                              up_w / 1000 * 0.30, dn_w / 1000 * 0.30, True, "", "soc"))
        t += SLOT
    return out


def details_from_slots(slots: list[FlexSlot]) -> list[FlexDetail]:
    """:class:`FlexDetail` for a plain flexibility function that gives kW only (kWh = kW × 0.5 h,
    band 30 %); a :class:`BatteryFlexibility` gets :func:`soc_details` instead."""
    out = []
    for f in slots:
        up, dn = f.up_w / 1000, f.down_w / 1000
        out.append(FlexDetail(f.start, up, dn, up * SLOT_H, dn * SLOT_H, SLOT.total_seconds() if up else 0.0,
                              SLOT.total_seconds() if dn else 0.0, up * 0.30, dn * 0.30, True, "", "soc"))
    return out
