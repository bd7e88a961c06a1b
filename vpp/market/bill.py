"""Real bills of a day or a month: import and export metered separately (never netted inside
a slot), each per-kWh part priced on its own, the sell side, and the 高圧 demand charge; for
the site or one home, against the no-battery counterfactual.

Lines (money in the tariff currency, energy kWh, power kW)::

    energy          Σ import_kwh × energy price (TOU period, or spot + adder: the provider's)
    fuel_adjustment Σ import_kwh × 燃料費調整額 (dated, may be negative)
    renewable_levy  Σ import_kwh × 再エネ発電賦課金 (dated)
    sold            Σ export_kwh × sell price (fixed, FIT, or FIP = spot + premium)
    basic_charge    contract kW × unit price × (185 − pf) / 100   (month only, bill.demand)
    total           energy + fuel_adjustment + renewable_levy + basic_charge − sold

Demand: ``peak_kw`` is the highest 30-min average import of the period; the contract kW is
``bill.demand.contract_kw`` if fixed, else the highest monthly peak of the last 12 months
(this month included).

Counterfactual without the battery (per slot, battery energy ``b`` > 0 discharge): its
discharge would first have been exported less, then imported more; its charge would first
have been imported less, then exported more. Import − export then changes by exactly ``b``
and neither goes below 0; the no-battery peak is read from the no-battery import.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from vpp.config import SiteConfig
from vpp.slots import SLOT_S

__all__ = ["no_battery_flows", "BillLines", "bill_lines", "contract_kw", "period_bounds", "site_bill"]


def no_battery_flows(imp: np.ndarray, exp: np.ndarray, bat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(import, export)`` per slot [kWh] had there been no battery (module docstring)."""
    imp, exp = np.asarray(imp, float), np.asarray(exp, float)
    b = np.nan_to_num(np.asarray(bat, float))
    dis, ch = np.clip(b, 0, None), np.clip(-b, 0, None)
    exp1 = np.clip(exp - dis, 0, None)
    imp1 = imp + np.clip(dis - exp, 0, None)
    imp2 = np.clip(imp1 - ch, 0, None)
    exp2 = exp1 + np.clip(ch - imp1, 0, None)
    return imp2, exp2


@dataclass(frozen=True)
class BillLines:
    import_kwh: float
    export_kwh: float
    energy: float
    fuel_adjustment: float
    renewable_levy: float
    sold: float
    peak_kw: float
    contract_kw: float
    basic_charge: float
    total: float


def bill_lines(imp: np.ndarray, exp: np.ndarray, prices: pd.DataFrame, *, basic_per_kw: float = 0.0,
               contract: float = 0.0) -> BillLines:
    """The bill of the slots (arrays [kWh] aligned with ``prices``, the provider's frame)."""
    imp, exp = np.nan_to_num(np.asarray(imp, float)), np.nan_to_num(np.asarray(exp, float))
    part = {c: float(np.sum(imp * prices[f"{c}_per_kwh"].to_numpy(float)))
            for c in ("energy", "fuel_adjustment", "renewable_levy")}
    sold = float(np.sum(exp * prices["sell_per_kwh"].to_numpy(float)))
    peak = float(imp.max() * 3600.0 / SLOT_S) if len(imp) else 0.0
    basic = contract * basic_per_kw
    return BillLines(float(imp.sum()), float(exp.sum()), part["energy"], part["fuel_adjustment"],
                     part["renewable_levy"], sold, peak, contract, basic,
                     part["energy"] + part["fuel_adjustment"] + part["renewable_levy"] + basic - sold)


def contract_kw(monthly_peaks_kw: list[float], fixed: float | None) -> float:
    """Contract kW: ``fixed`` if set, else the highest of the last 12 monthly peaks."""
    return float(fixed) if fixed is not None else float(max(monthly_peaks_kw[-12:], default=0.0))


def period_bounds(period: str, day: date, tz: str) -> tuple[datetime, datetime]:
    """UTC ``[start, end)`` of the local ``day`` or of the month containing it."""
    z = ZoneInfo(tz)
    if period == "day":
        a = datetime.combine(day, time(0), tzinfo=z)
        e = a + timedelta(days=1)
    elif period == "month":
        a = datetime.combine(day.replace(day=1), time(0), tzinfo=z)
        e = datetime.combine((day.replace(day=1) + timedelta(days=32)).replace(day=1), time(0), tzinfo=z)
    else:
        raise ValueError(f"period must be 'day' or 'month', got {period!r}")
    return a.astimezone(ZoneInfo("UTC")), e.astimezone(ZoneInfo("UTC"))


