"""Site configuration: one YAML file validated into one pydantic model.

Nothing here is read at import time; call :func:`load_config` and pass the model on.
Invalid input raises :class:`ConfigError` whose message names each failing field path.
Units: W, Wh, s, fractions 0..1 unless a field says ``_pct`` (percent) or ``_kwh``.
"""
from __future__ import annotations

from datetime import time
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

# The device models live with the drivers (which import nothing from vpp); re-exported here.
from drivers.config import Device, EchonetConnection, Ratings, RtuConnection, TcpConnection  # noqa: F401
from vpp.slots import SLOT_S
# market prices and the bill's parts (their own module, re-exported here)
from vpp.config_market import (JEPX_AREAS, Bill, DatedPrice, DemandCharge, EXAMPLES_DIR, Prices,  # noqa: F401
                               data_file, files_beside)


class ConfigError(ValueError):
    """A configuration file is invalid; ``str()`` lists ``field.path: reason`` lines."""


class _Model(BaseModel):
    # frozen: a loaded config is the site's fixed default, never live state (a running
    # service keeps what changes at run time, e.g. the reserve floor in force, elsewhere)
    model_config = ConfigDict(extra="forbid", frozen=True)


class Site(_Model):
    name: str
    latitude: Annotated[float, Field(ge=-90, le=90, description="[deg]")]
    longitude: Annotated[float, Field(ge=-180, le=180, description="[deg]")]
    altitude: Annotated[float, Field(ge=-500, le=9000, description="[m]")] = 0.0
    timezone: str = "Asia/Tokyo"

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as e:
            raise ValueError(f"unknown time zone {v!r}") from e
        return v


class Grid(_Model):
    import_limit_w: Annotated[float, Field(gt=0, description="max import at the connection [W]")]
    export_limit_w: Annotated[float, Field(ge=0, description="max export [W]")]


class TouPeriod(_Model):
    """A time-of-use window in site local time; ``end`` <= ``start`` wraps past midnight."""

    name: str
    start: time
    end: time
    buy_per_kwh: Annotated[float, Field(description="buy price [currency/kWh]")]
    months: list[Annotated[int, Field(ge=1, le=12)]] | None = None


class Tariff(_Model):
    currency: str = "JPY"
    periods: list[TouPeriod] = Field(min_length=1)
    sell_per_kwh: float = 0.0
    co2_kg_per_kwh: Annotated[float, Field(ge=0)] = 0.45
    co2_price_per_kg: Annotated[float, Field(ge=0)] = 0.0
    version: str = "1"


class PvArray(_Model):
    id: str
    inverter: str | None = None  # device id that this array feeds
    kwp: Annotated[float, Field(gt=0, description="DC nameplate [kWp]")]
    tilt: Annotated[float, Field(ge=0, le=90, description="[deg]")] = 30.0
    azimuth: Annotated[float, Field(ge=0, lt=360, description="[deg] 180 = south")] = 180.0
    losses: Annotated[float, Field(ge=0, lt=1, description="system losses [fraction]")] = 0.14
    temperature_model: Literal["open_rack_glass_glass", "close_mount_glass_glass",
                               "open_rack_glass_polymer", "insulated_back_glass_polymer"] = "open_rack_glass_polymer"


class Reserve(_Model):
    """Disaster reserve. Each battery's floor is the larger of ``floor_pct`` and the SoC whose
    usable energy (above ``soc_min``, after discharge losses, less ``inverter_standby_w``)
    carries its capacity share of ``critical_load_w`` for ``autonomy_h``
    (:func:`vpp.control.reserve.floor_sizing`)."""

    floor_pct: Annotated[float, Field(ge=0, le=100)] = 30.0
    critical_load_w: Annotated[float, Field(ge=0, description="the site's critical load [W]")] = 0.0
    autonomy_h: Annotated[float, Field(ge=0, le=240)] = 72.0
    #: Standby draw of each battery inverter while islanded [W]. 20 W is typical of hybrid PCS
    #: self-consumption (datasheets: 10–30 W); over 72 h it is 1.4 kWh per inverter.
    inverter_standby_w: Annotated[float, Field(ge=0, le=1000, description="per battery inverter [W]")] = 20.0
    hysteresis_pct: Annotated[float, Field(ge=0, le=20)] = 2.0
    storm_target_pct: Annotated[float, Field(ge=0, le=100)] = 90.0
    storm_lead_h: Annotated[float, Field(gt=0, le=72)] = 12.0
    recovery_penalty_per_kwh: Annotated[float, Field(ge=0)] = 1000.0


