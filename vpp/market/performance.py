"""Dispatch performance: metered demand against the baseline, per 30-min slot.

Conventions
-----------
All inputs are mean site power per slot [W] (grid import > 0), indexed by UTC slot start.
A *delivered* amount is the reduction of net import relative to the baseline:
``delivered_w = baseline_w − actual_w`` (> 0 = the site helped the grid; "up" direction).
A "down" dispatch (absorb power) flips the sign so that delivered > 0 still means "did what
was asked". Energy per slot: ``kwh = w × slot_s / 3600 / 1000``.

Compliance ratio = delivered kWh / instructed kWh over the dispatch (uncapped: 1.1 means
110 %). A slot with no metered value counts as zero delivery and is listed in
``missing_slots``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from vpp.slots import SLOT_S  # noqa: E402


@dataclass(frozen=True, slots=True)
class DispatchPerformance:
    """Result of :func:`evaluate_dispatch`.

    Attributes
    ----------
    slots : pandas.DataFrame
        Index: UTC slot start. Columns ``baseline_w``, ``actual_w``, ``instructed_w``,
        ``delivered_w``, ``delivered_kwh``, ``instructed_kwh``, ``ratio`` (per slot; NaN when
        nothing was instructed in the slot).
    delivered_kwh, instructed_kwh : float
        Totals over the dispatch [kWh].
    mean_delivered_kw : float
        Mean delivered power over the dispatch [kW].
    compliance_ratio : float
        ``delivered_kwh / instructed_kwh`` (NaN when nothing was instructed).
    missing_slots : tuple[pandas.Timestamp, ...]
    """

    slots: pd.DataFrame
    delivered_kwh: float
    instructed_kwh: float
    mean_delivered_kw: float
    compliance_ratio: float
    missing_slots: tuple[pd.Timestamp, ...]

    def as_dict(self) -> dict:
        """JSON-ready summary with per-slot rows (timestamps as ISO 8601 UTC)."""
        rows = [
            {"start": ts.isoformat(), **{k: (None if pd.isna(v) else float(v)) for k, v in row.items()}}
            for ts, row in self.slots.iterrows()
        ]
        return {
            "delivered_kwh": self.delivered_kwh,
            "instructed_kwh": self.instructed_kwh,
            "mean_delivered_kw": self.mean_delivered_kw,
            "compliance_ratio": None if np.isnan(self.compliance_ratio) else self.compliance_ratio,
            "missing_slots": [t.isoformat() for t in self.missing_slots],
            "slots": rows,
        }


def evaluate_dispatch(
    baseline_w: pd.Series,
    actual_w: pd.Series,
    instructed_w: pd.Series | float,
    *,
    direction: Literal["up", "down"] = "up",
    slot_s: int = SLOT_S,
) -> DispatchPerformance:
    """Compare metered demand with the baseline over the baseline's slots.

    Parameters
    ----------
    baseline_w : pandas.Series
        Baseline mean power per slot [W]; its index defines the dispatch slots.
    actual_w : pandas.Series
        Metered mean net import per slot [W]; extra slots are ignored, missing ones count 0.
    instructed_w : pandas.Series or float
        Instructed delivery per slot [W], >= 0 (a scalar applies to every slot).
    direction : {"up", "down"}
        "up" = reduce import / increase export; "down" = increase import.
    slot_s : int
        Slot length [s].
    """
    if baseline_w.isna().any():
        raise ValueError("baseline has missing slots")
    idx = baseline_w.index
    actual = actual_w.reindex(idx).astype(float)
    instructed = (
        pd.Series(float(instructed_w), index=idx)
        if np.isscalar(instructed_w)
        else instructed_w.reindex(idx).astype(float)
    )
    if instructed.isna().any():
        raise ValueError("instructed amount missing for some baseline slots")
    if (instructed < 0).any():
        raise ValueError("instructed amounts must be >= 0 (use direction for the sign)")
    sign = 1.0 if direction == "up" else -1.0
    delivered = (sign * (baseline_w.astype(float) - actual)).fillna(0.0)
    to_kwh = slot_s / 3600.0 / 1000.0
    frame = pd.DataFrame(
        {
            "baseline_w": baseline_w.astype(float),
            "actual_w": actual,
            "instructed_w": instructed,
            "delivered_w": delivered,
            "delivered_kwh": delivered * to_kwh,
            "instructed_kwh": instructed * to_kwh,
        }
    )
    frame["ratio"] = frame["delivered_kwh"] / frame["instructed_kwh"].where(frame["instructed_kwh"] > 0)
    delivered_kwh = float(frame["delivered_kwh"].sum())
    instructed_kwh = float(frame["instructed_kwh"].sum())
    hours = len(idx) * slot_s / 3600.0
    return DispatchPerformance(
        slots=frame,
        delivered_kwh=delivered_kwh,
        instructed_kwh=instructed_kwh,
        mean_delivered_kw=delivered_kwh / hours if hours else float("nan"),
        compliance_ratio=delivered_kwh / instructed_kwh if instructed_kwh > 0 else float("nan"),
        missing_slots=tuple(idx[actual.isna().to_numpy()]),
    )
