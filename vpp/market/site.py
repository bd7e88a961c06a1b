"""The site as the aggregator sees it: batteries, reserve floor, storm mode, resources.

Reads from the running services (:class:`vpp.services.Services`): a controller when there
is one (fresh snapshots, storm floor), else the present SoC ``services.soc_of`` (NaN: unknown).
"""
from __future__ import annotations

import math
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from vpp.config import SiteConfig
from vpp.market.dispatch import BatteryState
from vpp.control.reserve import base_floor as reserve_floor, capacity_shares

if TYPE_CHECKING:
    from vpp.control.loop import Controller


class SiteReadings(Protocol):
    """The part of the API's services read here."""

    controller: Controller | None

    def now(self) -> datetime: ...

    def soc_of(self, device_id: str) -> float: ...


def site_batteries(config: SiteConfig, services: SiteReadings, now: datetime) -> list[BatteryState]:
    """Usable batteries at ``now`` (fresh SoC known); empty when none is usable."""
    ctl = services.controller
    out = []
    for b in config.devices_of("battery"):
        r = b.ratings
        if ctl is not None:
            snap, _ = ctl.snapshot(b.id, now)
            soc = snap.values.get("soc", math.nan) if snap is not None else math.nan
            floor = float(ctl.floor_at(b, [now])[0])
        else:
            soc = float(services.soc_of(b.id))
            floor = reserve_floor(config.reserve, r, capacity_shares(config.devices_of("battery"))[b.id])
        if not math.isfinite(soc):
            continue
        out.append(BatteryState(b.id, float(soc), floor, r.soc_max, r.capacity_wh, r.max_charge_w, r.max_discharge_w))
    return out


def storm_active(services: SiteReadings) -> bool:
    ctl = services.controller
    return bool(ctl is not None and ctl.storm.active)


def site_floor(config: SiteConfig, services: SiteReadings) -> float | None:
    """Capacity-weighted reserve floor [fraction] now (storm included), None without batteries."""
    bats = config.devices_of("battery")
    if not bats:
        return None
    ctl = services.controller
    now = services.now()
    cap = sum(b.ratings.capacity_wh for b in bats)
    tot = 0.0
    for b in bats:
        f = float(ctl.floor_at(b, [now])[0]) if ctl is not None else \
            reserve_floor(config.reserve, b.ratings, capacity_shares(bats)[b.id])
        tot += f * b.ratings.capacity_wh
    return tot / cap


def resources(config: SiteConfig, services: SiteReadings, now: datetime, per_device: bool) -> dict[str, Any]:
    """Registered resources: site aggregate and (``per_device``) one entry per battery.

    Usable energy counts only what lies above the reserve floor [kWh, after discharge losses].
    """
    fresh = {b.id: b for b in site_batteries(config, services, now)}
    meter = config.grid_meter()
    response_s = float(config.optimiser.dispatch_interval_s)
    devs = []
    for b in config.devices_of("battery"):
        r = b.ratings
        st = fresh.get(b.id)
        floor = st.floor if st else reserve_floor(config.reserve, r, capacity_shares(config.devices_of("battery"))[b.id])
        usable = (max(st.soc - st.floor, 0.0) * r.capacity_wh * r.discharge_efficiency / 1000) if st else None
        devs.append({"id": b.id, "kind": "battery", "available": st is not None,
                     "charge_kw": r.max_charge_w / 1000, "discharge_kw": r.max_discharge_w / 1000,
                     "capacity_kwh": r.capacity_wh / 1000, "usable_kwh_above_floor": usable,
                     "reserve_floor_pct": floor * 100, "response_time_s": response_s})
    cap = sum(b.ratings.capacity_wh for b in config.devices_of("battery"))
    site = {"id": config.site.name, "kind": "site", "batteries": len(devs),
            "available": sum(d["available"] for d in devs),
            "charge_kw": sum(d["charge_kw"] for d in devs), "discharge_kw": sum(d["discharge_kw"] for d in devs),
            "capacity_kwh": cap / 1000,
            "usable_kwh_above_floor": sum(d["usable_kwh_above_floor"] or 0.0 for d in devs),
            "reserve_floor_pct": (site_floor(config, services) or 0.0) * 100,
            "response_time_s": response_s, "metering_point": meter.id if meter else None,
            "storm_mode": storm_active(services)}
    return {"site": site, "devices": devs if per_device else None}
