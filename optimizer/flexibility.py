"""Flexibility a planned site can offer an aggregator, per 30-min settlement slot.

Counted from the site's batteries only, relative to the plan and never using energy below
the disaster-reserve floor. Up = more discharge / less charge (kW the site can add to export
or remove from import); down = more charge.

For a window starting at plan slot ``k`` and battery ``b`` (``w`` plan power, > 0 discharge):

* ``up_kw  = min_{t∈window} min(P_d − w[t], E_grid − (exp[t] − imp[t]))`` (summed over
  batteries, grid headroom applied once);
* ``up_kwh = η_d · C_b · min_{j ≥ k−1} (soc[j] − floor[j])`` — extra energy taken now lowers
  every later SoC of the plan, so the tightest later margin counts (``soc[k−1] = soc0``);
* ``down_kw`` / ``down_kwh`` likewise with ``P_c + w[t]``, ``I_grid − (imp − exp)`` and
  ``C_b/η_c · min_{j ≥ k−1} (soc_max − soc[j])``;
* the kW are then capped to what the kWh can sustain for the whole window
  (``kw ≤ kwh / window``), so every offered kW is deliverable for the full slot;
* ``*_sustain_s = 3600 · kwh / kw``: how long the offered kW can be held (≥ the window).

Windows with an outage slot offer nothing (islanded).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

import warnings

import numpy as np

from .inputs import Problem
from .schedule import Schedule

__all__ = ["FlexSlot", "flexibility"]


@dataclass
class FlexSlot:
    """Offerable flexibility for one settlement slot [kW, kWh, s]."""

    start: datetime
    duration_s: int
    up_kw: float
    down_kw: float
    up_kwh: float
    down_kwh: float
    up_sustain_s: float
    down_sustain_s: float

    def to_dict(self) -> dict:
        d = asdict(self)
        d["start"] = self.start.isoformat()
        return d


def _suffix_min(a: np.ndarray) -> np.ndarray:
    return np.minimum.accumulate(a[::-1])[::-1]


def flexibility(problem: Problem, schedule: Schedule, slot_s: int = 1800) -> list[FlexSlot]:
    """Per ``slot_s`` window of the plan: up/down power [kW], energy [kWh] and sustain [s].

    Plan slots longer than ``slot_s`` give several equal windows; shorter ones are combined
    (the window offers the minimum over its plan slots). Windows start on clock multiples of
    ``slot_s``.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # repairs were already reported by solve()
        p = problem.cleaned()
    n, ps = schedule.n, schedule.slot_s
    outage = p.outage
    up_w = np.zeros(n)
    dn_w = np.zeros(n)
    up_wh = np.zeros(n)
    dn_wh = np.zeros(n)
    for b in p.batteries:
        w = schedule.battery_w[b.id]
        soc = schedule.soc[b.id]
        floor = np.nan_to_num(schedule.floor[b.id], nan=b.soc_min)
        pd = np.broadcast_to(np.asarray(b.max_discharge_w, float), (n,))
        pc = np.broadcast_to(np.asarray(b.max_charge_w, float), (n,))
        up_w += np.clip(pd - w, 0, None)
        dn_w += np.clip(pc + w, 0, None)
        # margin after each slot; the window starting at slot k also needs soc[k-1] (soc0 at 0)
        m_up = _suffix_min(np.r_[max(b.soc0 - floor[0], 0.0), soc - floor])
        m_dn = _suffix_min(np.r_[b.soc_max - b.soc0, b.soc_max - soc])
        up_wh += np.clip(m_up[:-1], 0, None) * b.capacity_wh * b.eta_discharge
        dn_wh += np.clip(m_dn[:-1], 0, None) * b.capacity_wh / b.eta_charge
    net = schedule.grid_export_w - schedule.grid_import_w
    up_w = np.minimum(up_w, np.clip(p.grid.export_limit_w - net, 0, None))
    dn_w = np.minimum(dn_w, np.clip(p.grid.import_limit_w + net, 0, None))
    up_w[outage] = dn_w[outage] = up_wh[outage] = dn_wh[outage] = 0.0

    out = []
    total_s = n * ps
    # settlement windows sit on clock boundaries of ``slot_s`` (e.g. :00/:30), whatever the
    # plan's own start (a 15-min plan may start at :15 or :45); a leading part-window is skipped
    offset = int(-schedule.start.timestamp() % slot_s)
    for k in range((total_s - offset) // slot_s):
        a, e = offset + k * slot_s, offset + (k + 1) * slot_s
        idx = np.arange(a // ps, min(n, -(-e // ps)))
        if idx.size == 0:
            break
        # energy margin is set by the window's first plan slot (later slots only add plan usage)
        j = idx[0]
        ue, de = float(up_wh[j]) / 1000, float(dn_wh[j]) / 1000
        hours = slot_s / 3600
        uk = min(float(up_w[idx].min()) / 1000, ue / hours)
        dk = min(float(dn_w[idx].min()) / 1000, de / hours)
        out.append(
            FlexSlot(
                start=schedule.start + timedelta(seconds=a),
                duration_s=slot_s,
                up_kw=uk,
                down_kw=dk,
                up_kwh=ue,
                down_kwh=de,
                up_sustain_s=3600 * ue / uk if uk > 0 else 0.0,
                down_sustain_s=3600 * de / dk if dk > 0 else 0.0,
            )
        )
    return out
