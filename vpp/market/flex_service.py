"""Flexibility for the API from the controller's current plan (``optimizer.flexibility``),
falling back to :class:`~vpp.market.flexibility.BatteryFlexibility` (present SoC only)
when there is no plan, the plan is stale (older than ``optimiser.stale_plan_s``) or the
window lies outside it. Plan slots offer what the plan can deliver for the product duration
``vpp.duration_s`` from any instant of the slot, with the energy margin above the floor taken
over that delivery only (later planned usage is re-planned; see ``optimizer.flexibility``),
minus what later awards held by the plan need.

:class:`~vpp.market.flexibility.FlexSlot` (W, Wh, s) is what ``GET /api/v1/flexibility``
shows per 30-min slot (:func:`flexibility_view`: the window widened to whole slots, every
row complete, storm slots emptied); the API converts to kW. The uncertainty band is a forecast-error proxy, not a statistical interval: the plan's
flexibility depends on the PV/load forecast, whose error grows with lead time, so
``band = kw × min(0.30, 0.05 + 0.02 · lead_h)`` (lead from the plan time; the SoC-only
fallback gets the maximum 0.30). Storm mode makes every slot unavailable (reason
``storm_mode``, ``reason_detail`` = the storm's human reason: the JMA warnings, or the
operator's): the reserve is being built and nothing is offered.

The SoC-only fallback (:class:`~vpp.market.flexibility.BatteryFlexibility`) reports the real
energy: ``up_wh`` is the AC energy above the reserve floor, ``down_wh`` the AC energy that
fits below ``soc_max``, and ``*_max_duration_s`` how long the offered power can be held on it
(≥ the product duration).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import optimizer.flexibility as opt_flex
from vpp.market.flexibility import SOC_BAND, BatteryFlexibility, FlexSlot, slot_starts
from vpp.slots import SLOT_S, covering

#: The flexibility record's former name (it was kW-based; it is :class:`FlexSlot` now).
FlexDetail = FlexSlot
FlexibilityFn = Callable[[datetime, datetime], list[FlexSlot]]


def band_fraction(lead_h: float) -> float:
    """Relative uncertainty of planned flexibility at ``lead_h`` [h] ahead (fraction)."""
    return min(0.30, 0.05 + 0.02 * max(lead_h, 0.0))


def unavailable(f: FlexSlot, reason: str, detail: str = "") -> FlexSlot:
    """``f`` with nothing offered: powers, energies, durations and bands 0, ``reason`` set."""
    return FlexSlot(f.start, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, False, reason, f.source, detail)


class PlanFlexibility:
    """``__call__(start, end) -> list[FlexSlot]`` (the ``Services.flexibility`` contract),
    complete records (energy, durations, bands) per slot.

    ``controller``: a :class:`vpp.control.loop.Controller` (its ``plan`` and ``storm`` are
    read at each call); ``fallback``: flexibility without a plan.
    """

    def __init__(self, controller: Any, fallback: BatteryFlexibility | Callable | None = None) -> None:
        self.controller = controller
        #: product duration [s] every offered kW must be sustainable for
        self.duration_s = float(controller.config.vpp.duration_s)
        self.fallback = fallback or BatteryFlexibility(controller.config, self._soc_of)
        self._cache: tuple[Any, dict[datetime, opt_flex.FlexSlot]] | None = None  # (plan, slots)

    def _plan_slots(self, plan: Any) -> dict[datetime, opt_flex.FlexSlot]:
        """Flexibility of ``plan`` per slot start, computed once per plan (plans are replaced,
        never edited in place)."""
        cached = self._cache
        if cached is not None and cached[0] is plan:
            return cached[1]
        flex = opt_flex.flexibility(plan.problem, plan.schedule, SLOT_S, self.duration_s)
        slots = {f.start.astimezone(UTC): f for f in flex}
        self._cache = (plan, slots)
        return slots

    def _soc_of(self, device_id: str) -> float:
        snap, _ = self.controller.snapshot(device_id, self.controller.now())
        return float(snap.values.get("soc", 0.0)) if snap is not None else 0.0

    def __call__(self, start: datetime, end: datetime) -> list[FlexSlot]:
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
        slots = slot_starts(start, end)
        soc_based: dict[datetime, FlexSlot] = {}
        if any(s.astimezone(UTC) not in by_start for s in slots):
            soc_based = {f.start: f for f in completed(self.fallback(start, end))}
        out = []
        for s in slots:
            f = by_start.get(s.astimezone(UTC))
            if f is not None:
                d = from_plan(s, f, band_fraction((s - made_at).total_seconds() / 3600.0))
            else:
                d = soc_based.get(s) or completed([FlexSlot(s, 0.0, 0.0)])[0]
            if storm:
                d = unavailable(d, "storm_mode", str(getattr(self.controller.storm, "reason", "") or ""))
            out.append(d)
        return out

    #: the same records (the API's detail and the market's flexibility are one record)
    detail = __call__


def from_plan(start: datetime, f: opt_flex.FlexSlot, band: float) -> FlexSlot:
    """The optimiser's flexibility of one slot (kW, kWh — its own units) as a :class:`FlexSlot`
    [W, Wh], band ``band`` × power."""
    up_w, dn_w = f.up_kw * 1000, f.down_kw * 1000
    return FlexSlot(start, up_w, dn_w, f.up_kwh * 1000, f.down_kwh * 1000, f.up_sustain_s, f.down_sustain_s,
                    up_w * band, dn_w * band, True, "", "plan")


def soc_details(flex: BatteryFlexibility, start: datetime, end: datetime) -> list[FlexSlot]:
    """The SoC-only fallback's complete records (what :class:`BatteryFlexibility` returns)."""
    return flex(start, end)


