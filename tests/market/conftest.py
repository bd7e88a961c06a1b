"""Shared market-test helpers: a controller holding a solved plan."""
from __future__ import annotations

from datetime import UTC, datetime

from vpp.config import parse_config
from vpp.control.loop import Controller, Plan

PLAN_T0 = datetime(2026, 11, 25, 0, 0, tzinfo=UTC)


class Clock:
    """A settable clock: ``now()`` returns ``t``."""

    def __init__(self, t: datetime) -> None:
        self.t = t

    def now(self) -> datetime:
        return self.t


def planned_controller(duration_s: float | None = None, t0: datetime = PLAN_T0):
    """A controller with a solved 12-h plan at ``t0`` (clear-sky fallback forecast), one
    20 kWh / 5 kW battery at SoC 0.6, a 30 % floor, 30-min slots; ``duration_s`` sets
    vpp.duration_s (s; None = the config default). Returns (controller, clock, config)."""
    data = {
        "site": {"name": "t", "latitude": 38.33, "longitude": 140.85, "timezone": "Asia/Tokyo"},
        "grid": {"import_limit_w": 20000, "export_limit_w": 10000},
        "tariff": {"periods": [{"name": "flat", "start": "00:00", "end": "00:00", "buy_per_kwh": 30}]},
        "devices": [{"id": "bat1", "kind": "battery", "register_map": "sunspec_storage",
                     "ratings": {"capacity_wh": 20000, "max_charge_w": 5000, "max_discharge_w": 5000}}],
        "reserve": {"floor_pct": 30},
        "optimiser": {"horizon_h": 12, "slot_s": 1800, "stale_plan_s": 3600},
    }
    if duration_s is not None:
        data["vpp"] = {"duration_s": duration_s}
    cfg = parse_config(data)
    clock = Clock(t0)
    ctl = Controller(cfg, clock=clock)
    problem = ctl.build_problem(t0, ctl.forecast_job(), {"bat1": 0.6})
    ctl.plan = Plan(ctl.solve(problem), t0, problem)
    return ctl, clock, cfg
