"""Small site problems for the optimiser tests."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from optimizer import BatteryParams, GridParams, Horizon, Prices, Problem, SolveOptions

DATA = Path(__file__).resolve().parents[2] / "bench" / "data"
START = datetime(2026, 6, 21, 0, 0, tzinfo=UTC)


def day_shape(n: int, peak: float) -> np.ndarray:
    """A bell-shaped daily PV profile [W] over ``n`` slots of one day."""
    h = (np.arange(n) + 0.5) * 24 / n
    return np.clip(peak * np.sin(np.pi * (h - 6) / 12), 0, None)


def site(n: int = 24, slot_s: int = 3600, **kw) -> Problem:
    """One home: 10 kWh battery (±5 kW), 5 kW PV peak, flat 600 W load, TOU prices."""
    bat = dict(id="bat1", capacity_wh=10_000.0, max_charge_w=5000.0, max_discharge_w=5000.0,
               soc_min=0.1, soc_max=0.95, soc0=0.5, floor=0.3)
    bat.update(kw.pop("battery", {}))
    h = (np.arange(n) * slot_s / 3600) % 24
    buy = np.where((h >= 17) & (h < 22), 0.40, np.where(h < 7, 0.15, 0.25))
    args = dict(
        horizon=Horizon(START, slot_s, n),
        pv_w=day_shape(n, 5000.0) if n * slot_s == 86400 else np.zeros(n),
        load_w=np.full(n, 600.0),
        batteries=(BatteryParams(**bat),),
        grid=GridParams(8000.0, 5000.0),
        prices=Prices(buy=buy, sell=np.full(n, 0.08)),
        options=SolveOptions(),
    )
    args.update(kw)
    return Problem(**args)


@pytest.fixture
def make_site():
    return site


@pytest.fixture
def data_dir() -> Path:
    return DATA
