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

    name: power_w        # canonical field from the table in drivers.fields where one applies
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

Modules: :mod:`drivers.mapschema` (the YAML model and the resolved records),
:mod:`drivers.mapcodec` (encode/decode), :mod:`drivers.sunspec_models` (SunSpec model
offsets from pysunspec2). This module resolves a file into a :class:`RegisterMap` and
re-exports the public names of the other two.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from drivers import converters as cv
from drivers import mapcodec
from drivers.mapschema import (  # noqa: F401  (re-exported: the public names of this module)
    TABLES, Block, Control, ControlSpec, Image, MapError, MapSpec, Register, RegisterSpec,
    SunSpecSpec, Virtual,
)
from drivers.protocols import FIELDS, DeviceKind
from drivers.sunspec_models import ModelDef, chain_layout, model_def, point_type

MAPS_DIR = Path(__file__).parent / "maps"


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

    # ------------------------------------------------------- codec (drivers.mapcodec)
    encode = mapcodec.encode
    encode_write = mapcodec.encode_write
    decode = mapcodec.decode
    decode_numeric = mapcodec.decode_numeric
    decode_write = mapcodec.decode_write


# ------------------------------------------------------------------------------ loading
def _resolve(spec: MapSpec) -> RegisterMap:
    regs: dict[str, Register] = {}
    virtuals: dict[str, Virtual] = {}
    layout: list[tuple[int, int]] = []
    if spec.sunspec is not None:
        layout = chain_layout(spec.sunspec.base, spec.sunspec.models)
    by_model: dict[int, tuple[ModelDef, int]] = {mid: (model_def(mid), a) for mid, a in layout}

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
            typ = point_type(p.type)
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
