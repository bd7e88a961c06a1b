"""Register maps: YAML data in ``drivers/maps/<name>.yaml``, validated into :class:`RegisterMap`.

YAML schema (one file per device model)
---------------------------------------
Top level::

    name: sdm630                  # must equal the file name
    kind: meter                   # pv | battery | ev_charger | meter
    manual: "Eastron SDM630 Modbus protocol v1.5"   # default source of every register
    word_order: big               # default for 32-bit types: big | little
    max_gap: 16                   # block reads may span gaps up to this many registers
    max_block: 100                # registers per read request (Modbus limit 125)
    sunspec:                      # only for SunSpec devices
      base: 40000                 # address of the "SunS" marker
      models: [1, 103, 120, 123]  # model chain in device order (definitions from pysunspec2)
      scale_factors: {103.W_SF: 0}  # encoder's preferred SF (raised automatically on overflow)
    registers: [...]              # see below
    controls:                     # how a setpoint is written (used by drivers.device)
      power_limit_w: {value: power_limit_w, revert: power_limit_revert_s,
                      enable: {power_limit_enabled: 1}}

Each register::

    name: power_w        # canonical field from drivers.protocols.FIELDS where one applies
    point: 103.W         # SunSpec: model.point; address/type/sf/access come from the model
    address: 0x0034      # plain maps: register address (0-based protocol address)
    table: input         # holding | input            (SunSpec: holding)
    type: float32        # see drivers.converters     (SunSpec: from the model)
    size: 8              # words, strings only
    word_order: big      # override of the map default
    sf: -1 | 103.W_SF    # fixed power-of-ten exponent or SunSpec scale-factor point
    scale: 0.01          # extra multiplier after sf (e.g. % -> fraction, kWh -> Wh)
    percent_of: rating_w # value is a percentage of another decoded register
    lookup: {0x41: 1}    # raw -> value table (enumerations)
    source: state        # virtual register computed from another one through ``lookup``
    unit: W
    access: r | rw
    group: fast | slow   # slow: nameplate and counters read every ``slow_every`` polls
    default: 0           # value the encoder uses when none is given
    comment: "one line"
    manual: "..."        # overrides the map's manual

Decoded value = lookup[raw] or raw × 10**sf × scale (× ref/100 for ``percent_of``);
sentinels ("not implemented") decode to ``None``.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from drivers import converters as cv
from drivers.protocols import FIELDS, DeviceKind
from drivers.sunspec_models import END_ID, SUNS_MARKER, ModelDef, model_def

MAPS_DIR = Path(__file__).parent / "maps"
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


# ------------------------------------------------------------------------ resolved map
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


@dataclass
class RegisterMap:
    """A device model's registers; build with :func:`load_map`.

    ``registers`` holds named registers and hidden scale-factor registers by name;
    ``layout`` (SunSpec only) is the model chain as ``[(model_id, id_address)]``.
    """

    name: str
    kind: DeviceKind
    manual: str
    registers: dict[str, Register]
    virtuals: dict[str, Virtual]
    controls: dict[str, Control]
    max_gap: int = 16
    max_block: int = 100
    slow_every: int = 30
    sunspec_base: int | None = None
    layout: list[tuple[int, int]] = field(default_factory=list)
    sf_preferred: dict[str, int] = field(default_factory=dict)
    _plan: tuple | None = field(default=None, repr=False, compare=False)

    # ------------------------------------------------------------------ introspection
    @property
    def is_sunspec(self) -> bool:
        return self.sunspec_base is not None

    @property
    def fields(self) -> list[str]:
        """Names of decoded values (registers then virtual registers)."""
        return [r.name for r in self.registers.values() if not r.hidden] + list(self.virtuals)

    def writable(self) -> list[tuple[str, int]]:
        """``(table, address)`` of every register a client may write."""
        return [(r.table, a) for r in self.registers.values() if r.access == "rw" for a in r.span]

    def blocks(self, groups: Iterable[str] = ("fast", "slow")) -> list[Block]:
        """Contiguous read requests covering the named registers of ``groups`` and their SFs.

        Registers closer than ``max_gap`` are merged into one request of at most
        ``max_block`` registers.
        """
        groups = set(groups)
        needed: dict[str, set[int]] = {t: set() for t in TABLES}
        for r in self.registers.values():
            if r.hidden or r.group not in groups:
                continue
            needed[r.table].update(r.span)
            if isinstance(r.sf, str):
                s = self.registers[r.sf]
                needed[s.table].update(s.span)
        out: list[Block] = []
        for table, addrs in needed.items():
            start = end = None
            for a in sorted(addrs):
                if start is not None and a - end - 1 <= self.max_gap and a - start < self.max_block:
                    end = a
                    continue
                if start is not None:
                    out.append(Block(table, start, end - start + 1))
                start = end = a
            if start is not None:
                out.append(Block(table, start, end - start + 1))
        return out

    # ---------------------------------------------------------------------- encoding
    def _sf_for_encode(self, values: Mapping[str, Any]) -> dict[str, int]:
        chosen: dict[str, int] = {}
        users: dict[str, list[tuple[Register, float]]] = {}
        for r in self.registers.values():
            if isinstance(r.sf, str):
                v = self._raw_before_sf(r, values)
                if v is not None:
                    users.setdefault(r.sf, []).append((r, v))
        for name, reg in self.registers.items():
            if reg.type != "sunssf":
                continue
            sf = self.sf_preferred.get(name, 0)
            for r, v in users.get(name, []):
                lo, hi = cv.value_range(r.type)
                while sf < 10 and not lo <= round(v / 10.0 ** sf) <= hi:
                    sf += 1
            chosen[name] = sf
        return chosen

    def _raw_before_sf(self, r: Register, values: Mapping[str, Any]) -> float | None:
        """Engineering value -> number before SunSpec scaling (undo percent_of, scale)."""
        v = values.get(r.name, r.default)
        if v is None or isinstance(v, str):
            return None
        v = float(v)
        if not math.isfinite(v):
            return None
        if r.percent_of is not None:
            ref = values.get(r.percent_of)
            if ref is None:
                ref = self.registers[r.percent_of].default if r.percent_of in self.registers else None
            if not ref:
                return None
            v = v / float(ref) * 100.0
        return v / r.scale

    def _encode_one(self, r: Register, values: Mapping[str, Any], sfs: Mapping[str, int]
                    ) -> list[int]:
        v = values.get(r.name, r.default)
        if r.type == "string":
            return cv.to_registers(v, "string", size=r.size)
        if v is not None and r.lookup is not None:
            inverse = {val: raw for raw, val in r.lookup.items()}
            if float(v) not in inverse:
                raise ValueError(f"{r.name}: {v} is not in its lookup table")
            return cv.to_registers(inverse[float(v)], r.type, r.word_order, r.size)
        raw = self._raw_before_sf(r, values)
        if raw is None:
            return cv.to_registers(None, r.type, r.word_order, r.size)
        sf = sfs[r.sf] if isinstance(r.sf, str) else (r.sf or 0)
        if r.type == "float32":
            return cv.to_registers(raw * 10.0 ** -sf, r.type, r.word_order)
        return cv.to_registers(cv.unapply_sf(raw, sf), r.type, r.word_order, r.size)

    def encode(self, values: Mapping[str, float | str | None]) -> Image:
        """Full register image ``{(table, address): word}`` for ``values`` (engineering units).

        SunSpec maps produce the whole chain: "SunS" marker, every model's ID/L header and
        all its points (sentinel where no value is given), the scale-factor registers and
        the 0xFFFF end marker. Plain maps produce every declared register (sentinel, or
        ``default``, where no value is given). Raises ``OverflowError`` for a value that
        its register cannot hold.
        """
        img: Image = {}
        if self.is_sunspec:
            base = self.sunspec_base
            img[("holding", base)], img[("holding", base + 1)] = SUNS_MARKER
            for mid, addr in self.layout:
                m = model_def(mid)
                img[("holding", addr)] = mid
                img[("holding", addr + 1)] = m.length
                for p in m.points.values():
                    if p.name in ("ID", "L"):
                        continue
                    words = _empty_point(p.type, p.size)
                    for i, w in enumerate(words):
                        img[("holding", addr + p.offset + i)] = w
            end = self.layout[-1][1] + model_def(self.layout[-1][0]).size if self.layout else base + 2
            img[("holding", end)] = END_ID
            img[("holding", end + 1)] = 0
        sfs = self._sf_for_encode(values)
        for r in self.registers.values():
            if r.type == "sunssf":
                words = cv.to_registers(sfs[r.name], "sunssf")
            else:
                words = self._encode_one(r, values, sfs)
            for a, w in zip(r.span, words):
                img[(r.table, a)] = w
        return img

    def encode_write(self, values: Mapping[str, float], image: Mapping[tuple[str, int], int],
                     context: Mapping[str, Any] | None = None) -> list[tuple[str, int, list[int]]]:
        """Write requests ``[(table, address, words)]`` setting writable registers to ``values``.

        ``image`` is the device's current image (for its scale factors); ``context`` holds
        decoded values needed by ``percent_of`` registers (e.g. the rating).
        """
        ctx = dict(context or {})
        ctx.update(values)
        sfs = {n: _as_int(cv.from_registers([image.get((r.table, r.address), 0x8000)], "sunssf"))
               for n, r in self.registers.items() if r.type == "sunssf"}
        out = []
        for name in values:
            r = self.registers.get(name)
            if r is None or r.access != "rw":
                raise ValueError(f"{self.name}: {name!r} is not a writable register")
            if isinstance(r.sf, str) and sfs.get(r.sf) is None:
                raise ValueError(f"{self.name}: scale factor {r.sf} of {name} is unknown")
            out.append((r.table, r.address, self._encode_one(r, ctx, sfs)))
        return out

    # ---------------------------------------------------------------------- decoding
    def _decode_reg(self, r: Register, get, done: dict[str, Any]) -> Any:
        words = [get(r.table, a) for a in r.span]
        if any(w is None for w in words):
            return None
        raw = cv.from_registers(words, r.type, r.word_order)
        if raw is None or r.type == "string":
            return raw
        if r.lookup is not None:
            return r.lookup.get(raw)
        if isinstance(r.sf, str):
            s = self.registers[r.sf]
            sw = get(s.table, s.address)
            sf = None if sw is None else cv.from_registers([sw], "sunssf")
            value = cv.apply_sf(raw, sf)
        else:
            value = cv.apply_sf(raw, r.sf or 0)
        if value is None:
            return None
        if r.scale != 1.0:
            value *= r.scale
        if r.percent_of is not None:
            ref = done.get(r.percent_of)
            value = None if ref is None else value / 100.0 * ref
        return value

    def decode(self, image: Mapping[tuple[str, int], int]) -> dict[str, float | str | None]:
        """Decode every named register from ``image``; absent or sentinel values give ``None``."""
        get = lambda t, a: image.get((t, a))  # noqa: E731
        out: dict[str, Any] = {}
        later = []
        for r in self.registers.values():
            if r.hidden:
                continue
            if r.percent_of is not None:
                later.append(r)
                continue
            out[r.name] = self._decode_reg(r, get, out)
        for r in later:
            out[r.name] = self._decode_reg(r, get, out)
        for v in self.virtuals.values():
            src = out.get(v.source)
            out[v.name] = None if src is None else v.lookup.get(int(src))
        return out

    def decode_numeric(self, image: Mapping[tuple[str, int], int]) -> dict[str, float]:
        """Like :meth:`decode` but only numeric values, ``None`` and strings dropped.

        Same results as :meth:`decode`; a precompiled plan with inline 16-bit fast paths
        keeps it cheap enough to run on every poll of thousands of devices.
        """
        plan = self._plan
        if plan is None:
            plan = self._plan = self._compile()
        out: dict[str, float] = {}
        g = image.get
        for name, kind, keys, typ, order, sf, scale, lookup in plan[0]:
            if kind == 1:  # single 16-bit word
                w = g(keys)
                if w is None:
                    continue
                if typ == 0:   # unsigned with 0xFFFF sentinel
                    if w == 0xFFFF:
                        continue
                    raw = w
                elif typ == 1:  # signed with 0x8000 sentinel
                    if w == 0x8000:
                        continue
                    raw = w - 0x10000 if w & 0x8000 else w
                else:
                    raw = w
            elif kind == 2:  # 32-bit integer: keys are (high, low) word addresses
                hi, lo = g(keys[0]), g(keys[1])
                if hi is None or lo is None:
                    continue
                raw = (hi << 16) | lo
                if raw == typ:  # the type's sentinel (-1 when it has none)
                    continue
                if order and raw & 0x80000000:  # ``order`` flags a signed type here
                    raw -= 0x100000000
            else:
                words = [g(k) for k in keys]
                if None in words:
                    continue
                raw = cv.from_registers(words, typ, order)
                if raw is None:
                    continue
            if lookup is not None:
                v = lookup.get(raw)
                if v is not None:
                    out[name] = v
                continue
            if sf.__class__ is tuple:
                e = g(sf)
                if e is None or e == 0x8000:
                    continue
                e = e - 0x10000 if e & 0x8000 else e
            else:
                e = sf
            v = raw / 10 ** -e if e < 0 else raw * 10 ** e
            out[name] = float(v * scale)
        for r in plan[1]:
            if r.percent_of in out:
                v = self._decode_reg(r, lambda t, a: g((t, a)), out)
                if v is not None:
                    out[r.name] = float(v)
        for v in self.virtuals.values():
            src = out.get(v.source)
            if src is not None and int(src) in v.lookup:
                out[v.name] = float(v.lookup[int(src)])
        return out

    def _compile(self) -> tuple[list[tuple], list[Register]]:
        simple, later = [], []
        for r in self.registers.values():
            if r.hidden or r.type in ("string", "pad"):
                continue
            if r.percent_of is not None:
                later.append(r)
                continue
            sf = (self.registers[r.sf].table, self.registers[r.sf].address) \
                if isinstance(r.sf, str) else (r.sf or 0)
            lookup = dict(r.lookup) if r.lookup is not None else None
            if r.size == 1:
                typ = {"uint16": 0, "enum16": 0, "bitfield16": 0, "int16": 1, "sunssf": 1}.get(r.type, 2)
                simple.append((r.name, 1, (r.table, r.address), typ, r.word_order, sf, r.scale, lookup))
            elif r.type in ("int32", "uint32", "acc32", "enum32", "bitfield32"):
                hi, lo = (r.address, r.address + 1) if r.word_order == "big" \
                    else (r.address + 1, r.address)
                simple.append((r.name, 2, ((r.table, hi), (r.table, lo)),
                               cv.SENTINELS.get(r.type, -1), r.type == "int32", sf, r.scale, lookup))
            else:
                keys = tuple((r.table, a) for a in r.span)
                simple.append((r.name, 3, keys, r.type, r.word_order, sf, r.scale, lookup))
        return simple, later

    def decode_write(self, table: str, address: int, words: list[int],
                     image: Mapping[tuple[str, int], int] | None = None) -> dict[str, float]:
        """Named values set by a client write of ``words`` at ``address`` in ``table``.

        Only registers lying wholly inside the write are returned. Scale factors and
        ``percent_of`` references come from ``image`` (the device's image before the write),
        else from the map's preferred scale factors.
        """
        base = dict(image) if image is not None else self.encode({})
        written = {(table, address + i): w & 0xFFFF for i, w in enumerate(words)}
        merged = {**base, **written}
        full = self.decode(merged)
        end = address + len(words)
        return {r.name: full[r.name] for r in self.registers.values()
                if not r.hidden and r.table == table and r.address >= address
                and r.address + r.size <= end and full.get(r.name) is not None}


_ALIASES = {"count": "uint16", "ipaddr": "uint32"}


def _concrete(t: str) -> str | None:
    """Converter type for a SunSpec point type (``None``: no numeric meaning, e.g. eui48)."""
    t = _ALIASES.get(t, t)
    return t if t in cv.WORDS or t == "string" else None


def _empty_point(t: str, size: int) -> list[int]:
    """Words of a point with no value: its sentinel, or zeros for opaque types."""
    c = _concrete(t)
    if c is None or cv.word_count(c, size) != size:
        return [0] * size
    return cv.to_registers(None, c, size=size)


def _as_int(x: Any) -> int | None:
    return None if x is None else int(x)


# ------------------------------------------------------------------------------ loading
def _resolve(spec: MapSpec) -> RegisterMap:
    regs: dict[str, Register] = {}
    virtuals: dict[str, Virtual] = {}
    layout: list[tuple[int, int]] = []
    by_model: dict[int, tuple[ModelDef, int]] = {}
    if spec.sunspec is not None:
        addr = spec.sunspec.base + 2
        for mid in spec.sunspec.models:
            m = model_def(mid)
            layout.append((mid, addr))
            by_model[mid] = (m, addr)
            addr += m.size

    def sunspec_sf(mid: int, sf: str | int | None) -> str | int | None:
        if not isinstance(sf, str):
            return sf
        m, maddr = by_model[mid]
        key = f"{mid}.{sf}"
        if key not in regs:
            p = m.points[sf]
            regs[key] = Register(key, "holding", maddr + p.offset, "sunssf", 1, "big",
                                 comment=f"scale factor {sf} of model {mid}",
                                 manual=spec.manual, hidden=True, model=mid)
        return key

    for rs in spec.registers:
        if rs.name in regs or rs.name in virtuals:
            raise MapError(f"{spec.name}: duplicate register {rs.name!r}")
        if rs.source is not None:
            virtuals[rs.name] = Virtual(rs.name, rs.source, rs.lookup or {}, rs.unit, rs.comment)
            continue
        if rs.point is not None:
            if spec.sunspec is None:
                raise MapError(f"{spec.name}: {rs.name} uses point but the map has no sunspec chain")
            mid_s, _, pname = rs.point.partition(".")
            mid = int(mid_s)
            if mid not in by_model:
                raise MapError(f"{spec.name}: {rs.name}: model {mid} not in the chain")
            m, maddr = by_model[mid]
            if pname not in m.points:
                raise MapError(f"{spec.name}: {rs.name}: model {mid} has no point {pname!r}")
            p = m.points[pname]
            typ = _concrete(p.type)
            if typ is None:
                raise MapError(f"{spec.name}: {rs.name}: point type {p.type!r} is not supported")
            sf = sunspec_sf(mid, rs.sf if rs.sf is not None else p.sf)
            reg = Register(rs.name, "holding", maddr + p.offset, typ, p.size,
                           rs.word_order or "big", sf, rs.scale, rs.percent_of,
                           rs.lookup, rs.unit or p.units, rs.access or p.access, rs.group,
                           rs.default, rs.comment, rs.manual or spec.manual, model=mid)
        else:
            size = cv.word_count(rs.type, rs.size)
            reg = Register(rs.name, rs.table, rs.address, rs.type, size,
                           rs.word_order or spec.word_order, rs.sf, rs.scale, rs.percent_of,
                           rs.lookup, rs.unit, rs.access or "r", rs.group, rs.default,
                           rs.comment, rs.manual or spec.manual)
        regs[rs.name] = reg
    for r in list(regs.values()):
        if isinstance(r.sf, str) and r.sf not in regs:
            raise MapError(f"{spec.name}: {r.name}: unknown scale factor register {r.sf!r}")
        if r.percent_of is not None and r.percent_of not in regs:
            raise MapError(f"{spec.name}: {r.name}: percent_of unknown register {r.percent_of!r}")
    for v in virtuals.values():
        if v.source not in regs:
            raise MapError(f"{spec.name}: {v.name}: source {v.source!r} unknown")
    # overlapping registers would make encode ambiguous
    seen: dict[tuple[str, int], str] = {}
    for r in regs.values():
        for a in r.span:
            other = seen.setdefault((r.table, a), r.name)
            if other != r.name:
                raise MapError(f"{spec.name}: {r.name} overlaps {other} at {r.table} {a}")
    controls = {}
    for cname, c in spec.controls.items():
        for ref in [c.value, *( [c.revert] if c.revert else []), *c.enable]:
            if ref not in regs or regs[ref].access != "rw":
                raise MapError(f"{spec.name}: control {cname}: {ref!r} is not a writable register")
        controls[cname] = Control(c.value, c.revert, dict(c.enable))
    prefs = {}
    if spec.sunspec is not None:
        for key, val in spec.sunspec.scale_factors.items():
            if key not in regs:
                raise MapError(f"{spec.name}: scale_factors names unused SF {key!r}")
            prefs[key] = val
    kind = DeviceKind(spec.kind)
    return RegisterMap(spec.name, kind, spec.manual, regs, virtuals, controls, spec.max_gap,
                       spec.max_block, spec.slow_every,
                       spec.sunspec.base if spec.sunspec else None, layout, prefs)


def parse_map(data: Any, source: str = "<dict>") -> RegisterMap:
    """Validate a mapping (parsed YAML) into a :class:`RegisterMap` or raise :class:`MapError`."""
    try:
        spec = MapSpec.model_validate(data)
    except ValidationError as e:
        raise MapError(f"invalid register map {source}: {e}") from None
    return _resolve(spec)


def available_maps() -> list[str]:
    """Names of the maps shipped in ``drivers/maps``."""
    return sorted(p.stem for p in MAPS_DIR.glob("*.yaml"))


@cache
def load_map(name: str) -> RegisterMap:
    """Load and validate ``drivers/maps/<name>.yaml`` (cached; treat the result as read-only)."""
    path = MAPS_DIR / f"{name}.yaml"
    if not path.is_file():
        raise MapError(f"unknown register map {name!r}; known: {', '.join(available_maps())}")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    m = parse_map(data, str(path))
    if m.name != name:
        raise MapError(f"{path}: name {m.name!r} differs from the file name")
    return m


def canonical_fields(m: RegisterMap) -> list[str]:
    """The map's decoded fields that are canonical for its kind (see ``FIELDS``)."""
    return [f for f in m.fields if f in FIELDS[m.kind]]