class OutageDetection(_Model):
    """When the controller believes the grid is down (:mod:`vpp.control.outage`).

    An outage is declared after ``samples`` consecutive grid-meter samples spanning at least
    ``confirm_s`` with voltage below ``dead_v`` *and* frequency below ``dead_hz`` (or the
    inverter's islanding flag set); the grid is back after ``restore_samples`` consecutive live
    samples (``live_v`` and ``live_hz`` bands) spanning ``restore_s``. Any other reading
    (one quantity dead and the other alive, values between dead and live, or outside the
    plausible ranges of :mod:`drivers.fields`) is BAD: alarm ``grid:reading``, never an outage.
    """

    samples: Annotated[int, Field(ge=1, le=100, description="consecutive dead samples to declare [-]")] = 3
    confirm_s: Annotated[float, Field(ge=0, le=3600, description="span of those samples [s]")] = 10.0
    restore_samples: Annotated[int, Field(ge=1, le=100, description="consecutive live samples to end [-]")] = 3
    restore_s: Annotated[float, Field(ge=0, le=3600, description="span of those samples [s]")] = 10.0
    dead_v: Annotated[float, Field(gt=0, description="below: no voltage [V]")] = 10.0
    dead_hz: Annotated[float, Field(gt=0, description="below: no zero crossings [Hz]")] = 1.0
    live_v: tuple[float, float] = (80.0, 280.0)  #: a live LV supply [V] (JP 101/202 V, 230 V sites)
    live_hz: tuple[float, float] = (45.0, 65.0)  #: a live grid [Hz] (JP 50/60 Hz)


class ClockCheck(_Model):
    """Wall-clock sanity: alarm ``clock`` when the wall clock moves away from the monotonic
    clock by more than ``step_alarm_s`` between two control steps (NTP step, RTC reset)."""

    step_alarm_s: Annotated[float, Field(gt=0, description="[s]")] = 120.0
class LoadGroup(_Model):
    """A load circuit the site can switch in an outage: a 特定負荷 (critical) circuit, shelter
    loads, a relay-switched or controllable load. Critical groups are never shed; the others
    are shed in ``priority`` order (the highest number first) as the live autonomy falls
    below their ``shed_below_h`` (default: ``reserve.autonomy_h`` + 6 h per group shed after
    it, so the least important goes first), and restored when the grid returns."""

    id: str
    priority: Annotated[int, Field(ge=0, description="1 = most important; higher numbers are shed first")] = 1
    critical: bool = False
    nominal_w: Annotated[float, Field(ge=0, description="typical draw [W]")]
    relay: str | None = None  # device id of the switch/relay (None: switched by the site's own means)
    shed_below_h: Annotated[float | None, Field(ge=0, description="[h] of autonomy left")] = None


class IslandConfig(_Model):
    """Operation while islanded (grid outage): EV chargers in ``v2h_chargers`` are V2H supplies
    (flag only: no V2H driver yet, so they pause like the others), PV is curtailed to the
    site's load once every battery is within ``pv_full_margin`` of ``soc_max``."""

    v2h_chargers: list[str] = Field(default_factory=list)
    pv_full_margin: Annotated[float, Field(ge=0, le=0.2, description="[fraction] of SoC")] = 0.01
    shed_step_h: Annotated[float, Field(ge=0, le=72, description="default spacing of shed thresholds [h]")] = 6.0