def _flows(store, config: SiteConfig, home: str | None, start: datetime, end: datetime):
    from vpp.storage.meter_flows import import_export_slots

    if home is None:
        m = config.grid_meter()
        meter = m.id if m is not None else None
        bats = [b.id for b in config.devices_of("battery")]
    else:
        meters = [d.id for d in config.devices_of("meter") if d.home == home]
        meter = meters[0] if meters else None
        bats = [b.id for b in config.devices_of("battery") if b.home == home]
    idx = pd.date_range(start, end, freq=f"{SLOT_S}s", inclusive="left")
    known = store.devices() if store is not None else {}
    if meter is None or meter not in known:
        z = np.zeros(len(idx))
        return idx, z, z, z, 0
    f = import_export_slots(store, meter, start, end)
    bat = np.zeros(len(idx))
    for b in bats:
        if b in known:
            bat += store.energy_slots(b, start=start, end=end, slot_s=SLOT_S)[b].reindex(idx).fillna(0.0).to_numpy()
    return idx, f["import_kwh"].to_numpy(), f["export_kwh"].to_numpy(), bat, int((f["samples"] > 0).sum())


def _month_peaks(store, config: SiteConfig, home: str | None, month_start: datetime, tz: str) -> list[float]:
    """Monthly peaks [kW] of the 11 months before ``month_start`` (oldest first)."""
    peaks = []
    loc = pd.Timestamp(month_start).tz_convert(tz)
    for k in range(11, 0, -1):
        a_loc = (loc - pd.DateOffset(months=k))
        a, e = period_bounds("month", a_loc.date(), tz)
        _, imp, _, _, n = _flows(store, config, home, a, e)
        peaks.append(float(imp.max() * 3600.0 / SLOT_S) if n else 0.0)
    return peaks


def site_bill(store, config: SiteConfig, period: str, day: date, *, home: str | None = None,
              now: datetime | None = None) -> dict[str, Any]:
    """The bill of local ``day`` or its month for the site (or ``home``), with the
    no-battery counterfactual and the savings (module docstring). Slots after ``now`` are
    not metered yet and count 0."""
    from vpp.control.demand import basic_charge_per_kw
    from vpp.forecast.prices import price_provider

    tz = config.site.timezone
    if home is not None and not any(d.home == home for d in config.devices):
        raise KeyError(home)
    start, end = period_bounds(period, day, tz)
    idx, imp, exp, bat, metered = _flows(store, config, home, start, end)
    prov = price_provider(config)
    prices = prov.energy(idx)
    d = config.bill.demand
    basic = basic_charge_per_kw(config) if period == "month" and home is None else 0.0
    kw = {}
    if basic:
        earlier = _month_peaks(store, config, home, start, tz)
        imp_nb_, _ = no_battery_flows(imp, exp, bat)
        peak, peak_nb = imp.max() * 3600.0 / SLOT_S, imp_nb_.max() * 3600.0 / SLOT_S
        kw = {"actual": contract_kw(earlier + [peak], d.contract_kw),
              "no_battery": contract_kw(earlier + [peak_nb], d.contract_kw)}
    act = bill_lines(imp, exp, prices, basic_per_kw=basic, contract=kw.get("actual", 0.0))
    imp_nb, exp_nb = no_battery_flows(imp, exp, bat)
    nob = bill_lines(imp_nb, exp_nb, prices, basic_per_kw=basic, contract=kw.get("no_battery", 0.0))
    return {"period": period, "day": day.isoformat(), "home": home, "start": start, "end": end, "timezone": tz,
            "currency": config.tariff.currency, "price_version": prov.version,
            "price_sources": sorted(set(prices["price_source"].astype(str))),
            "slots": len(idx), "metered_slots": metered, "sell_scheme": config.bill.sell_scheme,
            "actual": asdict(act), "no_battery": asdict(nob), "savings": nob.total - act.total}
