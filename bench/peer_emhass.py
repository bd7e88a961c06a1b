"""Run the peer optimiser (EMHASS) on the shared peer problem; executed by ``bench/optimizer.py
--peer`` with the peer's OWN interpreter (``.peer/venv``, built by ``make bench-peer``), never
imported by the project.

    .peer/venv/bin/python bench/peer_emhass.py inputs_N96.csv [--runs N]

Prints one JSON line: ``{"version", "n", "objective", "total_s", "runs", "status"}``; ``total_s``
is the median of ``--runs`` cold runs, each building a new ``Optimization`` (CVXPY problem
compiled from scratch) and solving it (imports and config parsing excluded, as for ours).

The problem is the one of the shared reference notes §1, in EMHASS's terms: 48 h, battery
20 kWh ±10 kW η 0.95/0.95 SoC [0.2, 0.95] 0.5 → 0.5; grid ≤ 12 kW import, ≤ 10 kW export;
two on/off (semi-continuous) deferrable loads 3.0 kW and 7.4 kW × 4 h; cost function
``profit``; HiGHS with the same relative MIP gap as ours (1e-4), one thread each.
"""
from __future__ import annotations

import asyncio
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def _params(n: int, tmp: Path, logger: logging.Logger):
    import emhass
    from emhass import utils

    root = Path(emhass.__file__).parent
    conf = {"defaults_path": root / "data/config_defaults.json", "associations_path": root / "data/associations.csv",
            "data_path": tmp, "root_path": root, "config_path": tmp / "config.json"}
    config = asyncio.run(utils.build_config(conf, logger, str(conf["defaults_path"])))
    config.update({
        "optimization_time_step": int(48 * 60 / n), "delta_forecast_daily": 2, "costfun": "profit",
        "time_zone": "Europe/Paris", "set_use_battery": True, "set_use_pv": False,
        "battery_nominal_energy_capacity": 20_000, "battery_charge_power_max": 10_000,
        "battery_discharge_power_max": 10_000, "battery_charge_efficiency": 0.95,
        "battery_discharge_efficiency": 0.95, "battery_minimum_state_of_charge": 0.2,
        "battery_maximum_state_of_charge": 0.95, "battery_target_state_of_charge": 0.5,
        "set_nodischarge_to_grid": False, "set_nocharge_from_grid": False,
        "maximum_power_from_grid": 12_000, "maximum_power_to_grid": 10_000,
        "number_of_deferrable_loads": 2, "nominal_power_of_deferrable_loads": [3000.0, 7400.0],
        "minimum_power_of_deferrable_loads": [0.0, 0.0], "operating_hours_of_each_deferrable_load": [4, 4],
        "treat_deferrable_load_as_semi_cont": [True, True], "set_deferrable_load_single_constant": [False, False],
        "start_timesteps_of_each_deferrable_load": [0, 0], "end_timesteps_of_each_deferrable_load": [0, 0],
        "set_deferrable_startup_penalty": [0.0, 0.0], "cost_forecast_per_deferrable_load": [None, None],
        "lp_solver": "Highs", "lp_solver_mip_rel_gap": 1e-4, "num_threads": 1, "weight_battery_discharge": 0.0,
        "weight_battery_charge": 0.0, "battery_stress_cost": 0.0,
    })
    params = asyncio.run(utils.build_params(conf, {}, config, logger))
    return conf, utils.get_yaml_parse(params, logger)


def run(path: Path, runs: int) -> dict:
    from importlib.metadata import version

    from emhass.optimization import Optimization

    logger = logging.getLogger("peer")
    logger.addHandler(logging.NullHandler())
    logger.propagate = False
    df = pd.read_csv(path, index_col=0)
    df.index = pd.to_datetime(df.index, utc=True)
    n = len(df)
    with tempfile.TemporaryDirectory() as d:
        conf, (rh, oc, pc) = _params(n, Path(d), logger)
        times, obj, status = [], None, None
        for _ in range(runs):
            t0 = time.perf_counter()
            opt = Optimization(rh, oc, pc, "unit_load_cost", "unit_prod_price", "profit", conf, logger,
                               opt_time_delta=48, num_timesteps=n)
            res = opt.perform_optimization(
                df, df["p_pv_forecast"].to_numpy(float), df["p_load_forecast"].to_numpy(float),
                df["unit_load_cost"].to_numpy(float), df["unit_prod_price"].to_numpy(float),
                soc_init=0.5, soc_final=0.5, def_total_hours=[4, 4])
            times.append(time.perf_counter() - t0)
            status = opt.optim_status
            # EMHASS reports profit (> 0 = earned); the reference objective is the net bill
            obj = -float(np.sum(res["cost_profit"].to_numpy(float)))
    return {"version": version("emhass"), "n": n, "objective": obj, "total_s": statistics.median(times),
            "runs": runs, "status": status}


def main() -> None:
    path = Path(sys.argv[1])
    runs = int(sys.argv[sys.argv.index("--runs") + 1]) if "--runs" in sys.argv else 5
    print(json.dumps(run(path, runs)))


if __name__ == "__main__":
    main()
