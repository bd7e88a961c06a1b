"""Backtest: planning under forecast uncertainty on 30 simulated days, three planners side by side.

The site (a community centre): 100 kWh / ±50 kW battery (η 0.95/0.95, SoC 0.05–0.95, reserve
floor 0.30), 60 kWp PV, a 8–35 kW load peaking in the evening, grid ≤ 20 kW import / ≤ 25 kW
export, TOU buy 16/28/40 per kWh, sell 8.5; an up award of 20 kW (1 h duration) every evening
17:00–21:00. Each day runs on 30-min slots from 00:00, SoC 0.5 at the start and ≥ 0.5 at the end,
re-planned every slot on what is left of the day (shrinking horizon, measured SoC; only a plan's
first step is applied, as in the service). An evening load above its forecast meets the import
limit and forces the battery to discharge more than planned: the energy an award needs above the
floor is then short unless the plan kept a margin for it.

Forecast errors are synthetic, drawn the way the planners assume them to be (calibrated):
multiplicative, split-normal through p10/p50/p90 with PV p10 −40 % / p90 +25 % and load
p10 −15 % / p90 +25 % of the forecast, correlated 0.9 between neighbouring slots; one day-ahead
forecast per day (the truth is the forecast times the drawn error). Planners:

* ``p50``: one plan on the median forecast (what the service does with ``optimiser.scenarios: 1``);
* ``hedge``: one plan on PV p10 and load p90, taken per slot separately (the bids' hedge);
* ``scenario``: ``K`` joint scenarios in one MILP (:mod:`optimizer.solve_scenarios`).

The simulated controller applies the plan's battery setpoint of each slot; when the real load
and PV would break a grid limit it discharges / charges more (never below the reserve floor:
load is shed instead) or curtails PV. Per method: reserve violations (slots ending below the
floor), award shortfall [kWh] (the part of the award not deliverable — power, grid room or
energy above the floor for 1 h — times the slot length), load shed [kWh], the energy bill and
its regret vs perfect foresight (the same loop planning on the truth) [%], solve times.

    python bench/backtest.py [--days 30] [--k 5] [--seed 0] [--json]

``--json`` prints only JSON on stdout, one line: ``{"days", "violations", "shortfall_kwh": {"p50",
"hedge", "scenario"}, "regret_pct": {…}, "solve_s_p95", "k", "shed_kwh": {…}, "bill": {…},
"solve_s_p95_by_method": {…}}`` (``violations`` and ``solve_s_p95`` over all methods / the
scenario planner); the human table goes to stderr.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]  # bench/ocpp.py would shadow the ocpp library
sys.path.insert(0, str(ROOT))

import optimizer  # noqa: E402
from optimizer.scenarios import split_normal  # noqa: E402

SLOT_S = 1800
N_DAY = 48
DT = SLOT_S / 3600.0
REPLAN_EVERY = 1  # slots: every 30 min, only the first step of a plan is applied (MPC)
CAP_WH, P_MAX, ETA, SOC_MIN, SOC_MAX, FLOOR = 100_000.0, 50_000.0, 0.95, 0.05, 0.95, 0.30
IMPORT_W, EXPORT_W = 20_000.0, 25_000.0
AWARD_W, AWARD_TAU_H = 20_000.0, 1.0
PV_BAND = (0.60, 1.25)  # p10, p90 as fractions of p50
LOAD_BAND = (0.85, 1.25)
RHO = 0.9
METHODS = ("p50", "hedge", "scenario")


def day_inputs(rng: np.random.Generator, day: int) -> dict:
    """Forecast (p50), truth, prices and award of one day (slot 0 = 00:00 local)."""
    h = np.arange(N_DAY) * DT
    cloud = rng.uniform(0.55, 1.0)
    pv = 60_000.0 * cloud * np.clip(np.sin(np.pi * (h - 5.0) / 14.0), 0, None) ** 1.3
    load = (8000.0 + 10_000.0 * np.exp(-0.5 * ((h - 13) / 3.0) ** 2)
            + 20_000.0 * rng.uniform(0.8, 1.1) * np.exp(-0.5 * ((h - 19) / 1.6) ** 2))
    z = np.empty((2, N_DAY))
    z[:, 0] = rng.standard_normal(2)
    for t in range(1, N_DAY):
        z[:, t] = RHO * z[:, t - 1] + np.sqrt(1 - RHO ** 2) * rng.standard_normal(2)
    ones = np.ones(N_DAY)
    pv_true = pv * split_normal(z[0], PV_BAND[0] * ones, ones, PV_BAND[1] * ones)
    load_true = load * split_normal(z[1], LOAD_BAND[0] * ones, ones, LOAD_BAND[1] * ones)
    buy = np.where((h >= 17) & (h < 22), 40.0, np.where((h >= 23) | (h < 7), 16.0, 28.0))
    award = np.where((h >= 17) & (h < 21), AWARD_W, 0.0)
    return {"pv": pv, "load": load, "pv_true": pv_true, "load_true": load_true, "buy": buy,
            "sell": np.full(N_DAY, 8.5), "award": award, "start": datetime(2026, 7, 1, tzinfo=UTC) + timedelta(days=day)}


def plan(d: dict, t0: int, soc: float, method: str, k: int, seed: int) -> tuple[np.ndarray, float]:
    """Battery setpoints [W] (> 0 discharge) for slots ``t0…`` and the solve time [s]."""
    sl = slice(t0, N_DAY)
    n = N_DAY - t0
    pv, load = d["pv"][sl], d["load"][sl]
    scen = None
    if method == "perfect":
        pv, load = d["pv_true"][sl], d["load_true"][sl]
    elif method == "hedge":
        pv, load = PV_BAND[0] * pv, LOAD_BAND[1] * load
    elif method == "scenario":
        scen = optimizer.sample_scenarios(PV_BAND[0] * pv, pv, PV_BAND[1] * pv, LOAD_BAND[0] * load, load,
                                          LOAD_BAND[1] * load, k, slot_correlation=RHO, seed=seed)
    bat = optimizer.BatteryParams(id="bess", capacity_wh=CAP_WH, max_charge_w=P_MAX, max_discharge_w=P_MAX,
                                  eta_charge=ETA, eta_discharge=ETA, soc_min=SOC_MIN, soc_max=SOC_MAX, soc0=soc,
                                  # the end target is a hard bound whose reachability ignores the
                                  # import limit: only with 4 h or more left
                                  soc_end=0.5 if n >= 8 else None, degradation_cost_per_kwh=1.0, floor=FLOOR)
    p = optimizer.Problem(
        horizon=optimizer.Horizon(d["start"] + timedelta(seconds=SLOT_S * t0), SLOT_S, n),
        pv_w=pv, load_w=load, batteries=(bat,), grid=optimizer.GridParams(IMPORT_W, EXPORT_W),
        prices=optimizer.Prices(buy=d["buy"][sl], sell=d["sell"][sl]),
        vpp=optimizer.VppCommitments(award_up_w=d["award"][sl], duration_s=AWARD_TAU_H * 3600),
        options=optimizer.SolveOptions(recovery_penalty_per_kwh=1000.0, unserved_penalty_per_kwh=1000.0),
        scenarios=scen)
    t = time.perf_counter()
    s = optimizer.solve(p)
    return s.battery_w["bess"], time.perf_counter() - t


@dataclass
class Result:
    violations: int = 0
    shortfall_kwh: float = 0.0
    shed_kwh: float = 0.0
    bill: float = 0.0
    plan_failures: int = 0
    solve_s: list[float] = field(default_factory=list)


def simulate_day(d: dict, method: str, k: int, seed: int, r: Result) -> None:
    """The day in the real world (truth), re-planning every :data:`REPLAN_EVERY` slots."""
    soc = 0.5
    setpoints = np.zeros(N_DAY)
    e_ch, e_dis = ETA * DT / CAP_WH, DT / (ETA * CAP_WH)
    for t in range(N_DAY):
        if t % REPLAN_EVERY == 0:
            try:
                sp, took = plan(d, t, soc, method, k, seed + t)
                setpoints[t:] = sp
                r.solve_s.append(took)
            except optimizer.SolveError:  # the service keeps the plan in force
                r.plan_failures += 1
        b = setpoints[t]
        # what the battery can do this slot without leaving [floor, soc_max]
        b_max = min(P_MAX, max(soc - FLOOR, 0.0) / e_dis)
        b_min = -min(P_MAX, max(SOC_MAX - soc, 0.0) / e_ch)
        b = float(np.clip(b, b_min, b_max))
        net = d["load_true"][t] - d["pv_true"][t] - b  # > 0 import
        shed = 0.0
        if net > IMPORT_W:  # discharge more, down to the floor; shed the rest
            extra = min(net - IMPORT_W, b_max - b)
            b += extra
            net -= extra
            shed = max(net - IMPORT_W, 0.0)
            net -= shed
        elif net < -EXPORT_W:  # charge more, curtail the rest
            extra = min(-EXPORT_W - net, b - b_min)
            b -= extra
            net = max(net + extra, -EXPORT_W)
        soc_prev = soc
        soc = soc - (e_dis * b if b > 0 else e_ch * b)
        if soc < FLOOR - 1e-9:
            r.violations += 1
        r.shed_kwh += shed * DT / 1000.0
        r.bill += DT / 1000.0 * (d["buy"][t] * max(net, 0.0) - d["sell"][t] * max(-net, 0.0)) + DT / 1000.0 * abs(b)
        a = d["award"][t]
        if a > 0:
            # deliverable: power headroom, export room, energy above the floor for the duration (start and end of slot)
            energy_w = ETA * CAP_WH * max(min(soc_prev, soc) - FLOOR, 0.0) / AWARD_TAU_H
            ok = min(a, P_MAX - b, EXPORT_W + net, energy_w)
            r.shortfall_kwh += max(a - max(ok, 0.0), 0.0) * DT / 1000.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--k", type=int, default=5, help="scenarios of the scenario planner")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    out = sys.stderr if a.json else sys.stdout
    rng = np.random.default_rng(a.seed)
    days = [day_inputs(rng, i) for i in range(a.days)]
    res = {m: Result() for m in (*METHODS, "perfect")}
    for i, d in enumerate(days):
        for m in res:
            simulate_day(d, m, a.k, a.seed + 1000 * i, res[m])
    perfect = res["perfect"].bill
    regret = {m: 100.0 * (res[m].bill - perfect) / abs(perfect) for m in METHODS}
    p95 = {m: float(np.percentile(res[m].solve_s, 95)) for m in METHODS}
    print(f"{a.days} days, {len(res['p50'].solve_s) // a.days} plans a day, scenario planner K={a.k}", file=out)
    print(f"{'method':9s} {'violations':>10s} {'shortfall kWh':>14s} {'shed kWh':>9s} {'bill':>10s} "
          f"{'regret %':>9s} {'solve p95 ms':>13s}", file=out)
    for m in (*METHODS, "perfect"):
        r = res[m]
        print(f"{m:9s} {r.violations:10d} {r.shortfall_kwh:14.1f} {r.shed_kwh:9.1f} {r.bill:10.0f} "
              f"{regret.get(m, 0.0):9.2f} {1000 * float(np.percentile(r.solve_s, 95)):13.1f}", file=out)
    s50, ssc = res["p50"].shortfall_kwh, res["scenario"].shortfall_kwh
    cut = 100.0 * (s50 - ssc) / s50 if s50 > 0 else 0.0
    print(f"scenario vs p50: {cut:.0f} % less award shortfall (goal ≥ 20 %); solve p95 {p95['scenario']:.3f} s "
          f"(goal ≤ 1.5 s)", file=out)
    if a.json:
        print(json.dumps({
            "days": a.days, "violations": sum(res[m].violations for m in METHODS),
            "shortfall_kwh": {m: round(res[m].shortfall_kwh, 3) for m in METHODS},
            "regret_pct": {m: round(regret[m], 3) for m in METHODS},
            "solve_s_p95": round(p95["scenario"], 4), "k": a.k,
            "shed_kwh": {m: round(res[m].shed_kwh, 3) for m in METHODS},
            "bill": {m: round(res[m].bill, 2) for m in (*METHODS, "perfect")},
            "plan_failures": {m: res[m].plan_failures for m in (*METHODS, "perfect")},
            "shortfall_reduction_pct_vs_p50": round(cut, 1),
            "solve_s_p95_by_method": {m: round(v, 4) for m, v in p95.items()},
        }))


if __name__ == "__main__":
    main()
