"""Site metering and plan series for baselines and performance, per 30-min slot [W].

* :func:`metered_import_w` — mean net grid import per slot from the store's grid meter
  (``energy_slots``: counters where stored, else integrated power); for a meter that speaks
  ECHONET Lite, from its fixed-time 30-minute readings (EA/EB) in a
  :class:`~vpp.market.half_hour_metering.HalfHourLog` instead;
* :func:`plan_import_w` — the controller's planned net import (``grid_import − grid_export``)
  per slot, averaged onto 30-min slots;
* :func:`baseline_for` — the requested baseline method over a window (:func:`site_baseline`:
  from the running services, window widened to whole slots);
* :func:`versions` — tariff and CO2 versions stored with every performance record (hashes
  of the configured tariff and CO2 factor, so a settlement names the inputs it used).
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import numpy as np
import pandas as pd

from vpp.config import SiteConfig
from vpp.market.half_hour_metering import HalfHourLog, half_hour_import_w
from vpp.market.baseline import BaselineError, BaselineResult, SameDayAdjustment, high_x_of_y, plan_baseline
from vpp.market.ledger import canonical_hash

from vpp.slots import SLOT_S, covering
PLAN_ALGORITHM_VERSION = "plan-baseline/1"
Method = Literal["high4of5", "plan"]


def grid_meter_id(config: SiteConfig) -> str | None:
    meter = config.grid_meter()
    return meter.id if meter is not None else None


def metered_import_w(store: Any, config: SiteConfig, start: datetime, end: datetime, *,
                     half_hour: HalfHourLog | None = None) -> pd.Series:
    """Mean net import [W] per 30-min slot in ``[start, end)`` (NaN where unmetered).

    An ECHONET Lite grid meter is metered from its 30-minute readings in ``half_hour`` (the
    smart meter's record, flagged slots NaN), never from integrated power."""
    meter = grid_meter_id(config)
    if meter is not None and config.device(meter).protocol == "echonet_lite":
        if half_hour is None:
            raise BaselineError(f"meter {meter!r} speaks ECHONET Lite: its 30-minute readings are needed")
        return half_hour_import_w(half_hour, meter, config.site.timezone, start, end)
    if store is None or meter is None:
        raise BaselineError("no metered history: the API runs without a store or the site has no grid meter")
    idx = pd.date_range(pd.Timestamp(start).tz_convert("UTC"), pd.Timestamp(end).tz_convert("UTC"),
                        freq=f"{SLOT_S}s", inclusive="left")
    try:
        kwh = store.energy_slots(meter, start=start, end=end, slot_s=SLOT_S)
    except KeyError:
        return pd.Series(np.nan, index=idx)
    col = kwh[meter] if meter in kwh else pd.Series(np.nan, index=idx)
    return (col.reindex(idx) * 1000.0 * 3600.0 / SLOT_S).astype(float)


def home_import_w(store: Any, config: SiteConfig, home: str, start: datetime, end: datetime, *,
                  half_hour: HalfHourLog | None = None) -> pd.Series:
    """Mean net import [W] per 30-min slot of one home's own meter (role ``household``):
    its 30-minute readings when it speaks ECHONET Lite, else the store's energy slots."""
    meters = [d for d in config.devices_of("meter") if d.home == home]
    if not meters:
        raise BaselineError(f"home {home!r} has no meter")
    m = meters[0]
    if m.protocol == "echonet_lite":
        if half_hour is None:
            raise BaselineError(f"meter {m.id!r} speaks ECHONET Lite: its 30-minute readings are needed")
        return half_hour_import_w(half_hour, m.id, config.site.timezone, start, end)
    idx = pd.date_range(pd.Timestamp(start).tz_convert("UTC"), pd.Timestamp(end).tz_convert("UTC"),
                        freq=f"{SLOT_S}s", inclusive="left")
    if store is None:
        raise BaselineError("no metered history: no store")
    try:
        kwh = store.energy_slots(m.id, start=start, end=end, slot_s=SLOT_S)
    except KeyError:
        return pd.Series(np.nan, index=idx)
    col = kwh[m.id] if m.id in kwh else pd.Series(np.nan, index=idx)
    return (col.reindex(idx) * 1000.0 * 3600.0 / SLOT_S).astype(float)


def plan_import_w(controller: Any, start: datetime, end: datetime) -> pd.Series | None:
    """Planned net import [W] per 30-min slot from ``controller.plan`` (None without a plan)."""
    plan = getattr(controller, "plan", None)
    if plan is None:
        return None
    s = plan.schedule
    idx = pd.date_range(pd.Timestamp(s.start).tz_convert("UTC"), periods=s.n, freq=f"{s.slot_s}s")
    net = pd.Series(np.asarray(s.grid_import_w, float) - np.asarray(s.grid_export_w, float), index=idx)
    per_slot = net.resample(f"{SLOT_S}s", origin="epoch").mean()
    a, e = pd.Timestamp(start).tz_convert("UTC"), pd.Timestamp(end).tz_convert("UTC")
    return per_slot[(per_slot.index >= a) & (per_slot.index < e)]


def baseline_for(method: Method, config: SiteConfig, start: datetime, end: datetime, *, store: Any = None,
                 plan_w: pd.Series | None = None, lookback_days: int = 30,
                 half_hour: HalfHourLog | None = None) -> BaselineResult:
    """Baseline [W per slot] over ``[start, end)``; ``plan_w`` is the plan series for ``plan``."""
    if method == "plan":
        if plan_w is None:
            raise BaselineError("no plan to use as the baseline")
        return plan_baseline(plan_w, start, end)
    hist_start = pd.Timestamp(start).tz_convert("UTC").floor("D") - pd.Timedelta(days=lookback_days + 1)
    history = metered_import_w(store, config, hist_start.to_pydatetime(), end, half_hour=half_hour)
    adj = SameDayAdjustment()
    if history.reindex(pd.date_range(pd.Timestamp(start) - pd.Timedelta(hours=4), pd.Timestamp(start) - pd.Timedelta(hours=1),
                                     freq=f"{SLOT_S}s", inclusive="left")).isna().any():
        adj = None  # no pre-event metering on the day: unadjusted
    return high_x_of_y(history.dropna(), start, end, tz=config.site.timezone, lookback_days=lookback_days,
                       adjustment=adj)


def versions(config: SiteConfig) -> tuple[str, str]:
    """``(tariff_version, co2_version)``: short content hashes of the configured inputs."""
    t = config.tariff.model_dump(mode="json")
    co2 = {"co2_kg_per_kwh": t.get("co2_kg_per_kwh"), "co2_price_per_kg": t.get("co2_price_per_kg")}
    return f"tariff:{canonical_hash(t)[:12]}", f"co2:{canonical_hash(co2)[:12]}"


def slot_window(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """``[start, end)`` widened to whole 30-min slots (:func:`vpp.slots.covering`)."""
    return covering(start, end)


def site_baseline(method: Method, config: SiteConfig, start: datetime, end: datetime, *, store: Any = None,
                  controller: Any = None, half_hour: Any = None) -> tuple[BaselineResult, str]:
    """The site baseline over ``[start, end)`` widened to whole slots, and its algorithm
    version: ``plan`` from ``controller``'s current plan, ``high4of5`` from ``store`` (or from
    ``half_hour``, the smart meter's 30-minute readings, for an ECHONET Lite grid meter)."""
    a, e = covering(start, end)
    plan_w = plan_import_w(controller, a, e) if method == "plan" else None
    b = baseline_for(method, config, a, e, store=store, plan_w=plan_w, half_hour=half_hour)
    return b, PLAN_ALGORITHM_VERSION if method == "plan" else b.algorithm_version


def plan_importer(controller: Any):
    """``(start, end) -> planned net import [W] per slot | None`` over ``controller``'s plan
    (always None without a controller)."""
    return lambda start, end: plan_import_w(controller, start, end)
