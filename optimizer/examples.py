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
