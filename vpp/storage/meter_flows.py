"""Import and export per slot, metered separately (never netted inside a slot), as a bill
meter registers them: from the meter's lifetime import/export counters where it stores them,
else by integrating the positive and the negative part of its power separately."""
from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from vpp.slots import SLOT_S
from vpp.storage.energy import slot_energy_from_counter, slot_energy_from_power


def import_export_slots(store, meter: str, start: datetime, end: datetime, slot_s: int = SLOT_S,
                        max_gap_s: float = 300.0) -> pd.DataFrame:
    """``import_kwh`` and ``export_kwh`` (both ≥ 0) per slot of ``[start, end)`` and
    ``samples`` (meter readings in the slot; 0 = unmetered), indexed by UTC slot start."""
    idx = pd.date_range(pd.Timestamp(start).tz_convert("UTC"), pd.Timestamp(end).tz_convert("UTC"),
                        freq=f"{slot_s}s", inclusive="left")
    edges = np.append(idx.as_unit("ns").asi8, idx[-1].value + slot_s * 10**9 if len(idx) else [])
    margin = timedelta(seconds=max(max_gap_s, slot_s))
    raw = store.raw(meter, ["power_w", "import_energy_wh", "export_energy_wh"], start - margin, end + margin)
    t = raw.index.as_unit("ns").asi8 if len(raw) else np.zeros(0, np.int64)
    out = {}
    for col, sign in (("import_energy_wh", 1.0), ("export_energy_wh", -1.0)):
        ok = raw[col].notna().to_numpy() if col in raw else np.zeros(len(raw), bool)
        if ok.sum() >= 2:
            wh = slot_energy_from_counter(t[ok], raw[col].to_numpy(float)[ok], edges)
        else:
            okp = raw["power_w"].notna().to_numpy() if "power_w" in raw else np.zeros(len(raw), bool)
            part = np.clip(sign * raw["power_w"].to_numpy(float)[okp], 0.0, None) if okp.any() else np.zeros(0)
            wh = slot_energy_from_power(t[okp], part, edges, max_gap_s)
        out[col] = np.clip(wh, 0.0, None) / 1000.0
    n = np.histogram(t, bins=edges)[0] if len(idx) else np.zeros(0, int)
    return pd.DataFrame({"import_kwh": out["import_energy_wh"], "export_kwh": out["export_energy_wh"],
                         "samples": n}, index=idx)
