"""Town generator: a valid :class:`~vpp.config.SiteConfig` of N homes plus the community centre.

Homes get varied rooftop PV (kWp, tilt, azimuth), a battery of a common residential size and,
for some, an EV charger; every home has a household meter and the feeder has the grid meter.
Devices are packed onto a few simulator ports, each serving up to :data:`IDS_PER_PORT`
devices on distinct Modbus device ids (as a Modbus gateway would). Seeded: the same seed
gives the same town.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from vpp.config import SiteConfig, parse_config

#: Device ids served per simulator port [-] (Modbus allows 1..247).
IDS_PER_PORT = 240
#: Residential battery sizes on the Japanese market [Wh] and their AC rating [W].
BATTERIES = [(5_600, 3_000), (7_000, 3_000), (9_800, 4_000), (12_700, 5_000), (16_400, 5_900)]
#: Home meter limits [W]: 60 A service at 100/200 V; export limited by the PV inverter.
HOME_IMPORT_W = 12_000.0
HOME_EXPORT_W = 10_000.0


def generate_town(homes: int, seed: int = 0, *, host: str = "127.0.0.1", base_port: int = 16000,
                  ev_share: float = 0.2, name: str = "izumi-new-town") -> dict[str, Any]:
    """Site config data (a mapping that :func:`vpp.config.parse_config` accepts) for ``homes``
    homes and the community centre, behind one feeder."""
    if homes < 1:
        raise ValueError("homes must be >= 1")
    rng = np.random.default_rng(seed)
    devices: list[dict] = []
    arrays: list[dict] = []
    slot = iter(range(10**6))

    def conn() -> dict:
        i = next(slot)
        return {"host": host, "port": base_port + i // IDS_PER_PORT, "device_id": i % IDS_PER_PORT + 1}

    devices.append({"id": "feeder", "kind": "meter", "role": "grid", "register_map": "sdm630",
                    "connection": conn()})
    for h in range(1, homes + 1):
        home = f"h{h:03d}"
        kwp = float(np.round(rng.uniform(3.0, 8.0), 1))
        inv_w = float(np.round(min(kwp * 1000 * rng.uniform(0.85, 1.0), 5900), -2))
        cap, bat_w = BATTERIES[int(rng.integers(len(BATTERIES)))]
        devices.append({"id": f"{home}-pv", "kind": "pv", "home": home, "register_map": "sunspec_inverter",
                        "connection": conn(), "ratings": {"power_w": inv_w}})
        devices.append({"id": f"{home}-bat", "kind": "battery", "home": home, "register_map": "sunspec_storage",
                        "connection": conn(),
                        "ratings": {"capacity_wh": cap, "max_charge_w": bat_w, "max_discharge_w": bat_w}})
        devices.append({"id": f"{home}-meter", "kind": "meter", "role": "household", "home": home,
                        "register_map": "sdm630", "connection": conn()})
        if rng.random() < ev_share:
            devices.append({"id": f"{home}-ev", "kind": "ev_charger", "home": home,
                            "register_map": "evse_phoenix", "connection": conn(),
                            "ratings": {"power_w": 3200, "min_current_a": 6, "max_current_a": 16,
                                        "voltage_v": 200}})
        arrays.append({"id": f"{home}-roof", "inverter": f"{home}-pv", "kwp": kwp,
                       "tilt": float(np.round(rng.uniform(10, 35))),
                       "azimuth": float(np.round(rng.normal(180, 35)) % 360)})
    # the community centre (shelter): 50 kWp, 100 kWh, two public chargers
    devices += [
        {"id": "centre-pv", "kind": "pv", "home": "centre", "register_map": "sunspec_inverter",
         "connection": conn(), "ratings": {"power_w": 50_000}},
        {"id": "centre-bat", "kind": "battery", "home": "centre", "register_map": "sunspec_storage",
         "connection": conn(), "ratings": {"capacity_wh": 100_000, "max_charge_w": 50_000,
                                           "max_discharge_w": 50_000}},
        {"id": "centre-meter", "kind": "meter", "role": "household", "home": "centre",
         "register_map": "sdm630", "connection": conn()},
    ]
    arrays += [{"id": "centre-roof", "inverter": "centre-pv", "kwp": 35, "tilt": 20, "azimuth": 180},
               {"id": "centre-carport", "inverter": "centre-pv", "kwp": 15, "tilt": 10, "azimuth": 200}]
    return {
        "site": {"name": name, "latitude": 38.33, "longitude": 140.85, "altitude": 60,
                 "timezone": "Asia/Tokyo"},
        # feeder sized for diversity: 3 kW import and 2.5 kW export per home, plus the centre
        "grid": {"import_limit_w": 3000.0 * homes + 80_000, "export_limit_w": 2500.0 * homes + 40_000},
        "tariff": {"currency": "JPY", "sell_per_kwh": 8.5, "co2_kg_per_kwh": 0.45, "periods": [
            {"name": "night", "start": "22:00", "end": "08:00", "buy_per_kwh": 24.0},
            {"name": "day", "start": "08:00", "end": "10:00", "buy_per_kwh": 32.0},
            {"name": "peak", "start": "10:00", "end": "17:00", "buy_per_kwh": 40.0},
            {"name": "day", "start": "17:00", "end": "22:00", "buy_per_kwh": 32.0}]},
        "devices": devices,
        "pv_arrays": arrays,
        "reserve": {"floor_pct": 30},
        "storage": {"backend": "embedded", "path": "var/town.sqlite"},
        "optimiser": {"horizon_h": 24, "slot_s": 900, "plan_interval_s": 900, "dispatch_interval_s": 60,
                      "time_limit_s": 20},
    }


def town_config(homes: int, seed: int = 0, **kw) -> SiteConfig:
    """:func:`generate_town` validated into a :class:`SiteConfig`."""
    return parse_config(generate_town(homes, seed, **kw), f"<town of {homes} homes>")


def fleet_solver(config: SiteConfig, home_import_w: float = HOME_IMPORT_W, home_export_w: float = HOME_EXPORT_W):
    """A ``Problem -> Schedule`` function for :class:`vpp.control.loop.Controller`'s ``solve``
    hook that plans a town with :func:`optimizer.fleet.plan_fleet` instead of one LP over
    every battery.

    The controller's site problem carries site totals; PV is split over the homes in
    proportion to their array kWp and the load evenly over the homes (the simulator's
    households share one mean). The returned schedule is the aggregate LP's, with per-home
    ``battery_w`` / ``soc`` from the disaggregation; it is marked not validated when the
    fleet checks find a broken limit (the controller then keeps the previous plan).
    """
    import dataclasses

    from optimizer.fleet import FleetProblem, plan_fleet

    home_of = {d.id: d.home for d in config.devices}
    kwp: dict[str | None, float] = {}
    for a in config.pv_arrays:
        kwp[home_of.get(a.inverter)] = kwp.get(home_of.get(a.inverter), 0.0) + a.kwp
    n_homes = len({d.home for d in config.devices if d.home}) or 1

    def solve(problem):
        bats = problem.batteries
        homes = [home_of.get(b.id) for b in bats]
        share = np.array([kwp.get(h, 0.0) for h in homes])
        total_kwp = sum(kwp.values()) or 1.0
        n = problem.horizon.n
        fl = np.vstack([np.broadcast_to(np.asarray(b.floor if b.floor is not None else 0.0, float), (n,))
                        for b in bats])
        fp = FleetProblem(
            horizon=problem.horizon,
            pv_w=np.outer(share / total_kwp, np.asarray(problem.pv_w, float)),
            load_w=np.tile(np.asarray(problem.load_w, float) / n_homes, (len(bats), 1)),
            capacity_wh=np.array([b.capacity_wh for b in bats]),
            max_charge_w=np.array([float(np.max(b.max_charge_w)) for b in bats]),
            max_discharge_w=np.array([float(np.max(b.max_discharge_w)) for b in bats]),
            soc0=np.array([b.soc0 for b in bats]), floor=fl,
            home_import_limit_w=home_import_w, home_export_limit_w=home_export_w,
            feeder=problem.grid, prices=problem.prices,
            eta_charge=np.array([b.eta_charge for b in bats]),
            eta_discharge=np.array([b.eta_discharge for b in bats]),
            soc_min=np.array([b.soc_min for b in bats]), soc_max=np.array([b.soc_max for b in bats]),
            options=problem.options)
        fplan = plan_fleet(fp)
        agg = fplan.aggregate
        info = agg.solver
        if info is not None and fplan.violations:
            info = dataclasses.replace(info, validated=False)
        return dataclasses.replace(
            agg, battery_w={b.id: fplan.battery_w[i] for i, b in enumerate(bats)},
            soc={b.id: fplan.soc[i] for i, b in enumerate(bats)}, solver=info,
            warnings=list(agg.warnings) + fplan.warnings + fplan.violations)

    return solve
