"""The demand-charge state the planner needs: the month's highest 30-minute average import
so far (:class:`PeakTracker`, read from the grid meter's import, never netted with export),
and :func:`demand_params` for :mod:`optimizer.model_demand`.

Price of a new peak: ``bill.demand.shaving_price_per_kw`` if set, else one month's 基本料金
per kW (``unit_price_per_kw × (185 − power factor %) / 100``). Under the 12-month contract
rule a new peak can cost up to 12 months of it; set ``shaving_price_per_kw`` to say so.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pandas as pd

import optimizer
from vpp.config import SiteConfig
from vpp.slots import SLOT_S, floor_time
from vpp.storage.meter_flows import import_export_slots

__all__ = ["month_start", "PeakTracker", "demand_params", "basic_charge_per_kw"]


def month_start(now: datetime, tz: str) -> datetime:
    """UTC start of the local month containing ``now``."""
    loc = pd.Timestamp(now).tz_convert(tz)
    return loc.normalize().replace(day=1).tz_convert("UTC").to_pydatetime()


def basic_charge_per_kw(config: SiteConfig) -> float:
    """One month's 基本料金 per contract kW [currency/kW] (0 without a demand charge)."""
    d = config.bill.demand
    return 0.0 if d is None else d.unit_price_per_kw * (185.0 - d.power_factor_pct) / 100.0


@dataclass
class PeakTracker:
    """The month's running maximum of the 30-min average import [W], read incrementally
    (only slots completed since the last call are read)."""

    month: datetime | None = None
    until: datetime | None = None
    peak_w: float = 0.0

    def update(self, store, meter: str, now: datetime, tz: str) -> float:
        m = month_start(now, tz)
        if self.month != m:
            self.month, self.until, self.peak_w = m, m, 0.0
        end = floor_time(now, SLOT_S)
        if store is not None and self.until is not None and end > self.until:
            flows = import_export_slots(store, meter, self.until, end)
            if len(flows):
                self.peak_w = max(self.peak_w, float(flows["import_kwh"].max()) * 3600e3 / SLOT_S)
            self.until = end
        return self.peak_w


_TRACKERS: dict[int, tuple[object, PeakTracker]] = {}


def demand_params(config: SiteConfig, store, now: datetime) -> optimizer.DemandParams | None:
    """Peak shaving input for a plan made at ``now`` (None without ``bill.demand`` or meter)."""
    d = config.bill.demand
    meter = config.grid_meter()
    if d is None or meter is None:
        return None
    held = _TRACKERS.get(id(store))
    if held is None or held[0] is not store:
        held = (store, PeakTracker())
        _TRACKERS[id(store)] = held
    try:
        peak = held[1].update(store, meter.id, now, config.site.timezone)
    except Exception:  # noqa: BLE001 - a store fault: plan against the last known peak
        peak = held[1].peak_w
    price = d.shaving_price_per_kw if d.shaving_price_per_kw is not None else basic_charge_per_kw(config)
    return optimizer.DemandParams(peak0_w=peak, price_per_kw=price)
