"""Driver-side configuration: how to reach one device, its ratings and its register map.

These pydantic models are the ``devices:`` entries of a site config; :mod:`vpp.config`
embeds and re-exports them, so a config error still names the full field path
(``devices.1.ratings.capacity_wh``). They live here so that ``drivers`` needs nothing from
``vpp``. Frozen: derive a changed copy with ``model_copy(update=...)``, never assign.
Units: W, Wh, V, A, s; SoC limits as fractions 0..1.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class FrozenModel(BaseModel):
    """Base of config models: unknown keys are errors, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class TcpConnection(FrozenModel):
    type: Literal["tcp"] = "tcp"
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 502
    device_id: Annotated[int, Field(ge=0, le=247)] = 1


class RtuConnection(FrozenModel):
    type: Literal["rtu"]
    port: str
    baudrate: Annotated[int, Field(gt=0)] = 9600
    parity: Literal["N", "E", "O"] = "N"
    device_id: Annotated[int, Field(ge=1, le=247)] = 1


#: ECHONET object file (``drivers/echonet/objects/<name>.yaml``) per device kind by default.
ECHONET_DEFAULT_OBJECT = {"battery": "storage_battery", "pv": "home_pv", "ev_charger": "v2h",
                          "meter": "smart_meter"}


class EchonetConnection(FrozenModel):
    """An ECHONET Lite device object: the home node's address and the object's instance."""

    type: Literal["echonet_lite"]
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 3610
    instance: Annotated[int, Field(ge=1, le=0x7F, description="EOJ instance code")] = 1


Connection = Annotated[TcpConnection | RtuConnection | EchonetConnection, Field(discriminator="type")]


class Ratings(FrozenModel):
    """Device ratings; only the ones relevant for the kind are required (checked by :class:`Device`)."""

    power_w: Annotated[float | None, Field(gt=0, description="rated AC power [W]")] = None
    capacity_wh: Annotated[float | None, Field(gt=0, description="usable capacity [Wh]")] = None
    max_charge_w: Annotated[float | None, Field(gt=0)] = None
    max_discharge_w: Annotated[float | None, Field(gt=0)] = None
    charge_efficiency: Annotated[float, Field(gt=0, le=1)] = 0.95
    discharge_efficiency: Annotated[float, Field(gt=0, le=1)] = 0.95
    soc_min: Annotated[float, Field(ge=0, le=1)] = 0.05
    soc_max: Annotated[float, Field(ge=0, le=1)] = 0.95
    min_current_a: Annotated[float | None, Field(ge=0)] = None
    max_current_a: Annotated[float | None, Field(gt=0)] = None
    phases: Literal[1, 3] = 1
    voltage_v: Annotated[float, Field(gt=0)] = 230.0
    degradation_cost_per_kwh: Annotated[float, Field(ge=0)] = 0.0


class OcppOptions(FrozenModel):
    """How the central system talks to one OCPP charge point (``protocol: ocpp`` devices).

    ``password``: its HTTP basic-auth password (security profiles 1 and 2; ``None`` = the
    server's profile 0 or TLS client certificates only). ``rate_unit``: what its charging
    profiles are written in (``A`` current per phase, ``W`` power; ``auto`` asks the station
    for ``ChargingScheduleAllowedChargingRateUnit``). ``connector_id``: the connector (1.6) /
    EVSE (2.0.1) the car uses. ``fallback_limit_key``: a configuration key (1.6) or
    ``Component/Variable`` (2.0.1) holding a plain current limit [A], used when the station
    rejects charging profiles. ``safe_limit_a``: the TxDefaultProfile limit [A] it keeps when
    the central system is away (``None`` = the charger's minimum current)."""

    password: str | None = None
    rate_unit: Literal["A", "W", "auto"] = "auto"
    connector_id: Annotated[int, Field(ge=1, le=16)] = 1
    fallback_limit_key: str | None = None
    safe_limit_a: Annotated[float | None, Field(ge=0)] = None


