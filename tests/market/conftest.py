"""Shared market-test helpers: a controller holding a solved plan."""
from __future__ import annotations

from datetime import UTC, datetime

from tests.testkit.sites import make_site
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
    cfg = make_site("planned-20k", **({"vpp": {"duration_s": duration_s}} if duration_s is not None else {}))
    clock = Clock(t0)
    ctl = Controller(cfg, clock=clock)
    problem = ctl.build_problem(t0, ctl.forecast_job(), {"bat1": 0.6})
    ctl.plan = Plan(ctl.solve(problem), t0, problem)
    return ctl, clock, cfg