class JmaConfig(_Model):
    enabled: bool = False
    area_code: str = "040000"  # Miyagi prefectural office
    raise_codes: list[str] = Field(default_factory=lambda: ["02", "03", "04", "05", "06",
                                                            "32", "33", "35", "36", "37", "38"])
    url: str | None = None
    #: plain http for ``url`` (test servers, a loopback relay); https only otherwise
    allow_http: bool = False
    #: largest warning document accepted [bytes] (JMA's are ~0.1 MB)
    max_bytes: Annotated[int, Field(gt=0, le=64 * 1024 * 1024)] = 2 * 1024 * 1024
    #: a report older than this [h] is ignored with the ``jma`` alarm: JMA reissues the
    #: document with every bulletin, an older one may be a stale mirror or a replay
    max_age_h: Annotated[float, Field(gt=0)] = 48.0

    @model_validator(mode="after")
    def _https(self) -> "JmaConfig":
        if self.url is not None:
            scheme = self.url.split(":", 1)[0].lower()
            if scheme not in (("https", "http") if self.allow_http else ("https",)):
                raise ValueError(f"vpp.jma.url must be https (allow_http: true for test servers), got {self.url!r}")
        return self


class OpenAdrConfig(_Model):
    """The site's OpenADR 2.0b VEN (:mod:`vpp.openadr.ven`); started by the runtime when enabled."""
    enabled: bool = False
    vtn_url: str | None = None  # e.g. https://vtn.example.jp/OpenADR2/Simple/2.0b
    ven_name: str | None = None  # defaults to site.name
    report_interval_s: Annotated[float, Field(gt=0, le=3600, description="telemetry sampling [s]")] = 10.0
    poll_interval_s: Annotated[float, Field(gt=0, le=3600)] = 10.0
    # TLS (vpp.openadr.tls): an https vtn_url is verified against ca_file (None: the system
    # CAs); cert/key are the VEN's client certificate (PEM paths; they also sign messages)
    ca_file: str | None = None
    cert: str | None = None
    key: str | None = None
    # the VTN's certificate fingerprint (openleadr's form, AA:BB:…); set, every VTN message must
    # be signed by that certificate (unsigned or forged ones are dropped)
    vtn_fingerprint: str | None = None
    require_signatures: bool = False  # true: refuse to start without vtn_fingerprint

    @model_validator(mode="after")
    def _needs_url(self) -> "OpenAdrConfig":
        if self.enabled and not self.vtn_url:
            raise ValueError("vtn_url is required when openadr is enabled")
        if bool(self.cert) != bool(self.key):
            raise ValueError("cert and key go together (the VEN's client certificate and its private key)")
        if self.require_signatures and not self.vtn_fingerprint:
            raise ValueError("vtn_fingerprint is required when require_signatures is true")
        return self


class VppSection(_Model):
    enabled: bool = False
    aggregator: str | None = None
    slot_s: Literal[SLOT_S] = SLOT_S  # market slot: 30 min
    product: Literal["tertiary1", "tertiary2"] = "tertiary2"
    response_s: Annotated[float, Field(gt=0, description="product response time [s]")] = 3600
    duration_s: Annotated[float, Field(gt=0, le=86400,
                                       description="how long an offered ΔkW must be sustainable [s]")] = 3600
    capacity_price_per_kw: Annotated[float, Field(ge=0)] = 0.0
    energy_price_per_kwh: Annotated[float, Field(ge=0)] = 0.0
    activation_ratio: Annotated[float, Field(ge=0, le=1)] = 0.2
    confidence: Annotated[float, Field(ge=0.5, lt=1)] = 0.9
    openadr: OpenAdrConfig = Field(default_factory=OpenAdrConfig)
    jma: JmaConfig = Field(default_factory=JmaConfig)


class InfluxStorage(_Model):
    backend: Literal["influxdb"]
    url: str = "http://127.0.0.1:8086"
    database: str = "vpp"
    retention_policy: str | None = None
    username: str | None = None
    password: str | None = None
    token: str | None = None
    precision: Literal["ns", "us", "ms", "s"] = "ns"
    batch_size: Annotated[int, Field(gt=0, le=100_000)] = 5000
    flush_interval_s: Annotated[float, Field(gt=0)] = 1.0
    create_database: bool = True
    spool_dir: str = "var/spool"
    spool_max_bytes: Annotated[int, Field(gt=0)] = 512 * 1024 * 1024
    queue_max: Annotated[int, Field(gt=0)] = 200_000
    timeout_s: Annotated[float, Field(gt=0)] = 10.0


