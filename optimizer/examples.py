"""Golden example problems shared by tests and benchmarks.

:func:`peer_problem` is the peer optimiser's (EMHASS) reference problem, described in the
project's shared reference notes §1: 48 h, one 20 kWh battery, grid limits, two on/off
loads; known optimum net bill −1.98409 (96 steps) and −1.98459 (192 steps).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from .inputs import (
    MARKET_SLOT_S,
    BatteryParams,
    DeferrableLoad,
    GridParams,
    Horizon,
    Prices,
    Problem,
    SolveOptions,
)

PEER_OPTIMUM = {96: -1.98409, 192: -1.98459}


def read_peer_inputs(path: str | Path) -> dict[str, np.ndarray]:
    """Columns of a peer ``inputs_N*.csv``: ``p_pv_forecast`` [W], ``p_load_forecast`` [W],
    ``unit_load_cost`` / ``unit_prod_price`` [currency/kWh]; plus ``start`` (first index)."""
    import pandas as pd

    df = pd.read_csv(path, index_col=0)
    start = datetime.fromisoformat(str(df.index[0])).astimezone(UTC)
    out = {c: df[c].to_numpy(float) for c in df.columns}
    out["start"] = start
    return out


def peer_problem(path: str | Path, options: SolveOptions | None = None) -> Problem:
    """The peer problem for the series in ``path`` (its step count sets the slot length)."""
    d = read_peer_inputs(path)
    n = len(d["p_pv_forecast"])
    slot_s = int(48 * 3600 / n)
    steps_4h = int(4 * 3600 / slot_s)
    bat = BatteryParams(
        id="bat1",
        capacity_wh=20_000.0,
        max_charge_w=10_000.0,
        max_discharge_w=10_000.0,
        eta_charge=0.95,
        eta_discharge=0.95,
        soc_min=0.2,
        soc_max=0.95,
        soc0=0.5,
        soc_end=0.5,
        floor=0.0,
    )
    return Problem(
        horizon=Horizon(d["start"], slot_s, n),
        pv_w=d["p_pv_forecast"],
        load_w=d["p_load_forecast"],
        batteries=(bat,),
        grid=GridParams(import_limit_w=12_000.0, export_limit_w=10_000.0),
        prices=Prices(buy=d["unit_load_cost"], sell=d["unit_prod_price"]),
        deferrable=(
            DeferrableLoad("def0", 3000.0, steps_4h),
            DeferrableLoad("def1", 7400.0, steps_4h),
        ),
        options=options or SolveOptions(pv_curtailable=False),
    )


def example_fleet(n_homes: int = 721, n: int = 192, slot_s: int = 900, seed: int = 0):
    """A synthetic new-town district: ``n_homes`` homes with 3–6 kW PV, 5–16 kWh batteries,
    evening-peaked loads, a TOU tariff and a feeder sized below the homes' PV peak (so the
    export limit binds at noon). Deterministic for a given ``seed``."""
    from .fleet import FleetProblem

    rng = np.random.default_rng(seed)
    h = (np.arange(n) * slot_s / 3600) % 24
    sun = np.clip(np.sin(np.pi * (h - 5.5) / 13), 0, None)
    cloud = 0.7 + 0.3 * rng.random((n_homes, 1))
    pv = rng.uniform(3000, 6000, (n_homes, 1)) * sun * cloud
    base = rng.uniform(250, 500, (n_homes, 1))
    evening = np.exp(-0.5 * ((h - 19.5) / 2.0) ** 2) + 0.5 * np.exp(-0.5 * ((h - 7.5) / 1.2) ** 2)
    load = base + rng.uniform(800, 2500, (n_homes, 1)) * evening * (0.8 + 0.4 * rng.random((n_homes, n)))
    cap = rng.choice([5000.0, 9800.0, 12000.0, 16000.0], n_homes)
    pmax = np.minimum(cap / 2, 5000.0)
    buy = np.where((h >= 17) & (h < 22), 0.40, np.where((h >= 23) | (h < 7), 0.16, 0.28))
    return FleetProblem(
        horizon=Horizon(datetime(2026, 6, 21, tzinfo=UTC), slot_s, n),
        pv_w=pv,
        load_w=load,
        capacity_wh=cap,
        max_charge_w=pmax,
        max_discharge_w=pmax,
        # a few homes start below their reserve floor (after an outage, a fault)
        soc0=np.where(rng.random(n_homes) < 0.05, 0.15, rng.uniform(0.3, 0.9, n_homes)),
        floor=0.3,
        home_import_limit_w=8000.0,
        home_export_limit_w=5500.0,
        feeder=GridParams(import_limit_w=1500.0 * n_homes, export_limit_w=1800.0 * n_homes),
        prices=Prices(buy=buy, sell=np.full(n, 0.08), co2_kg_per_kwh=0.45, co2_price_per_kg=0.01),
        soc_end=0.5,
        degradation_cost_per_kwh=0.01,
    )


def bids_problem(n: int = 192, slot_s: int = 900, seed: int = 0) -> Problem:
    """The community centre bidding 48 h ahead: one 100 kWh / ±50 kW battery, 50 kWp PV,
    a daytime-heavy load, TOU tariff, ΔkW capacity prices peaking in the evening (円/kW per
    30 min), p10/p90 PV and load from a synthetic error history, 1 h activations, 20 %
    expected activation, 30 % reserve floor. Deterministic for a given ``seed``."""
    from .inputs import MarketPrices, OfferParams
    from .uncertainty import forecast_quantiles

    rng = np.random.default_rng(seed)
    h = (np.arange(n) * slot_s / 3600) % 24
    pv = np.clip(50_000.0 * np.sin(np.pi * (h - 5.5) / 13), 0, None) * (0.8 + 0.2 * rng.random(n))
    load = 8000.0 + 12_000.0 * np.exp(-0.5 * ((h - 13) / 3.5) ** 2) + 6000.0 * np.exp(-0.5 * ((h - 19) / 1.5) ** 2)
    buy = np.where((h >= 17) & (h < 22), 40.0, np.where((h >= 23) | (h < 7), 16.0, 28.0))
    k = MARKET_SLOT_S // slot_s
    hj = (np.arange(n // k) * 0.5) % 24
    cap = 0.5 + 2.5 * np.exp(-0.5 * ((hj - 18.5) / 2.0) ** 2)  # 円/kW per 30 min
    pv_lo, _, pv_hi = forecast_quantiles(rng.normal(0, 6000.0, 500), pv)
    ld_lo, _, ld_hi = forecast_quantiles(rng.normal(0, 2000.0, 500), load)
    bat = BatteryParams(id="bess1", capacity_wh=100_000.0, max_charge_w=50_000.0, max_discharge_w=50_000.0,
                        eta_charge=0.95, eta_discharge=0.95, soc_min=0.05, soc_max=0.95, soc0=0.5,
                        degradation_cost_per_kwh=2.0, floor=0.3)
    return Problem(
        horizon=Horizon(datetime(2026, 6, 21, 15, tzinfo=UTC), slot_s, n),
        pv_w=pv, load_w=load, batteries=(bat,),
        grid=GridParams(import_limit_w=80_000.0, export_limit_w=40_000.0),
        prices=Prices(buy=buy, sell=np.full(n, 8.5)),
        offers=OfferParams(MarketPrices(capacity_up=cap, capacity_down=0.6 * cap, energy_up=30.0, energy_down=0.0),
                           slot_s=MARKET_SLOT_S, duration_s=3600.0, activation_ratio=0.2,
                           pv_low_w=pv_lo, pv_high_w=pv_hi, load_low_w=ld_lo, load_high_w=ld_hi),
        options=SolveOptions(recovery_penalty_per_kwh=1000.0),
    )
