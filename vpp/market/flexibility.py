"""Flexibility the site can promise the aggregator, per 30-min slot, above the reserve floor.

:class:`FlexSlot` is the one flexibility record (W, Wh, s) between the market layer, whatever
computes flexibility (the plan's, :mod:`vpp.market.flex_service`) and the API, which alone
converts to kW. Without a plan
:class:`BatteryFlexibility` gives a simple, physically honest answer from the batteries'
present state of charge: the energy above the disaster-reserve floor, spread evenly over the
product duration ``vpp.duration_s`` (or the requested window when that is longer) and capped
by the inverter rating.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from vpp.config import Device, Reserve, SiteConfig
from vpp.control.reserve import base_floor as reserve_floor, capacity_shares  # the one floor formula
from vpp.slots import SLOT

#: Relative uncertainty of SoC-only flexibility (no forecast behind it: the maximum band).
SOC_BAND = 0.30


@dataclass(frozen=True, slots=True)
class FlexSlot:
    """Flexibility of one 30-min slot on top of the plan: the one record [W, Wh, s].

    ``start`` (UTC); ``up_w`` extra export / import reduction and ``down_w`` extra import /
    export reduction the site can hold for the whole slot [W], >= 0. The rest describes the
    offer for the API and defaults to "not computed" (a plain flexibility function gives
    power only; :func:`vpp.market.flex_service.completed` fills it in):

    * ``up_wh`` / ``down_wh`` — AC energy above the reserve floor / below ``soc_max`` [Wh];
    * ``up_max_duration_s`` / ``down_max_duration_s`` — how long the power can be held [s];
    * ``band_up_w`` / ``band_down_w`` — ± uncertainty of the power [W];
    * ``available`` False with ``reason`` (machine code, e.g. ``storm_mode``) and
      ``reason_detail`` (the human reason) when nothing may be offered (powers are then 0);
    * ``source`` — ``plan`` (the optimiser's plan) or ``soc`` (present SoC only).
    """

    start: datetime
    up_w: float
    down_w: float
    up_wh: float | None = None
    down_wh: float | None = None
    up_max_duration_s: float | None = None
    down_max_duration_s: float | None = None
    band_up_w: float = 0.0
    band_down_w: float = 0.0
    available: bool = True
    reason: str = ""
    source: str = ""
    reason_detail: str = ""


def battery_sustained_power(
    soc: float,
    floor: float,
    soc_max: float,
    capacity_wh: float,
    max_discharge_w: float,
    max_charge_w: float,
    hours: float,
    discharge_efficiency: float = 0.95,
    charge_efficiency: float = 0.95,
) -> tuple[float, float]:
    """Constant AC power one battery can hold for ``hours`` without crossing its limits.

    Parameters
    ----------
    soc, floor, soc_max : float
        Present state of charge, reserve floor and upper limit [fraction 0..1].
    capacity_wh : float
        Usable capacity [Wh].
    max_discharge_w, max_charge_w : float
        AC power ratings [W], > 0.
    hours : float
        Window length [h], > 0.
    discharge_efficiency, charge_efficiency : float
        One-way efficiencies [fraction].

    Returns
    -------
    (up_w, down_w) : tuple of float
        ``up_w = min(max_discharge_w, (soc − floor)⁺ · capacity · η_d / hours)``;
        ``down_w = min(max_charge_w, (soc_max − soc)⁺ · capacity / η_c / hours)`` [W].
    """
    if hours <= 0:
        raise ValueError("hours must be > 0")
    up = max(0.0, soc - floor) * capacity_wh * discharge_efficiency / hours
    down = max(0.0, soc_max - soc) * capacity_wh / charge_efficiency / hours
    return min(max_discharge_w, up), min(max_charge_w, down)


@dataclass(frozen=True, slots=True)
class BatteryShare:
    """One battery's part of :class:`BatteryFlexibility` over a window: the AC power it can
    hold for the sizing time [W] and the AC energy above its floor / below its ``soc_max`` [Wh]."""

    device_id: str
    up_w: float
    down_w: float
    up_wh: float
    down_wh: float


def battery_shares(flex: BatteryFlexibility, start: datetime, end: datetime) -> list[BatteryShare]:
    """Per battery of ``flex`` with a finite SoC (others offer nothing and are left out), in
    config order: ``up_w, down_w`` from :func:`battery_sustained_power` over
    ``max(flex.duration_s, end − start)`` [s] on the floor of :func:`vpp.control.reserve.base_floor`;
    ``up_wh = (soc − floor)⁺ · C · η_d`` and ``down_wh = (soc_max − soc)⁺ · C / η_c`` [Wh AC]."""
    if end <= start:
        raise ValueError("end must be after start")
    hours = max(flex.duration_s, (end - start).total_seconds()) / 3600.0
    out = []
    shares = capacity_shares(flex.batteries)
    for b in flex.batteries:
        r = b.ratings
        assert r.capacity_wh and r.max_discharge_w and r.max_charge_w  # checked by the config model
        soc = float(flex.soc_of(b.id))
        if not math.isfinite(soc):
            continue  # no reading: nothing is offered on it
        floor = reserve_floor(flex.reserve, r, shares[b.id])
        u, d = battery_sustained_power(
            soc=soc,
            floor=floor,
            soc_max=r.soc_max,
            capacity_wh=r.capacity_wh,
            max_discharge_w=r.max_discharge_w,
            max_charge_w=r.max_charge_w,
            hours=hours,
            discharge_efficiency=r.discharge_efficiency,
            charge_efficiency=r.charge_efficiency,
        )
        out.append(BatteryShare(b.id, u, d, max(0.0, soc - floor) * r.capacity_wh * r.discharge_efficiency,
                                max(0.0, r.soc_max - soc) * r.capacity_wh / r.charge_efficiency))
    return out


class BatteryFlexibility:
    """Site flexibility from every configured battery's SoC and the reserve floor.

    ``soc_of(device_id)`` returns the battery's present SoC [fraction]; in the service it
    reads the poller's last good snapshot (a non-finite SoC counts as nothing to offer).
    Each slot gets the same power, which every battery can hold for
    ``max(duration_s, window)`` [s] from its present SoC: for the whole product duration
    (``vpp.duration_s``, the time an activated offer must be sustained) and, over a longer
    window, for all of its slots back to back, always on the energy above the reserve floor
    only (a battery at or below its floor offers nothing upwards).
    """

    def __init__(self, config: SiteConfig, soc_of: Callable[[str], float],
                 duration_s: float | None = None) -> None:
        self.reserve = config.reserve
        self.batteries: list[Device] = config.devices_of("battery")
        self.soc_of = soc_of
        #: product duration [s] every offered kW must be sustainable for
        self.duration_s = float(duration_s if duration_s is not None else config.vpp.duration_s)
        if not self.duration_s > 0:
            raise ValueError("duration_s must be > 0")

    def __call__(self, start: datetime, end: datetime) -> list[FlexSlot]:
        """One :class:`FlexSlot` per slot of ``[start, end)`` from the present SoC (band 30 %).

        Per battery ``b`` with a finite SoC (``C`` capacity, ``fl`` floor) from
        :func:`battery_shares`: ``up_wh = Σ_b (soc − fl)⁺ · C · η_d`` and
        ``down_wh = Σ_b (soc_max − soc)⁺ · C / η_c`` [Wh AC], and
        ``up_max_duration_s = min_b 3600 · up_wh_b / up_w_b`` over the batteries that offer
        something (each holds its own share; a rating-capped battery cannot make up for one
        that ran empty), never below the duration the power was sized for. Down alike. Every
        slot reports the same energy: it is one store, offered once per window."""
        if end <= start:
            raise ValueError("end must be after start")
        up_w = dn_w = up_wh = dn_wh = 0.0
        up_s = dn_s = math.inf
        for b in battery_shares(self, start, end):
            u, d, eu, ed = b.up_w, b.down_w, b.up_wh, b.down_wh
            up_w, dn_w, up_wh, dn_wh = up_w + u, dn_w + d, up_wh + eu, dn_wh + ed
            if u > 0:
                up_s = min(up_s, 3600.0 * eu / u)
            if d > 0:
                dn_s = min(dn_s, 3600.0 * ed / d)
        up_s = up_s if up_w > 0 else 0.0
        dn_s = dn_s if dn_w > 0 else 0.0
        return [FlexSlot(t, up_w, dn_w, up_wh, dn_wh, up_s, dn_s, up_w * SOC_BAND, dn_w * SOC_BAND, source="soc")
                for t in slot_starts(start, end)]


def slot_starts(start: datetime, end: datetime) -> list[datetime]:
    """Starts of the 30-min slots from ``start`` (a slot boundary) up to ``end``."""
    out, t = [], start
    while t < end:
        out.append(t)
        t += SLOT
    return out
