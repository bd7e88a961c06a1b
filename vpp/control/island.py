"""What the control loop does with EV chargers and PV while the site is islanded.

* EV chargers pause (0 A): a car must never be charged from the disaster reserve. A charger
  flagged as a V2H supply (``island.v2h_chargers``) could discharge into the site instead;
  there is no V2H driver yet, so it pauses too and says why.
* PV is curtailed to what the site uses once every battery is full (within
  ``island.pv_full_margin`` of ``soc_max``): an islanded inverter has nowhere else to put it.

Units: W, A, SoC [fraction].
"""
from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from typing import Any

from vpp.config import Device, Reserve, SiteConfig
from vpp.control.alarms import Alarms
from vpp.control.autonomy import Autonomy, LoadShedder, live_autonomy
from vpp.control.ev import EvCommand
from vpp.control.image import ProcessImage

log = logging.getLogger(__name__)


def island_ev_commands(config: SiteConfig, chargers: list[Device],
                       planned: Mapping[str, EvCommand]) -> dict[str, EvCommand]:
    """0 A for every charger that had a command this step (see the module docstring)."""
    v2h = set(config.island.v2h_chargers)
    out = {}
    for cid in planned:
        why = ("outage: V2H supply flagged, but no V2H driver: paused" if cid in v2h
               else "outage: EV charging paused (the reserve is for the site)")
        out[cid] = EvCommand(cid, 0.0, 0.0, "outage", why)
    return out


def island_pv_limits(config: SiteConfig, image: ProcessImage) -> dict[str, float]:
    """PV limits [W] while islanded: every PV inverter's share (by rating) of the site's use
    (PV + battery power; grid is 0) once all batteries are full; empty otherwise or when a
    reading is missing."""
    bats = config.devices_of("battery")
    pvs = config.devices_of("pv")
    if not bats or not pvs:
        return {}
    margin = config.island.pv_full_margin
    socs = [image.soc(b.id) for b in bats]
    if any(not math.isfinite(s) for s in socs) or any(s < b.ratings.soc_max - margin for s, b in zip(socs, bats)):
        return {}
    pv_w = [image.reading(p.id).value("power_w") for p in pvs]
    bat_w = [image.reading(b.id).value("power_w") for b in bats]
    if any(not math.isfinite(x) for x in pv_w + bat_w):
        return {}
    use = max(sum(pv_w) + sum(bat_w), 0.0)  # grid 0: load + EV = PV + battery
    rated = [float(p.ratings.power_w or 1.0) for p in pvs]
    return {p.id: use * r / sum(rated) for p, r in zip(pvs, rated)}


def island_step(config: SiteConfig, image: ProcessImage, batteries: list[Device], reserve: Reserve,
                shedder: LoadShedder, load_switch: Callable[[str, bool], Any] | None, alarms: Alarms) -> Autonomy:
    """Live autonomy and load shedding for one control step: shed or restore load groups by the
    critical-only autonomy (:class:`vpp.control.autonomy.LoadShedder`), switch them through
    ``load_switch`` (a failing relay raises ``write:<group>`` and the step goes on), alarm
    ``shed`` lists what is off; returns the live autonomy with the groups still on."""
    now = image.at
    socs = image.socs(batteries)
    crit = live_autonomy(config, socs, now, (), reserve)
    for gid, on in shedder.step(now, image.grid_ok, crit, reserve).items():
        log.warning("load group %s %s", gid, "restored" if on else f"shed: {shedder.shed.get(gid, '')}")
        if load_switch is not None:
            try:
                load_switch(gid, on)
            except Exception as e:  # noqa: BLE001 - one relay failing must not stop the step
                alarms.raise_(f"write:{gid}", f"load switch failed: {type(e).__name__}: {e}", now)
    if shedder.shed:
        alarms.raise_("shed", "load shed: " + ", ".join(shedder.shed), now, "info")
    else:
        alarms.clear("shed", now, "no load shed")
    return live_autonomy(config, socs, now, shedder.on_groups(), reserve)
