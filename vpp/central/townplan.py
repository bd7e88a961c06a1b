"""One town's plan as a self-contained task: the request (arrays only) and the planner.

The centre plans many towns at once (:mod:`vpp.central.fanout`); each town is one task of a
distributed engine, so its inputs must be cheap to ship and its planner a pure function.

Contract
--------
* :class:`TownRequest` holds numbers only: per-home battery ratings, SoC and reserve floor
  ``(H,)`` or ``(H, n)``, the PV arrays' geometry ``(A,)`` and home row, the weather and the
  town's load forecast ``(n,)``, prices ``(n,)`` and optional market prices. No site config
  crosses the wire (a 721-home request is ~0.2 MB of numpy buffers, shipped out of band).
  :func:`town_request` builds one from a town's :class:`~vpp.config.SiteConfig` the way the
  controller plans it (same horizon, tariff, reserve floors, default load, clear sky when
  no weather is given).
* :func:`plan_town` is what a worker runs: PV forecast per array
  (:func:`vpp.forecast.pv.forecast_pv`, vectorised over the arrays), summed per home, then
  the fleet planner (:func:`optimizer.fleet.plan_fleet`: aggregate LP → per-home
  disaggregation → checks), with offers sized when the request has market prices. The
  same request gives the same :class:`TownPlan` on any worker (deterministic).
* The disaster reserve is a hard floor of the fleet planner: no request can lower it (the
  floor is the config's reserve, storm ramp included, computed where the config lives).

Units: W, Wh, s, fraction; per-home arrays ``(H, n)`` homes by row; battery > 0 = discharge.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd

import optimizer
from optimizer.inputs import MARKET_SLOT_S
from vpp.config import PvArray, SiteConfig, Site
from vpp.control.reserve import battery_floors
from vpp.forecast.load import forecast_load
from vpp.forecast.pv import forecast_pv
from vpp.forecast.site import default_daily_load_wh, horizon_index
from vpp.forecast.tariff import expand_tariff
from vpp.forecast.weather import get_weather

__all__ = ["TownRequest", "TownPlan", "town_request", "plan_town", "HOME_IMPORT_W", "HOME_EXPORT_W"]

#: Home meter limits [W] (as :mod:`vpp.control.fleet_planner`): 60 A service, PV inverter export.
HOME_IMPORT_W = 12_000.0
HOME_EXPORT_W = 10_000.0
#: PV array temperature models, by code in :attr:`TownRequest.array_model`.
TEMPERATURE_MODELS = ("open_rack_glass_glass", "close_mount_glass_glass", "open_rack_glass_polymer",
                      "insulated_back_glass_polymer")


@dataclass
class TownRequest:
    """Everything one town's plan needs, as arrays (see the module docstring).

    ``battery_ids`` / ``home_ids`` name the rows; ``array_home`` is each PV array's battery row
    (-1: no planned battery behind it, its PV is not planned); ``weather`` holds ``ghi`` or
    ``cloud_cover`` [W/m2, %], ``temp_air`` [°C], ``wind_speed`` [m/s] per slot (NaN = none);
    ``load_w`` is the town's load forecast [W] shared over the homes by ``load_share``;
    ``market`` (optional) sizes aggregator offers per 30-min slot.
    """

    town: str
    start: datetime
    slot_s: int
    n: int
    latitude: float
    longitude: float
    altitude: float
    battery_ids: tuple[str, ...]
    home_ids: tuple[str, ...]
    capacity_wh: np.ndarray
    max_charge_w: np.ndarray
    max_discharge_w: np.ndarray
    eta_charge: np.ndarray
    eta_discharge: np.ndarray
    soc_min: np.ndarray
    soc_max: np.ndarray
    soc0: np.ndarray
    floor: np.ndarray
    array_kwp: np.ndarray
    array_tilt: np.ndarray
    array_azimuth: np.ndarray
    array_losses: np.ndarray
    array_model: np.ndarray
    array_home: np.ndarray
    weather: dict[str, np.ndarray]
    load_w: np.ndarray
    load_share: np.ndarray
    buy: np.ndarray
    sell: np.ndarray
    co2_kg_per_kwh: np.ndarray
    co2_price_per_kg: float
    feeder_import_w: float
    feeder_export_w: float
    home_import_w: float = HOME_IMPORT_W
    home_export_w: float = HOME_EXPORT_W
    market: optimizer.MarketPrices | None = None
    duration_s: float = 3600.0
    activation_ratio: float = 0.2
    options: optimizer.SolveOptions = field(default_factory=optimizer.SolveOptions)

    @property
    def n_homes(self) -> int:
        return len(self.battery_ids)

    def nbytes(self) -> int:
        """Size of the numpy payload [bytes] (what the engine ships out of band)."""
        arrays = [v for v in vars(self).values() if isinstance(v, np.ndarray)] + list(self.weather.values())
        return int(sum(a.nbytes for a in arrays))


@dataclass
class TownPlan:
    """One town's plan: per-home battery power and SoC ``(H, n)`` [W, fraction], the feeder
    (n,) [W], offers per 30-min slot (up/down [W], empty without market prices), cost
    [currency], the fleet checks' ``violations`` / ``warnings`` and where and how fast it ran
    (``timings``: forecast / plan wall and the task's CPU time [s]; ``worker_pid``)."""

    town: str
    start: datetime
    slot_s: int
    battery_ids: tuple[str, ...]
    battery_w: np.ndarray
    soc: np.ndarray
    feeder_import_w: np.ndarray
    feeder_export_w: np.ndarray
    offer_up_w: np.ndarray
    offer_down_w: np.ndarray
    offer_slot_s: int
    cost: float
    violations: list[str]
    warnings: list[str]
    timings: dict[str, float]
    worker_pid: int

    @property
    def validated(self) -> bool:
        """No broken home, feeder or award limit: the plan may replace the town's local one."""
        return not self.violations


def town_request(config: SiteConfig, now: datetime, *, town: str | None = None,
                 soc: dict[str, float] | None = None, weather=None,
                 market: optimizer.MarketPrices | None = None) -> TownRequest:
    """The request for ``config``'s town planned from the slot containing ``now`` (UTC).

    ``soc``: measured SoC per battery id (missing: 0.5); ``weather``: a weather provider
    (None = clear sky); ``market``: prices per 30-min slot of the horizon (None = no offers).
    Floors are the config's reserve per battery and slot (:func:`battery_floors`).
    """
    soc = soc or {}
    index = horizon_index(config, now)
    n, slot_s = len(index), config.optimiser.slot_s
    times = [t.to_pydatetime() for t in index]
    bats = config.devices_of("battery")
    if not bats:
        raise ValueError(f"town {town or config.site.name}: no batteries to plan")
    floors = battery_floors(config, times, None)
    fl = np.vstack([np.broadcast_to(np.asarray(floors[b.id], float), (n,)) for b in bats])
    if np.all(fl == fl[:, :1]):
        fl = fl[:, 0].copy()  # a constant floor ships as (H,)
    row_of_home = {b.home or b.id: i for i, b in enumerate(bats)}
    home_of = {d.id: d.home for d in config.devices}
    arrays = config.pv_arrays
    w = get_weather(weather, config.site, index[0], index[-1] + index.freq, index.freq).frame
    tariff = expand_tariff(config.tariff, index, config.site.timezone)
    load = forecast_load(None, index, config.site.timezone, default_daily_wh=default_daily_load_wh(config))
    homes = {d.home for d in config.devices if d.home} or {None}
    r = [b.ratings for b in bats]
    col = lambda xs: np.asarray(list(xs), float)  # noqa: E731
    return TownRequest(
        town=town or config.site.name, start=index[0].to_pydatetime(), slot_s=slot_s, n=n,
        latitude=config.site.latitude, longitude=config.site.longitude, altitude=config.site.altitude,
        battery_ids=tuple(b.id for b in bats), home_ids=tuple(b.home or b.id for b in bats),
        capacity_wh=col(x.capacity_wh for x in r), max_charge_w=col(x.max_charge_w for x in r),
        max_discharge_w=col(x.max_discharge_w for x in r), eta_charge=col(x.charge_efficiency for x in r),
        eta_discharge=col(x.discharge_efficiency for x in r), soc_min=col(x.soc_min for x in r),
        soc_max=col(x.soc_max for x in r), soc0=col(soc.get(b.id, 0.5) for b in bats), floor=fl,
        array_kwp=col(a.kwp for a in arrays), array_tilt=col(a.tilt for a in arrays),
        array_azimuth=col(a.azimuth for a in arrays), array_losses=col(a.losses for a in arrays),
        array_model=np.array([TEMPERATURE_MODELS.index(a.temperature_model) for a in arrays], np.int8),
        array_home=np.array([row_of_home.get(home_of.get(a.inverter or ""), -1) for a in arrays], np.int32),
        weather={c: w[c].to_numpy(float) for c in w.columns},
        load_w=load.to_numpy(float), load_share=np.full(len(bats), 1.0 / len(homes)),
        buy=tariff["buy_per_kwh"].to_numpy(float), sell=tariff["sell_per_kwh"].to_numpy(float),
        co2_kg_per_kwh=tariff["co2_kg_per_kwh"].to_numpy(float), co2_price_per_kg=config.tariff.co2_price_per_kg,
        feeder_import_w=config.grid.import_limit_w, feeder_export_w=config.grid.export_limit_w,
        market=market, duration_s=config.vpp.duration_s, activation_ratio=config.vpp.activation_ratio,
        options=optimizer.SolveOptions(solver=config.optimiser.solver, time_limit_s=config.optimiser.time_limit_s,
                                       mip_gap=config.optimiser.mip_gap,
                                       recovery_penalty_per_kwh=config.reserve.recovery_penalty_per_kwh))


def home_pv(req: TownRequest) -> np.ndarray:
    """PV forecast per battery row ``(H, n)`` [W]: every array's AC power summed into its home."""
    index = pd.date_range(pd.Timestamp(req.start).tz_convert("UTC"), periods=req.n, freq=f"{req.slot_s}s")
    site = Site.model_construct(name=req.town, latitude=req.latitude, longitude=req.longitude,
                                altitude=req.altitude)
    arrays = [PvArray.model_construct(id=str(i), kwp=float(k), tilt=float(t), azimuth=float(a), losses=float(lo),
                                      temperature_model=TEMPERATURE_MODELS[int(m)])
              for i, (k, t, a, lo, m) in enumerate(zip(req.array_kwp, req.array_tilt, req.array_azimuth,
                                                        req.array_losses, req.array_model))]
    pv = np.zeros((req.n_homes, req.n))
    if arrays:
        by_array = forecast_pv(arrays, site, pd.DataFrame(req.weather, index=index)).to_numpy().T  # (A, n)
        rows = np.asarray(req.array_home)
        np.add.at(pv, rows[rows >= 0], by_array[rows >= 0])
    return pv


def fleet_problem(req: TownRequest) -> "optimizer.fleet.FleetProblem":
    """The fleet planner's problem of ``req`` (PV forecast included)."""
    from optimizer.fleet import FleetProblem

    horizon = optimizer.Horizon(req.start, req.slot_s, req.n)
    offers = None
    if req.market is not None:
        offers = optimizer.OfferParams(prices=req.market, slot_s=MARKET_SLOT_S, duration_s=req.duration_s,
                                       activation_ratio=req.activation_ratio)
    return FleetProblem(
        horizon=horizon, pv_w=home_pv(req), load_w=np.outer(req.load_share, req.load_w),
        capacity_wh=req.capacity_wh, max_charge_w=req.max_charge_w, max_discharge_w=req.max_discharge_w,
        soc0=req.soc0, floor=req.floor, home_import_limit_w=req.home_import_w,
        home_export_limit_w=req.home_export_w,
        feeder=optimizer.GridParams(req.feeder_import_w, req.feeder_export_w),
        prices=optimizer.Prices(buy=req.buy, sell=req.sell, co2_kg_per_kwh=req.co2_kg_per_kwh,
                                co2_price_per_kg=req.co2_price_per_kg),
        eta_charge=req.eta_charge, eta_discharge=req.eta_discharge, soc_min=req.soc_min, soc_max=req.soc_max,
        options=req.options, offers=offers)


def plan_town(req: TownRequest) -> TownPlan:
    """Plan one town (what a worker runs; pure and deterministic, see the module docstring)."""
    from optimizer.fleet import plan_fleet

    t0, c0 = time.perf_counter(), time.thread_time()
    fp = fleet_problem(req)
    t1 = time.perf_counter()
    plan = plan_fleet(fp)
    offers = plan.aggregate.offers if req.market is not None else []
    up = np.array([o.up_w for o in offers], float)
    down = np.array([o.down_w for o in offers], float)
    return TownPlan(
        town=req.town, start=req.start, slot_s=req.slot_s, battery_ids=req.battery_ids,
        battery_w=plan.battery_w, soc=plan.soc, feeder_import_w=plan.feeder_import_w,
        feeder_export_w=plan.feeder_export_w, offer_up_w=up, offer_down_w=down, offer_slot_s=MARKET_SLOT_S,
        cost=plan.total_cost, violations=list(plan.violations), warnings=list(plan.warnings),
        timings={"forecast_s": t1 - t0, "plan_s": time.perf_counter() - t1, "cpu_s": time.thread_time() - c0}, worker_pid=os.getpid())


def end_of(req: TownRequest) -> datetime:
    """End of the request's horizon (UTC)."""
    return req.start.astimezone(timezone.utc) + timedelta(seconds=req.slot_s * req.n)
