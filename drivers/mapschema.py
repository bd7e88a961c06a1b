"""Register-map schema: the YAML file model (``MapSpec``) and the resolved records.

:class:`MapSpec` validates one ``drivers/maps/<name>.yaml`` file as written (the format is
described in :mod:`drivers.registermap`); :func:`drivers.registermap.parse_map` resolves it
into :class:`Register` (absolute address, concrete type), :class:`Virtual` and
:class:`Control` records held by a :class:`drivers.registermap.RegisterMap`.
A register image is ``{(table, address): word}``.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Image = dict[tuple[str, int], int]
TABLES = ("holding", "input")


class MapError(ValueError):
    """A register map file is invalid."""


# --------------------------------------------------------------------------- YAML schema
class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RegisterSpec(_Spec):
    name: str
    point: str | None = None
    address: int | None = None
    table: Literal["holding", "input"] | None = None
    type: str | None = None
    size: int | None = None
    word_order: Literal["big", "little"] | None = None
    sf: int | str | None = None
    scale: float = 1.0
    percent_of: str | None = None
    lookup: dict[int, float] | None = None
    source: str | None = None
    unit: str = ""
    access: Literal["r", "rw"] | None = None
    group: Literal["fast", "slow"] = "fast"
    default: float | str | None = None
    comment: str = ""
    manual: str | None = None

    @model_validator(mode="after")
    def _where(self) -> "RegisterSpec":
        if self.source is not None:
            if self.lookup is None:
                raise ValueError(f"{self.name}: a virtual register needs a lookup")
            return self
        if (self.point is None) == (self.address is None):
            raise ValueError(f"{self.name}: give exactly one of point or address")
        if self.address is not None and (self.table is None or self.type is None):
            raise ValueError(f"{self.name}: address registers need table and type")
        return self


class ControlSpec(_Spec):
    value: str
    revert: str | None = None
    enable: dict[str, float] = Field(default_factory=dict)


class SunSpecSpec(_Spec):
    base: int = 40000
    models: list[int]
    scale_factors: dict[str, int] = Field(default_factory=dict)


class MapSpec(_Spec):
    name: str
    kind: Literal["pv", "battery", "ev_charger", "meter"]
    manual: str
    word_order: Literal["big", "little"] = "big"
    max_gap: int = Field(16, ge=0)
    max_block: int = Field(100, ge=1, le=125)
    slow_every: int = Field(30, ge=1)
    sunspec: SunSpecSpec | None = None
    registers: list[RegisterSpec]
    controls: dict[str, ControlSpec] = Field(default_factory=dict)


# ------------------------------------------------------------------------ resolved records
@dataclass(frozen=True, slots=True)
class Register:
    """A resolved register (absolute address, concrete type)."""

    name: str
    table: str
    address: int
    type: str
    size: int
    word_order: str
    sf: int | str | None = None      # exponent, or name of a scale-factor register
    scale: float = 1.0
    percent_of: str | None = None
    lookup: Mapping[int, float] | None = None
    unit: str = ""
    access: str = "r"
    group: str = "fast"
    default: float | str | None = None
    comment: str = ""
    manual: str = ""
    hidden: bool = False            # scale factors, headers: not part of decoded values
    model: int | None = None        # SunSpec model the register belongs to

    @property
    def span(self) -> range:
        return range(self.address, self.address + self.size)


@dataclass(frozen=True, slots=True)
class Virtual:
    name: str
    source: str
    lookup: Mapping[int, float]
    unit: str = ""
    comment: str = ""


@dataclass(frozen=True, slots=True)
class Block:
    """One read request: ``count`` registers of ``table`` from ``start``."""

    table: str
    start: int
    count: int


@dataclass(frozen=True, slots=True)
class Control:
    register: str
    revert: str | None
    enable: Mapping[str, float]