class Device(FrozenModel):
    """One device: its connection, register map (``drivers/maps/<register_map>.yaml``) and ratings.

    ``protocol: ocpp`` (EV chargers only) devices have no register map or connection: the
    charge point ``id`` connects to the service's central system (``/ocpp/<id>``) speaking
    OCPP ``version`` 1.6 (JSON) or 2.0.1; ``ocpp`` holds the per-station options.
    """

    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$")]
    kind: Literal["pv", "battery", "ev_charger", "meter"]
    #: ``echonet_lite``: ``register_map`` names an ECHONET object file (default per kind,
    #: :data:`ECHONET_DEFAULT_OBJECT`) or a path to one; ``ocpp``: see above
    protocol: Literal["modbus", "echonet_lite", "ocpp"] = "modbus"
    connection: Connection = Field(default_factory=TcpConnection)
    register_map: str | None = None
    version: Literal["1.6", "2.0.1"] | None = None  # OCPP version of a ``protocol: ocpp`` device
    ocpp: OcppOptions = Field(default_factory=OcppOptions)
    ratings: Ratings = Field(default_factory=Ratings)
    poll_interval_s: Annotated[float, Field(gt=0, le=3600)] = 1.0
    timeout_s: Annotated[float, Field(gt=0, le=60)] = 1.0
    retries: Annotated[int, Field(ge=0, le=10)] = 1
    role: Literal["grid", "site", "sub", "household"] | None = None  # meters: what they measure
    home: str | None = None  # household id for multi-home sites

    @model_validator(mode="before")
    @classmethod
    def _echonet_defaults(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("protocol") == "echonet_lite":
            data = dict(data)
            conn = data.get("connection")
            if conn is None or (isinstance(conn, dict) and "type" not in conn):
                data["connection"] = {"type": "echonet_lite", **(conn or {})}
            if "register_map" not in data and data.get("kind") in ECHONET_DEFAULT_OBJECT:
                data["register_map"] = ECHONET_DEFAULT_OBJECT[data["kind"]]
        return data

    @field_validator("connection", mode="before")
    @classmethod
    def _default_tcp(cls, v: Any) -> Any:
        if isinstance(v, dict) and "type" not in v:
            return {"type": "tcp", **v}
        return v

    @model_validator(mode="after")
    def _ratings_for_kind(self) -> "Device":
        if self.protocol == "modbus" and self.register_map is None:
            raise ValueError("register_map is required for a Modbus device")
        if self.protocol == "ocpp":
            if self.kind != "ev_charger":
                raise ValueError("protocol ocpp is for kind ev_charger only")
            if self.version is None:
                raise ValueError('an OCPP device needs version: "1.6" or "2.0.1"')
        r = self.ratings
        need = {
            "battery": ["capacity_wh", "max_charge_w", "max_discharge_w"],
            "pv": ["power_w"],
            "ev_charger": ["max_current_a"],
        }.get(self.kind, [])
        missing = [n for n in need if getattr(r, n) is None]
        if missing:
            raise ValueError(f"{self.kind} device needs ratings: {', '.join(missing)}")
        if (self.protocol == "echonet_lite") != isinstance(self.connection, EchonetConnection):
            raise ValueError(f"protocol {self.protocol} does not match connection type {self.connection.type}")
        if r.soc_min >= r.soc_max:
            raise ValueError("ratings.soc_min must be below ratings.soc_max")
        if r.min_current_a is not None and r.max_current_a is not None and r.min_current_a > r.max_current_a:
            raise ValueError("ratings.min_current_a must not exceed ratings.max_current_a")
        return self

    def with_connection(self, **update: Any) -> "Device":
        """Copy with connection fields replaced (e.g. ``port=15020``)."""
        return self.model_copy(update={"connection": self.connection.model_copy(update=update)})

    def with_ratings(self, **update: Any) -> "Device":
        """Copy with rating fields replaced (e.g. ``soc_min=0.2``)."""
        return self.model_copy(update={"ratings": self.ratings.model_copy(update=update)})
