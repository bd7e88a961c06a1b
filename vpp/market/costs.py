"""Energy cost, CO2 and VPP revenue of a period (光熱費・CO2 の見える化), and the no-battery
counterfactual they are compared with.

Conventions
-----------
Inputs are energy per 30-min slot [kWh]: import and export as the meter registers them,
separately (both >= 0, never netted inside a slot: a slot that imported 3 kWh and exported
2 kWh bills 3 bought and 2 sold, not 1 bought), and battery energy (> 0 discharge).

Counterfactual without the battery: :func:`vpp.market.bill.no_battery_flows` (discharge would
first have been exported less, then imported more; charge the other way round), priced with
the same tariff, the same rule as the bill.

Cost [currency] = bought × buy price − sold × sell price. CO2 [kg] = bought × grid emission
factor [kg/kWh]; CO2 avoided = CO2 without battery − CO2 with it (negative when the battery
made things worse, e.g. by its losses).

VPP revenue [currency] = capacity payment (accepted kW per awarded slot × capacity price
[currency/kW per slot]) + energy payment (delivered kWh > 0 per settled slot × the offer's
price, else the configured energy price). A slot settled more than once (a re-read with later
metering, or a dispatch and its award) counts once, with its latest record.

Pure functions first (arrays in, numbers out); :func:`cost_summary` at the end is the one
orchestrator that reads the store and the ledger.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import numpy as np
import pandas as pd

from vpp.slots import SLOT_S  # noqa: E402 - the one slot length
Period = Literal["today", "month"]


# ---------------------------------------------------------------------------- pure functions
def _kwh(x: np.ndarray) -> np.ndarray:
    """Energy per slot [kWh] as float, NaN (unmetered) as 0, never below 0."""
    return np.clip(np.nan_to_num(np.asarray(x, dtype=float)), 0.0, None)


@dataclass(frozen=True, slots=True)
class Account:
    """Energy bought and sold [kWh], cost [currency] (> 0 = paid) and CO2 [kg] of a period."""

    bought_kwh: float
    sold_kwh: float
    cost: float
    co2_kg: float


def account(import_kwh: np.ndarray, export_kwh: np.ndarray, buy_per_kwh: np.ndarray | float,
            sell_per_kwh: np.ndarray | float, co2_kg_per_kwh: float) -> Account:
    """Totals over the slots of ``import_kwh`` / ``export_kwh`` [kWh].

    Parameters
    ----------
    import_kwh, export_kwh : energy imported / exported per slot [kWh], both >= 0 (NaN = 0)
    buy_per_kwh, sell_per_kwh : price per slot (or one for all) [currency/kWh]
    co2_kg_per_kwh : grid emission factor [kg/kWh], applied to bought energy
    """
    bought, sold = _kwh(import_kwh), _kwh(export_kwh)
    cost = bought * np.asarray(buy_per_kwh, dtype=float) - sold * np.asarray(sell_per_kwh, dtype=float)
    b = float(bought.sum())
    return Account(bought_kwh=b, sold_kwh=float(sold.sum()), cost=float(np.sum(cost)),
                   co2_kg=b * float(co2_kg_per_kwh))


@dataclass(frozen=True, slots=True)
class Comparison:
    """With the battery (``actual``) vs without it (``no_battery``); ``savings`` [currency]
    = cost without − cost with; ``co2_avoided_kg`` likewise."""

    actual: Account
    no_battery: Account
    savings: float
    co2_avoided_kg: float


def compare(import_kwh: np.ndarray, export_kwh: np.ndarray, battery_kwh: np.ndarray,
            buy_per_kwh: np.ndarray | float, sell_per_kwh: np.ndarray | float,
            co2_kg_per_kwh: float) -> Comparison:
    """Cost and CO2 with the battery against the no-battery counterfactual (module doc)."""
    from vpp.market.bill import no_battery_flows

    imp, exp = _kwh(import_kwh), _kwh(export_kwh)
    act = account(imp, exp, buy_per_kwh, sell_per_kwh, co2_kg_per_kwh)
    nob = account(*no_battery_flows(imp, exp, battery_kwh), buy_per_kwh, sell_per_kwh, co2_kg_per_kwh)
    return Comparison(act, nob, savings=nob.cost - act.cost, co2_avoided_kg=nob.co2_kg - act.co2_kg)


def settled_slots(performance: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """Delivered energy per settled (award, slot) from ``performance`` ledger payloads, in
    ledger order; the latest record of a slot wins.

    Returns
    -------
    DataFrame with columns ``award_id``, ``start`` (UTC Timestamp), ``delivered_kwh``.
    """
    rows: dict[tuple[str, pd.Timestamp], float] = {}
    for p in performance:
        award = p.get("award_id")
        for s in (p.get("performance") or {}).get("slots", []):
            t = pd.Timestamp(s["start"])
            t = t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")
            kwh = s.get("delivered_kwh")
            rows[(award, t)] = 0.0 if kwh is None or not np.isfinite(kwh) else float(kwh)
    return pd.DataFrame([{"award_id": a, "start": t, "delivered_kwh": v} for (a, t), v in rows.items()],
                        columns=["award_id", "start", "delivered_kwh"])


@dataclass(frozen=True, slots=True)
class VppRevenue:
    """VPP income of a period: ``capacity`` and ``energy`` payments [currency], ``total``;
    ``delivered_kwh`` settled, ``awarded_kwh`` accepted in awards [kWh]."""

    capacity: float
    energy: float
    total: float
    delivered_kwh: float
    awarded_kwh: float


def vpp_revenue(accepted_kw: np.ndarray, capacity_price_per_kw: float, delivered_kwh: np.ndarray,
                energy_price_per_kwh: np.ndarray | float, slot_s: float = SLOT_S) -> VppRevenue:
    """Revenue from accepted award slots and settled deliveries.

    Parameters
    ----------
    accepted_kw : accepted power per awarded slot [kW]
    capacity_price_per_kw : capacity price [currency/kW per slot]
    delivered_kwh : delivered energy per settled slot [kWh]; only > 0 is paid
    energy_price_per_kwh : energy price per settled slot (or one for all) [currency/kWh]
    slot_s : slot length [s] (for ``awarded_kwh``)
    """
    acc = np.nan_to_num(np.asarray(accepted_kw, dtype=float))
    dlv = np.clip(np.nan_to_num(np.asarray(delivered_kwh, dtype=float)), 0.0, None)
    cap = float(acc.sum() * capacity_price_per_kw)
    en = float(np.sum(dlv * np.asarray(energy_price_per_kwh, dtype=float)))
    return VppRevenue(capacity=cap, energy=en, total=cap + en, delivered_kwh=float(dlv.sum()),
                      awarded_kwh=float(acc.sum() * slot_s / 3600.0))


def period_window(period: Period, now: datetime, tz: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    """``[start, end)`` in UTC: local midnight (``today``) or the local 1st of the month
    (``month``) up to ``now`` rounded up to the next 30-min slot boundary."""
    local = pd.Timestamp(now).tz_convert(tz)
    if period == "today":
        a = local.normalize()
    elif period == "month":
        a = local.normalize().replace(day=1)
    else:
        raise ValueError(f"period must be 'today' or 'month', got {period!r}")
    a = a.tz_convert("UTC")
    e = pd.Timestamp(now).tz_convert("UTC").ceil(f"{SLOT_S}s")
    return a, max(e, a + pd.Timedelta(seconds=SLOT_S))


# ---------------------------------------------------------------------------- orchestrator
#: past days are cached once fully metered and at least this old [s] (late spool replays land sooner)
CACHE_AFTER_S = 3600.0


def _site_energy(store: Any, config: Any, start: pd.Timestamp, end: pd.Timestamp, now: pd.Timestamp,
                 cache: dict | None = None) -> tuple[pd.Series, pd.Series, pd.Series, int]:
    """Import, export (metered separately, :func:`vpp.storage.meter_flows.import_export_slots`)
    and total battery energy per slot [kWh] and the number of metered slots, read day by day
    from ``start``; days that are over, fully metered and older than :data:`CACHE_AFTER_S` are
    kept in ``cache`` (a month of 1-s data is read once)."""
    from vpp.market.metering import grid_meter_id
    from vpp.storage.meter_flows import import_export_slots

    idx = pd.date_range(start, end, freq=f"{SLOT_S}s", inclusive="left")
    meter = grid_meter_id(config)
    bats = [b.id for b in config.devices_of("battery")]
    if store is None or meter is None or meter not in store.devices():
        zero = pd.Series(0.0, index=idx)
        return zero, zero, zero, 0
    known = store.devices()

    def chunk(a: pd.Timestamp, e: pd.Timestamp) -> tuple[pd.Series, pd.Series, pd.Series, int]:
        key = (id(store), a, e)
        if cache is not None and key in cache:
            return cache[key]
        kw = {"start": a.to_pydatetime(), "end": e.to_pydatetime(), "slot_s": SLOT_S}
        ci = pd.date_range(a, e, freq=f"{SLOT_S}s", inclusive="left")
        f = import_export_slots(store, meter, kw["start"], kw["end"]).reindex(ci)
        bat = pd.Series(0.0, index=ci)
        for b in bats:
            if b in known:
                bat = bat + store.energy_slots(b, **kw)[b].reindex(ci).fillna(0.0)
        metered = int((f["samples"].fillna(0) > 0).sum())
        out = (f["import_kwh"].fillna(0.0), f["export_kwh"].fillna(0.0), bat, metered)
        if cache is not None and metered == len(ci) and e <= now - pd.Timedelta(seconds=CACHE_AFTER_S):
            cache[key] = out
        return out

    edges = list(pd.date_range(start, end, freq="1D", inclusive="left")) + [end]
    parts = [chunk(a, e) for a, e in zip(edges, edges[1:])]
    imp, exp, bat = (pd.concat([p[k] for p in parts]).reindex(idx).astype(float) for k in range(3))
    return imp, exp, bat, sum(p[3] for p in parts)


def _revenue(ledger: Any, config: Any, start: pd.Timestamp, end: pd.Timestamp) -> VppRevenue:
    cap_price = float(config.vpp.capacity_price_per_kw)
    default_price = float(config.vpp.energy_price_per_kwh)
    if ledger is None:
        return vpp_revenue(np.zeros(0), cap_price, np.zeros(0), default_price)
    offers = {r.id: r.payload.get("price_per_kwh") for r in ledger.query(kinds=["offer"])}
    awards = ledger.query(kinds=["award"])
    price_of = {a.id: offers.get(a.payload.get("offer_id")) for a in awards}
    accepted = [float(s["accepted_w"]) / 1000.0 for a in awards for s in a.payload["slots"]
                if start <= pd.Timestamp(s["start"]).tz_convert("UTC") < end]
    perf = settled_slots(r.payload for r in ledger.query(kinds=["performance"]))
    perf = perf[(perf["start"] >= start) & (perf["start"] < end)]
    prices = np.array([default_price if price_of.get(a) is None else float(price_of[a]) for a in perf["award_id"]])
    return vpp_revenue(np.array(accepted), cap_price, perf["delivered_kwh"].to_numpy(float), prices)


def cost_summary(store: Any, config: Any, ledger: Any, period: Period, now: datetime,
                 cache: dict | None = None) -> dict[str, Any]:
    """Cost, CO2 and VPP revenue of ``period`` up to ``now`` (see the module doc).

    ``store`` is a :class:`vpp.storage.base.Store` (or None), ``ledger`` a
    :class:`vpp.market.ledger.Ledger` (or None), ``cache`` a dict kept between calls (past
    days' energy). Energy in kWh, money in the tariff currency, CO2 in kg.
    """
    from vpp.forecast.prices import price_provider

    tz = config.site.timezone
    start, end = period_window(period, now, tz)
    imp, exp, bat, metered = _site_energy(store, config, start, end, pd.Timestamp(now).tz_convert("UTC"), cache)
    tariff = config.tariff
    prices = price_provider(config).energy(imp.index)  # TOU or market prices, bill parts per kWh included
    cmp = compare(imp.to_numpy(), exp.to_numpy(), bat.to_numpy(), prices["buy_per_kwh"].to_numpy(),
                  prices["sell_per_kwh"].to_numpy(), tariff.co2_kg_per_kwh)
    rev = _revenue(ledger, config, start, end)
    return {"period": period, "start": start.to_pydatetime(), "end": end.to_pydatetime(), "timezone": tz,
            "currency": tariff.currency, "co2_kg_per_kwh": tariff.co2_kg_per_kwh,
            "price_version": prices.attrs.get("version", ""),
            "slots": len(imp), "metered_slots": metered,
            "actual": asdict(cmp.actual), "no_battery": asdict(cmp.no_battery),
            "savings": cmp.savings, "co2_avoided_kg": cmp.co2_avoided_kg,
            "battery_discharged_kwh": float(np.clip(bat.to_numpy(), 0, None).sum()),
            "battery_charged_kwh": float(np.clip(-bat.to_numpy(), 0, None).sum()),
            "vpp": asdict(rev)}
