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
``storm_mode``): the reserve is being built and nothing is offered.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import optimizer.flexibility as opt_flex
from vpp.market.flexibility import BatteryFlexibility, FlexSlot

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
    reason: str
    source: str  #: "plan" or "soc"

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
        soc_based = {}
        if missing:
            soc_based = {f.start: f for f in self.fallback(start, end)}
        out = []
        for s in slots:
            f = by_start.get(s.astimezone(UTC))
            if f is not None:
                lead = (s - made_at).total_seconds() / 3600.0
                frac = band_fraction(lead)
                d = FlexDetail(s, f.up_kw, f.down_kw, f.up_kwh, f.down_kwh, f.up_sustain_s, f.down_sustain_s,
                               f.up_kw * frac, f.down_kw * frac, True, "", "plan")
            else:
                g = soc_based.get(s) or FlexSlot(s, 0.0, 0.0)
                up, dn = g.up_w / 1000, g.down_w / 1000
                d = FlexDetail(s, up, dn, up * SLOT_H, dn * SLOT_H, SLOT.total_seconds() if up else 0.0,
                               SLOT.total_seconds() if dn else 0.0, up * 0.30, dn * 0.30, True, "", "soc")
            if storm:
                d = FlexDetail(s, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, False, "storm_mode", d.source)
            out.append(d)
        return out


def details_from_slots(slots: list[FlexSlot]) -> list[FlexDetail]:
    """:class:`FlexDetail` for a plain flexibility function (kWh = kW × 0.5 h, band 30 %)."""
    out = []
    for f in slots:
        up, dn = f.up_w / 1000, f.down_w / 1000
        out.append(FlexDetail(f.start, up, dn, up * SLOT_H, dn * SLOT_H, SLOT.total_seconds() if up else 0.0,
                              SLOT.total_seconds() if dn else 0.0, up * 0.30, dn * 0.30, True, "", "soc"))
    return out
