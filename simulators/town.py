"""Town generator: a valid :class:`~vpp.config.SiteConfig` of N homes plus the community centre.

Homes get varied rooftop PV (kWp, tilt, azimuth), a battery of a common residential size and,
for some, an EV charger; every home has a household meter and the feeder has the grid meter.
EV chargers are Japanese single-phase 200 V units. The config selects the fleet planner
(``optimiser.planner: fleet``, :mod:`vpp.control.fleet_planner`). Devices are packed onto a
few simulator ports, each serving up to :data:`IDS_PER_PORT` devices on distinct Modbus
device ids (as a Modbus gateway would). Seeded: the same seed gives the same town.

With ``protocol="echonet_lite"`` (what ``vpp town generate`` makes) each home is an ECHONET
Lite node on its own loopback address (:func:`echonet_host`, port 3610): storage battery,
home PV and low-voltage smart meter objects, and for ``v2h_share`` of the homes a V2H unit
instead of a Modbus EV charger; the feeder meter and the community centre stay on Modbus.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from vpp.config import SiteConfig, parse_config

#: Device ids served per simulator port [-] (Modbus allows 1..247).
IDS_PER_PORT = 240
#: Residential battery sizes on the Japanese market [Wh] and their AC rating [W].
BATTERIES = [(5_600, 3_000), (7_000, 3_000), (9_800, 4_000), (12_700, 5_000), (16_400, 5_900)]


#: Second octet of the ECHONET homes' loopback block (127.36.x.y).
ECHONET_NET = 36


def echonet_host(home: int, net: int = ECHONET_NET) -> str:
    """Loopback address of home number ``home`` (1-based): 127.<net>.<home // 250>.<home % 250 + 2>."""
    return f"127.{net}.{home // 250}.{home % 250 + 2}"


def generate_town(homes: int, seed: int = 0, *, host: str = "127.0.0.1", base_port: int = 16000,
                  ev_share: float = 0.2, name: str = "izumi-new-town", ocpp_stations: int = 0,
                  protocol: str = "modbus", v2h_share: float = 0.1) -> dict[str, Any]:
    """Site config data (a mapping that :func:`vpp.config.parse_config` accepts) for ``homes``
    homes and the community centre, behind one feeder. ``protocol``: ``modbus`` or
    ``echonet_lite`` (homes only; ``v2h_share`` of them with a V2H unit, no Modbus EV).
    ``ocpp_stations``: public chargers in the centre's car park that speak OCPP (alternately
    1.6 and 2.0.1, 200 V single-phase 32 A) to the service's central system, each with a
    generated basic-auth password (derived from the seed: replace them before a real deployment)."""
    if homes < 1:
        raise ValueError("homes must be >= 1")
    if protocol not in ("modbus", "echonet_lite"):
        raise ValueError(f"protocol must be modbus or echonet_lite, not {protocol!r}")
    echonet = protocol == "echonet_lite"
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
        if echonet:
            node = {"host": echonet_host(h)}
            e = {"protocol": "echonet_lite", "home": home, "poll_interval_s": 5.0}
            devices.append({"id": f"{home}-pv", "kind": "pv", **e, "connection": node,
                            "ratings": {"power_w": inv_w}})
            devices.append({"id": f"{home}-bat", "kind": "battery", **e, "connection": node,
                            "ratings": {"capacity_wh": cap, "max_charge_w": bat_w, "max_discharge_w": bat_w}})
            devices.append({"id": f"{home}-meter", "kind": "meter", "role": "household", **e,
                            "connection": node})
            if rng.random() < v2h_share:
                devices.append({"id": f"{home}-ev", "kind": "ev_charger", **e, "connection": node,
                                "ratings": {"power_w": 6000, "min_current_a": 6, "max_current_a": 30,
                                            "voltage_v": 200}})
            arrays.append({"id": f"{home}-roof", "inverter": f"{home}-pv", "kwp": kwp,
                           "tilt": float(np.round(rng.uniform(10, 35))),
                           "azimuth": float(np.round(rng.normal(180, 35)) % 360)})
            continue
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
    for k in range(1, ocpp_stations + 1):
        devices.append({"id": f"centre-cp{k:02d}", "kind": "ev_charger", "home": "centre", "protocol": "ocpp",
                        "version": "1.6" if k % 2 else "2.0.1",
                        "ocpp": {"password": f"{int(rng.integers(1 << 62)):016x}"},
                        "ratings": {"min_current_a": 6, "max_current_a": 32, "voltage_v": 200}})
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
        # hundreds of homes: fleet planning (aggregate LP + per-home disaggregation)
        "optimiser": {"horizon_h": 24, "slot_s": 900, "plan_interval_s": 900, "dispatch_interval_s": 60,
                      "time_limit_s": 20, "planner": "fleet"},
    }


def town_config(homes: int, seed: int = 0, **kw) -> SiteConfig:
    """:func:`generate_town` validated into a :class:`SiteConfig`."""
    return parse_config(generate_town(homes, seed, **kw), f"<town of {homes} homes>")


def ports_per_town(homes: int) -> int:
    """Simulator ports one town of ``homes`` homes needs at most (every home with an EV)."""
    return (homes * 4 + 4) // IDS_PER_PORT + 1


def generate_towns(n_towns: int, homes: int, seed: int = 0, *, base_port: int = 16000,
                   name: str = "izumi-new-town", **kw) -> list[dict[str, Any]]:
    """``n_towns`` towns (:func:`generate_town`) named ``<name>-01`` …, each with its own seed
    (``seed + k``) and its own block of simulator ports (:func:`ports_per_town`)."""
    if n_towns < 1:
        raise ValueError("n_towns must be >= 1")
    step = ports_per_town(homes)
    return [generate_town(homes, seed + k, base_port=base_port + k * step, name=f"{name}-{k + 1:02d}", **kw)
            for k in range(n_towns)]
