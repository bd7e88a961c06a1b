"""Scenario files: one YAML per scenario in ``simulators/scenarios/data``, validated here.

Times inside a scenario are hours after ``start`` (floats). A scenario names the site config
it runs (a path, or the stem of a file in ``deploy/examples``) and may patch it with
``config_patch`` (deep-merged mapping). Units as everywhere: W, Wh, fractions 0..1 unless
a field says ``_pct``.
"""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from vpp.config import ConfigError, SiteConfig, files_beside, parse_config

DATA_DIR = Path(__file__).parent / "data"
EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "deploy" / "examples"

Hours = Annotated[float, Field(ge=0, description="[h] after the scenario start")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Weather(_Model):
    """Clear-sky index trace (what the simulated PV sees) and what the forecast says.

    ``trace``: ``[[hour, clear-sky index], …]`` interpolated linearly (held at the ends);
    ``daily``: one index per day (repeated cyclically), used when ``trace`` is empty;
    ``variability``: amplitude of seeded 10-min noise on the index [-];
    ``forecast_scale``: the forecast's index is the true one × this (> 1: forecast too sunny);
    ``forecast``: ``truth`` (the trace, scaled) or ``clear-sky`` (no provider).
    """

    trace: list[tuple[float, float]] = Field(default_factory=list)
    daily: list[Annotated[float, Field(ge=0, le=1.2)]] = Field(default_factory=lambda: [1.0])
    variability: Annotated[float, Field(ge=0, le=1)] = 0.0
    forecast_scale: Annotated[float, Field(gt=0)] = 1.0
    forecast: Literal["truth", "clear-sky"] = "truth"


class Window(_Model):
    start: Hours = Field(alias="from")
    end: Hours = Field(alias="to")
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Storm(_Model):
    """Storm mode (JMA warning or manual) switched on at ``at`` with the floor reaching
    ``target_pct`` by ``deadline``; off again at ``lifted`` (if given)."""

    at: Hours
    deadline: Hours
    target_pct: Annotated[float, Field(ge=0, le=100)] = 90.0
    lifted: Hours | None = None
    reason: str = "JMA storm warning"


class EvArrival(_Model):
    at: Hours
    charger: str
    need_wh: Annotated[float, Field(gt=0)]
    stay_h: Annotated[float, Field(gt=0)] = 8.0


class Dispatch(_Model):
    """An accepted aggregator award dispatched for ``[from, to)``: the site's batteries
    deliver ``power_w`` (> 0 discharge), split by rating, through the controller's
    ``dispatch_source`` hook."""

    start: Hours = Field(alias="from")
    end: Hours = Field(alias="to")
    power_w: float
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Fault(_Model):
    """Modbus fault on one device (``offline``, ``frozen``, ``exception``, ``slow``)."""

    at: Hours
    device: str
    fault: Literal["offline", "frozen", "exception", "slow"]
    clear: Hours | None = None


class MeterGlitch(_Model):
    """Grid-meter readings forced to ``voltage_v`` [V] / ``frequency_hz`` [Hz] over
    ``[from, to)`` whatever the grid does (a faulty meter, a wrong scale factor)."""

    start: Hours = Field(alias="from")
    end: Hours = Field(alias="to")
    voltage_v: float | None = None
    frequency_hz: float | None = None
    device: str | None = None  #: meter id (default: the site's grid meter)
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ClockStep(_Model):
    """The wall clock steps by ``step_s`` [s] (either sign) at ``at``, as an NTP correction
    would; steady time goes on."""

    at: Hours
    step_s: float


class OverrideAt(_Model):
    """An operator override of battery ``device`` to ``setpoint_w`` [W] for ``minutes``."""

    at: Hours
    device: str
    setpoint_w: float
    minutes: Annotated[float, Field(gt=0)] = 30.0


class Assertion(_Model):
    """Bound on one KPI (see :mod:`simulators.scenarios.kpis`)."""

    kpi: str
    max: float | None = None
    min: float | None = None


class Town(_Model):
    """Generate the site with :func:`simulators.town.generate_town` instead of a file."""

    homes: Annotated[int, Field(ge=1, le=2000)]
    seed: int = 0
    #: how the homes are reached: Modbus simulators, or one ECHONET Lite node per home
    protocol: Literal["modbus", "echonet_lite"] = "modbus"
    v2h_share: Annotated[float, Field(ge=0, le=1)] = 0.1


class Scenario(_Model):
    name: str
    description: str = ""
    config: str = "community-centre"
    town: Town | None = None
    config_patch: dict[str, Any] = Field(default_factory=dict)
    start: datetime
    duration_h: Annotated[float, Field(gt=0)]
    seed: int = 0
    initial_soc: Annotated[float, Field(ge=0, le=1)] = 0.5
    load_mean_w: Annotated[float | None, Field(gt=0)] = None
    island_load_w: Annotated[float | None, Field(ge=0, description="load left when islanded [W]")] = None
    auto_ev_sessions: bool = False
    ocpp_chargers: bool = False  #: the site's EV chargers speak OCPP to a central system (1.6 / 2.0.1 in turn)
    weather: Weather = Field(default_factory=Weather)
    ev_arrivals: list[EvArrival] = Field(default_factory=list)
    grid_outages: list[Window] = Field(default_factory=list)
    storm: Storm | None = None
    dispatches: list[Dispatch] = Field(default_factory=list)
    faults: list[Fault] = Field(default_factory=list)
    storage_outages: list[Window] = Field(default_factory=list)
    solver_outages: list[Window] = Field(default_factory=list)
    meter_glitches: list[MeterGlitch] = Field(default_factory=list)
    clock_steps: list[ClockStep] = Field(default_factory=list)
    overrides: list[OverrideAt] = Field(default_factory=list)
    assertions: list[Assertion] = Field(default_factory=list)

    def start_utc(self) -> datetime:
        s = self.start
        return s.replace(tzinfo=timezone.utc) if s.tzinfo is None else s.astimezone(timezone.utc)

    def site_config(self, path: str | Path | None = None) -> SiteConfig:
        """The site config (``path`` overrides the scenario's own) with ``config_patch``."""
        if path is None and self.town is not None:
            from simulators.town import generate_town

            t = self.town
            data = generate_town(t.homes, t.seed, protocol=t.protocol, v2h_share=t.v2h_share)
            src = f"<town of {t.homes} {t.protocol} homes>"
            return parse_config(self._chargers(deep_merge(data, self.config_patch)), src)
        src = Path(path) if path else _config_path(self.config)
        try:
            data = yaml.safe_load(src.read_text(encoding="utf-8"))
        except OSError as e:
            raise ConfigError(f"cannot read configuration {src}: {e.strerror}") from None
        return files_beside(parse_config(self._chargers(deep_merge(data, self.config_patch)), str(src)), src.parent)

    def _chargers(self, data: dict) -> dict:
        if not self.ocpp_chargers:
            return data
        from simulators.scenarios.ocpp_site import ocpp_chargers

        return ocpp_chargers(data)


def _config_path(name: str) -> Path:
    p = Path(name)
    if p.suffix in (".yaml", ".yml") and p.exists():
        return p
    for cand in (EXAMPLES_DIR / f"{name}.yaml", DATA_DIR / f"{name}.yaml", DATA_DIR / "configs" / f"{name}.yaml"):
        if cand.exists():
            return cand
    raise ConfigError(f"unknown site config {name!r} (a YAML path or a deploy/examples name)")


def deep_merge(base: Any, patch: Any) -> Any:
    """``patch`` merged into ``base``: mappings recursively; lists of mappings with ``id``
    keys item by item (unknown ids appended); anything else replaced."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for k, v in patch.items():
            out[k] = deep_merge(base.get(k), v) if k in base else v
        return out
    if isinstance(base, list) and isinstance(patch, list) and all(isinstance(x, dict) and "id" in x for x in patch):
        by_id = {x.get("id"): i for i, x in enumerate(base) if isinstance(x, dict)}
        out = list(base)
        for x in patch:
            if x["id"] in by_id:
                out[by_id[x["id"]]] = deep_merge(out[by_id[x["id"]]], x)
            else:
                out.append(x)
        return out
    return patch


def parse_scenario(data: Any, source: str = "<dict>") -> Scenario:
    try:
        return Scenario.model_validate(data)
    except ValidationError as e:
        lines = [f"invalid scenario in {source}:"]
        lines += [f"  {'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors()]
        raise ConfigError("\n".join(lines)) from None


def read_scenario(name_or_path: str | Path) -> Scenario:
    """A scenario by name (file in :data:`DATA_DIR`) or path."""
    p = Path(name_or_path)
    if not p.exists():
        p = DATA_DIR / f"{name_or_path}.yaml"
    if not p.exists():
        raise ConfigError(f"unknown scenario {name_or_path!r}; known: {', '.join(list_scenarios())}")
    return parse_scenario(yaml.safe_load(p.read_text(encoding="utf-8")), str(p))


def list_scenarios() -> list[str]:
    return sorted(p.stem for p in DATA_DIR.glob("*.yaml"))
