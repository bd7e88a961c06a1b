"""計画値同時同量 in a HIL run: at each gate closure (1 h before a コマ) the controller's plan
for that コマ is taken as the submitted plan (import and export kWh, never netted); after
the run the metered grid power of each コマ is compared with it (:mod:`vpp.market.balancing`).

KPIs: ``imbalance_koma`` (コマ planned and metered), ``imbalance_abs_kwh``,
``imbalance_surplus_kwh`` / ``imbalance_shortage_kwh``, ``imbalance_yen`` (> 0 received; at
the config's imbalance price file when it covers the run, else NaN).
"""
from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd

from simulators.scenarios.kpis import KPI_DOC
from vpp.market.balancing import GATE_BEFORE
from vpp.slots import SLOT, SLOT_S

# the report's KPI table explains these too (kept here, beside their computation)
KPI_DOC.update({
    "imbalance_koma": "30-min コマ with a plan fixed at gate closure (1 h before) and a full metered コマ",
    "imbalance_abs_kwh": "Σ |metered − planned net position| over those コマ (計画値同時同量) [kWh]",
    "imbalance_surplus_kwh": "Σ of the long imbalances (more export / less import than planned) [kWh]",
    "imbalance_shortage_kwh": "Σ of the short imbalances [kWh]",
    "imbalance_yen": "imbalance settlement at the configured imbalance prices, > 0 received [円] (NaN: none)",
})


class GatePlans:
    """Collects the plan in force at each gate closure, called once per control step."""

    def __init__(self) -> None:
        self.planned: dict[datetime, tuple[float, float]] = {}

    def on_step(self, now: datetime, plan) -> None:
        if plan is None or now.timestamp() % SLOT_S:
            return
        koma = now + GATE_BEFORE
        if koma in self.planned:
            return
        s = plan.schedule
        t = np.array([(s.start.timestamp() + s.slot_s * i) for i in range(s.n)])
        sel = (t >= koma.timestamp()) & (t < (koma + SLOT).timestamp())
        if sel.sum() * s.slot_s != SLOT_S:
            return
        h = s.slot_s / 3.6e6
        self.planned[koma] = (float(s.grid_import_w[sel].sum() * h), float(s.grid_export_w[sel].sum() * h))

    def kpis(self, rec: pd.DataFrame, config) -> dict[str, float]:
        if rec.empty or not self.planned:
            return {"imbalance_koma": 0.0}
        t = pd.DatetimeIndex(rec.index).tz_convert("UTC")  # the step times
        g = rec["grid_w"].to_numpy(float)
        dt = rec["dt_s"].to_numpy(float)
        koma = t.floor(f"{SLOT_S}s")
        frame = pd.DataFrame({"imp": np.clip(g, 0, None) * dt / 3.6e6, "exp": np.clip(-g, 0, None) * dt / 3.6e6,
                              "dt": dt, "koma": koma})
        act = frame.groupby("koma").sum()
        rows = []
        for k, (pi, pe) in sorted(self.planned.items()):
            ts = pd.Timestamp(k)
            if ts in act.index and act.at[ts, "dt"] >= SLOT_S - 1:
                rows.append((ts, (act.at[ts, "exp"] - act.at[ts, "imp"]) - (pe - pi)))
        if not rows:
            return {"imbalance_koma": 0.0}
        idx = pd.DatetimeIndex([r[0] for r in rows])
        e = np.array([r[1] for r in rows])
        yen = float("nan")
        if config.prices.imbalance_csv:
            from vpp.forecast.prices import read_imbalance_csv

            try:
                yen = float(read_imbalance_csv(config.prices.imbalance_csv, config.prices.area,
                                               config.site.timezone).settle(e, idx).sum())
            except ValueError:
                pass  # the file does not cover the run
        return {"imbalance_koma": float(len(e)), "imbalance_abs_kwh": float(np.abs(e).sum()),
                "imbalance_surplus_kwh": float(np.clip(e, 0, None).sum()),
                "imbalance_shortage_kwh": float(np.clip(-e, 0, None).sum()), "imbalance_yen": yen}