class EmbeddedStorage(_Model):
    backend: Literal["embedded"] = "embedded"
    path: str = "var/vpp.sqlite"
    batch_size: Annotated[int, Field(gt=0)] = 5000
    flush_interval_s: Annotated[float, Field(gt=0)] = 1.0
    queue_max: Annotated[int, Field(gt=0)] = 200_000


class Optimiser(_Model):
    horizon_h: Annotated[float, Field(gt=0, le=168)] = 48.0
    slot_s: Annotated[int, Field(ge=300, le=3600)] = 900
    time_limit_s: Annotated[float, Field(gt=0)] = 10.0
    mip_gap: Annotated[float, Field(ge=0, lt=1)] = 0.001
    solver: Literal["highs", "cbc"] = "highs"
    plan_interval_s: Annotated[float, Field(gt=0)] = 900
    dispatch_interval_s: Annotated[float, Field(gt=0)] = 60
    lease_s: Annotated[float, Field(gt=0)] = 180
    stale_plan_s: Annotated[float, Field(gt=0)] = 3600
    # "site": one LP over every device; "fleet": per-home LPs coordinated on the feeder
    # (optimizer.fleet, for towns of hundreds of homes)
    planner: Literal["site", "fleet"] = "site"
    # scenario planning: joint PV/load scenarios in one plan (1 = the median forecast only);
    # the setpoint applied now is the same in every scenario, the reserve floor holds in each
    scenarios: Annotated[int, Field(ge=1, le=50)] = 1
    scenario_slot_correlation: Annotated[float, Field(ge=0, lt=1)] = 0.9  # of neighbouring slots' errors
    scenario_seed: int = 0


class Api(_Model):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8080
    keys_path: str = "var/api_keys.json"
    ledger_path: str = "var/ledger.sqlite"
    # aggregators may also create offers (operator only by default: an aggregator could
    # otherwise offer the site's flexibility and award it to itself at its own price)
    aggregator_offers: bool = False
    max_body_bytes: Annotated[int, Field(gt=0)] = 1 << 20  # request bodies above → 413 before parsing
    max_concurrent_requests: Annotated[int, Field(gt=0)] = 64  # in flight, event streams apart → 503
    # the API reference page /api/v1/docs (self-hosted, no CDN); production configs turn it off
    docs: bool = True


