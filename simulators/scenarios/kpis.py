"""Scenario KPIs from the per-step record of a run (pure functions over a DataFrame).

The record has one row per control step ``t`` describing the interval that *ended* at ``t``
(physical flows from the simulator, i.e. the truth, not the controller's readings):
``load_w``, ``pv_w``, ``ev_w``, ``battery_w`` (> 0 discharge), ``grid_w`` (> 0 import),
``imbalance_w`` (islanded load the site could not cover), ``outage`` (grid down during the
interval), ``soc:<bat>``, ``floor:<bat>``, ``bat_w:<bat>``, ``source:<bat>``, ``plan_w``,
``dispatch_w`` (requested by the aggregator, NaN when none) and ``dt_s``.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from vpp.slots import SLOT_S

#: SoC below the floor by more than this [fraction] while discharging counts as a violation.
SOC_TOL = 0.005
#: Battery power above this [W] counts as discharging.
DISCHARGE_TOL_W = 50.0

#: KPI name -> meaning (units in the name).
KPI_DOC: dict[str, str] = {
    "reserve_violations": "steps outside a grid outage in which a battery discharged below its floor",
    "reserve_min_margin": "lowest SoC − floor outside outages [fraction]",
    "critical_unserved_kwh": "critical load not served during outages [kWh]",
    "unserved_kwh": "site load not served during outages [kWh]",
    "outage_minutes": "minutes islanded",
    "soc_at_outage": "lowest battery SoC when the first outage began [fraction]",
    "soc_min_in_outage": "lowest battery SoC during outages [fraction]",
    "vpp_slots": "30-min slots with an aggregator dispatch",
    "vpp_delivery_ratio_min": "worst slot: delivered / awarded battery energy [-]",
    "vpp_delivery_ratio_mean": "mean over slots of delivered / awarded [-]",
    "cost": "energy bill at the grid connection (buy − sell) [currency]",
    "co2_kg": "CO2 of imported energy [kg]",
    "import_kwh": "energy imported [kWh]",
    "export_kwh": "energy exported [kWh]",
    "pv_kwh": "PV energy produced [kWh]",
    "self_consumption": "1 − export / PV [-]",
    "max_import_w": "highest interval-mean grid import [W]",
    "import_over_limit_minutes": "minutes above the grid import limit",
    "fallback_minutes": "minutes in which a battery followed the fallback rule",
    "inputs_stale_minutes": "minutes in which a battery idled for lack of fresh readings",
    "plan_minutes": "minutes in which every battery followed the plan",
    "plan_tracking_mae_w": "mean |plan − measured| battery power while following the plan [W]",
    "points_lost": "telemetry points dropped or left unwritten at the end",
    "points_spooled": "telemetry points that went through the disk spool",
    "steps": "control steps run",
    "pv_forecast_ratio_first_day": "forecast / measured PV energy on the first (UTC) day [-]",
    "pv_forecast_ratio_last_day": "forecast / measured PV energy on the last (UTC) day [-]",
    "ev_unserved_kwh": "EV energy wanted but not delivered before departure [kWh]",
    "pv_bias_overall": "the controller's fitted PV bias factor at the end [-]",
    "critical_demand_kwh": "critical load groups' demand during outages [kWh]",
    "critical_served_kwh": "critical load groups' energy served during outages [kWh]",
    "critical_served_ratio": "critical energy served / demanded during outages [-]",
    "critical_hours_served": "hours from the outage start until the critical load first went unserved [h]",
    "ev_from_battery_kwh": "EV charging energy during outages (islanded: from the battery or PV) [kWh]",
    "shed_events": "load groups shed",
    "soc_min": "lowest battery SoC of the run [fraction]",
}


def _energy_kwh(w: pd.Series, dt_s: pd.Series) -> float:
    return float((w.fillna(0.0) * dt_s).sum() / 3.6e6)


def compute_kpis(rec: pd.DataFrame, batteries: list[str], *, import_limit_w: float,
                 critical_load_w: float, tariff: pd.DataFrame, slot_s: int = SLOT_S,
                 pipeline: dict | None = None) -> tuple[dict[str, float], list[dict]]:
    """KPIs (see :data:`KPI_DOC`) and the per-slot VPP delivery table."""
    dt = rec["dt_s"]
    minutes = dt / 60.0
    k: dict[str, float] = {"steps": float(len(rec))}
    out = ~rec["outage"].astype(bool)
    viol = 0
    margin = np.inf
    for b in batteries:
        soc, fl, p = rec[f"soc:{b}"], rec[f"floor:{b}"], rec[f"bat_w:{b}"]
        below = soc < fl - SOC_TOL
        viol += int((out & below & (p > DISCHARGE_TOL_W)).sum())
        m = (soc - fl)[out]
        if len(m):
            margin = min(margin, float(m.min()))
    k["reserve_violations"] = float(viol)
    k["reserve_min_margin"] = float(margin) if np.isfinite(margin) else 0.0
    isl = rec["outage"].astype(bool)
    unserved = rec["imbalance_w"].clip(lower=0.0).where(isl, 0.0)
    supply = (rec["load_w"] + rec["ev_w"] - unserved).clip(lower=0.0)
    crit = (np.minimum(critical_load_w, rec["load_w"]) - supply).clip(lower=0.0).where(isl & (unserved > 1.0), 0.0)
    k["unserved_kwh"] = _energy_kwh(unserved, dt)
    k["critical_unserved_kwh"] = _energy_kwh(crit, dt)
    k["outage_minutes"] = float(minutes[isl].sum())
    if isl.any() and batteries:
        first = rec.index[isl.to_numpy()][0]
        k["soc_at_outage"] = float(min(rec.at[first, f"soc:{b}"] for b in batteries))
        k["soc_min_in_outage"] = float(min(rec.loc[isl, f"soc:{b}"].min() for b in batteries))
    imp, exp = rec["grid_w"].clip(lower=0.0), (-rec["grid_w"]).clip(lower=0.0)
    k["import_kwh"], k["export_kwh"] = _energy_kwh(imp, dt), _energy_kwh(exp, dt)
    k["pv_kwh"] = _energy_kwh(rec["pv_w"], dt)
    t = tariff.reindex(rec.index, method="ffill")
    k["cost"] = float(((imp * t["buy_per_kwh"] - exp * t["sell_per_kwh"]) * dt).sum() / 3.6e6)
    k["co2_kg"] = float((imp * t["co2_kg_per_kwh"] * dt).sum() / 3.6e6)
    if "pv_forecast_w" in rec and k["pv_kwh"] > 0:
        # forecast / measured PV energy per local day (1 = unbiased); first and last day
        day = rec.index.floor("D")
        f = (rec["pv_forecast_w"] * dt).groupby(day).sum()
        m = (rec["pv_w"] * dt).groupby(day).sum()
        r = (f / m)[m > 0.2 * m.max()]
        if len(r):
            k["pv_forecast_ratio_first_day"] = float(r.iloc[0])
            k["pv_forecast_ratio_last_day"] = float(r.iloc[-1])
    k["self_consumption"] = 1.0 - k["export_kwh"] / k["pv_kwh"] if k["pv_kwh"] > 0 else 1.0
    k["max_import_w"] = float(imp.max()) if len(imp) else 0.0
    k["import_over_limit_minutes"] = float(minutes[imp > import_limit_w + 1.0].sum())
    src = rec[[f"source:{b}" for b in batteries]] if batteries else pd.DataFrame(index=rec.index)
    k["fallback_minutes"] = float(minutes[(src == "fallback").any(axis=1)].sum()) if batteries else 0.0
    k["inputs_stale_minutes"] = float(minutes[(src == "inputs-stale").any(axis=1)].sum()) if batteries else 0.0
    on_plan = (src == "plan").all(axis=1) if batteries else pd.Series(False, index=rec.index)
    k["plan_minutes"] = float(minutes[on_plan].sum())
    # the power measured at t+1 is the one commanded at t
    err = (rec["plan_w"] - rec["battery_w"].shift(-1)).abs()[on_plan].dropna()
    k["plan_tracking_mae_w"] = float(err.mean()) if len(err) else 0.0
    slots = vpp_slots(rec, slot_s)
    k["vpp_slots"] = float(len(slots))
    ratios = [s["ratio"] for s in slots]
    k["vpp_delivery_ratio_min"] = float(min(ratios)) if ratios else 1.0
    k["vpp_delivery_ratio_mean"] = float(np.mean(ratios)) if ratios else 1.0
    p = pipeline or {}
    k["points_lost"] = float(p.get("dropped", 0) + p.get("rejected", 0) + p.get("unwritten", 0))
    k["points_spooled"] = float(p.get("spooled", 0))
    return k, slots


def outage_kpis(rec: pd.DataFrame, batteries: list[str], shed_log: list[dict]) -> dict[str, float]:
    """Outage KPIs over the critical load groups (``crit_w``; runs with ``loads:`` only). Load
    the islanded site could not cover is charged to the non-critical groups first."""
    k: dict[str, float] = {}
    if batteries:
        k["soc_min"] = float(min(rec[f"soc:{b}"].min() for b in batteries))
    isl = rec["outage"].astype(bool)
    k["ev_from_battery_kwh"] = _energy_kwh(rec["ev_w"].clip(lower=0.0).where(isl, 0.0), rec["dt_s"])
    k["shed_events"] = float(sum(1 for e in shed_log if not e["on"]))
    if "crit_w" not in rec or rec["crit_w"].isna().all():
        return k
    dt = rec["dt_s"]
    crit = rec["crit_w"].fillna(0.0).where(isl, 0.0)
    unserved = rec["imbalance_w"].clip(lower=0.0).where(isl, 0.0)
    crit_short = np.minimum(crit, (unserved - (rec["load_w"] - crit).clip(lower=0.0)).clip(lower=0.0))
    demand = _energy_kwh(crit, dt)
    served = demand - _energy_kwh(crit_short, dt)
    k["critical_demand_kwh"] = demand
    k["critical_served_kwh"] = served
    k["critical_served_ratio"] = served / demand if demand > 0 else 1.0
    short = (crit_short > 1.0) & isl
    if isl.any():
        t0 = rec.index[isl.to_numpy()][0] - pd.Timedelta(seconds=float(dt[isl].iloc[0]))
        end = rec.index[short.to_numpy()][0] if short.any() else rec.index[isl.to_numpy()][-1]
        k["critical_hours_served"] = float((end - t0).total_seconds() / 3600.0)
    return k


def vpp_slots(rec: pd.DataFrame, slot_s: int = SLOT_S) -> list[dict]:
    """Per settlement slot with a dispatch: awarded vs delivered battery power [W] (mean over
    the slot; the power of interval ``t`` was commanded one step earlier)."""
    req = rec["dispatch_w"]
    if req.notna().sum() == 0:
        return []
    delivered = rec["battery_w"].shift(-1)
    plan = rec["plan_w"]
    ts = rec.index.as_unit("s").asi8 // slot_s * slot_s
    out = []
    for slot, idx in pd.Series(np.arange(len(rec))).groupby(ts):
        r = req.iloc[idx.to_numpy()]
        if r.notna().sum() == 0:
            continue
        awarded = float(r.mean())
        got = float(delivered.iloc[idx.to_numpy()].mean())
        out.append({"slot": pd.Timestamp(int(slot), unit="s", tz="UTC").isoformat(),
                    "awarded_w": awarded, "delivered_w": got,
                    "plan_w": float(plan.iloc[idx.to_numpy()].mean()),
                    "ratio": got / awarded if abs(awarded) > 1 else 1.0})
    return out


def check(kpis: dict[str, float], assertions) -> list[str]:
    """Failed assertions in words (empty = all pass). Unknown KPI names fail."""
    fails = []
    for a in assertions:
        if a.kpi not in kpis:
            fails.append(f"{a.kpi}: unknown KPI")
            continue
        v = kpis[a.kpi]
        if a.max is not None and v > a.max:
            fails.append(f"{a.kpi} = {v:.4g} > max {a.max:g}")
        if a.min is not None and v < a.min:
            fails.append(f"{a.kpi} = {v:.4g} < min {a.min:g}")
    return fails