def completed(slots: list[FlexSlot]) -> list[FlexSlot]:
    """Every record with its energy, durations and band: a record with power only (a plain
    flexibility function) gets energy = power × 30 min, duration 30 min where it offers
    something, band 30 %, source ``soc``; complete records pass unchanged."""
    out = []
    for f in slots:
        if f.up_wh is not None and f.down_wh is not None:
            out.append(f)
            continue
        up, dn = f.up_w, f.down_w
        out.append(dataclasses.replace(
            f, up_wh=up * SLOT_S / 3600, down_wh=dn * SLOT_S / 3600, up_max_duration_s=float(SLOT_S) if up else 0.0,
            down_max_duration_s=float(SLOT_S) if dn else 0.0, band_up_w=up * SOC_BAND, band_down_w=dn * SOC_BAND,
            source=f.source or "soc"))
    return out


def details_from_slots(slots: list[FlexSlot]) -> list[FlexSlot]:
    """Former name of :func:`completed`."""
    return completed(slots)


def storm_detail(reason: str, set_by: str | None = None) -> str:
    """The storm's human reason, e.g. ``JMA 大雨警報 (03) in force for 0410000`` or
    ``typhoon 24 landfall (set by op-1)``: the reason it was switched on with, plus who set
    it when known and the reason does not already say so."""
    if set_by and set_by.lower() not in reason.lower():
        return f"{reason} (set by {set_by})" if reason else f"set by {set_by}"
    return reason


def flexibility_view(flexibility: FlexibilityFn, start: datetime, end: datetime, *, storm: Any = None,
                     storm_set_by: str | None = None) -> tuple[datetime, datetime, list[FlexSlot]]:
    """What ``GET /flexibility`` shows: ``[start, end)`` widened to whole 30-min slots and one
    complete :class:`FlexSlot` per slot. Under storm mode (``storm.active``) every slot is
    unavailable, whatever the flexibility function knows about the storm: reason
    ``storm_mode``, ``reason_detail`` = :func:`storm_detail`. Returns ``(start, end, slots)``."""
    a, e = covering(start, end)
    rows = completed(flexibility(a, e))
    if storm is not None and storm.active:
        why = storm_detail(str(storm.reason or ""), storm_set_by)
        rows = [unavailable(f, "storm_mode", why) for f in rows]
    else:
        # a slot the function marked unavailable keeps its own reason (storm_mode by default)
        rows = [f if f.available else unavailable(f, f.reason or "storm_mode", f.reason_detail) for f in rows]
    return a, e, rows