class OcppServer(_Model):
    """The central system (CSMS) that OCPP charge points (``protocol: ocpp`` devices) connect
    to: ``ws[s]://host:port/ocpp/<id>``. ``security_profile`` 0: no auth (loopback tests
    only), 1: HTTP basic auth (each device's ``ocpp.password``), 2: TLS (``certfile``/
    ``keyfile``) + basic auth. ``call_timeout_s`` [s]: a station that does not answer a call
    within it raises an alarm. ``max_frame_bytes``: larger frames close the connection (1009).
    ``max_messages_per_s``: a station sending more is throttled (messages dropped, counted).
    ``auth_list``: id tags accepted by Authorize/Start (empty: any tag)."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 9000
    security_profile: Literal[0, 1, 2] = 1
    certfile: str | None = None
    keyfile: str | None = None
    call_timeout_s: Annotated[float, Field(gt=0, le=120)] = 10.0
    heartbeat_s: Annotated[int, Field(gt=0, le=86400)] = 300
    max_frame_bytes: Annotated[int, Field(ge=1024, le=1 << 24)] = 64 * 1024
    max_messages_per_s: Annotated[float, Field(gt=0)] = 20.0
    profile_duration_s: Annotated[int, Field(ge=60, le=86400)] = 3600
    auth_list: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _tls(self) -> "OcppServer":
        if self.security_profile == 2 and (self.certfile is None or self.keyfile is None):
            raise ValueError("security_profile 2 (TLS) needs certfile and keyfile")
        return self


class SiteConfig(_Model):
    """The whole site. Every component receives this (or a part of it)."""

    site: Site
    grid: Grid
    tariff: Tariff
    devices: list[Device] = Field(default_factory=list)
    pv_arrays: list[PvArray] = Field(default_factory=list)
    reserve: Reserve = Field(default_factory=Reserve)
    outage_detection: OutageDetection = Field(default_factory=OutageDetection)
    clock: ClockCheck = Field(default_factory=ClockCheck)
    loads: list[LoadGroup] = Field(default_factory=list)
    island: IslandConfig = Field(default_factory=IslandConfig)
    vpp: VppSection = Field(default_factory=VppSection)
    storage: Annotated[InfluxStorage | EmbeddedStorage, Field(discriminator="backend")] = Field(
        default_factory=EmbeddedStorage
    )
    optimiser: Optimiser = Field(default_factory=Optimiser)
    api: Api = Field(default_factory=Api)
    ocpp: OcppServer = Field(default_factory=OcppServer)
    prices: Prices = Field(default_factory=Prices)
    bill: Bill = Field(default_factory=Bill)

    @model_validator(mode="after")
    def _cross_checks(self) -> "SiteConfig":
        ids = [d.id for d in self.devices]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"duplicate device ids: {', '.join(dup)}")
        known = set(ids)
        for a in self.pv_arrays:
            if a.inverter is not None and a.inverter not in known:
                raise ValueError(f"pv array {a.id!r} names unknown inverter {a.inverter!r}")
        if self.bill.sell_scheme == "fip" and self.prices.source != "jepx":
            raise ValueError("bill.sell_scheme fip (spot + premium) needs prices.source jepx (a spot price)")
        lids = [g.id for g in self.loads]
        if len(set(lids)) != len(lids):
            raise ValueError("duplicate load group ids")
        for g in self.loads:
            if g.relay is not None and g.relay not in known:
                raise ValueError(f"load group {g.id!r} names unknown relay device {g.relay!r}")
        chargers = {d.id for d in self.devices if d.kind == "ev_charger"}
        for c in self.island.v2h_chargers:
            if c not in chargers:
                raise ValueError(f"island.v2h_chargers names {c!r}, which is not an EV charger")
        if self.bill.sell_scheme == "fip" and self.prices.source != "jepx":
            raise ValueError("bill.sell_scheme fip (market + premium) needs prices.source jepx")
        return self

    def devices_of(self, kind: str) -> list[Device]:
        return [d for d in self.devices if d.kind == kind]

    def grid_meter(self) -> Device | None:
        """The meter at the grid connection (grid > 0 = import): the meter with role
        ``grid``, else the first meter without a role, else ``None``. The one rule for
        which meter is the grid meter."""
        meters = self.devices_of("meter")
        grid = [m for m in meters if m.role == "grid"] or [m for m in meters if m.role is None]
        return grid[0] if grid else None

    def device(self, device_id: str) -> Device:
        for d in self.devices:
            if d.id == device_id:
                return d
        raise KeyError(device_id)


M = TypeVar("M", bound=BaseModel)


def updated(model: M, **changes: Any) -> M:
    """Copy of the frozen config model ``model`` with ``changes``; a dict given for a field
    that holds a sub-model changes only the named fields of that sub-model (recursively),
    e.g. ``updated(cfg, optimiser={"horizon_h": 12}, api={"port": 0})``. Like
    ``model_copy(update=...)`` the values are not validated again."""
    upd: dict[str, Any] = {}
    for k, v in changes.items():
        cur = getattr(model, k)
        upd[k] = updated(cur, **v) if isinstance(cur, BaseModel) and isinstance(v, dict) else v
    return model.model_copy(update=upd)


def _format_errors(err: ValidationError, source: str) -> str:
    lines = [f"invalid configuration in {source}:"]
    for e in err.errors():
        path = ".".join(str(p) for p in e["loc"]) or "(top level)"
        lines.append(f"  {path}: {e['msg']}")
    return "\n".join(lines)


def parse_config(data: Any, source: str = "<dict>") -> SiteConfig:
    """Validate a mapping into a :class:`SiteConfig` or raise :class:`ConfigError`."""
    if not isinstance(data, dict):
        raise ConfigError(f"invalid configuration in {source}:\n  (top level): expected a mapping")
    try:
        return SiteConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_format_errors(e, source)) from None


def read_config(path: str | Path) -> SiteConfig:
    """Read and validate a YAML site config file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read configuration {p}: {e.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"invalid YAML in {p}: {e}") from None
    return files_beside(parse_config(data, str(p)), p.parent)


load_config = read_config
