"""ECHONET Lite device objects as data: ``drivers/echonet/objects/<name>.yaml``.

Each YAML file declares one object class (storage battery 0x027D, home PV 0x0279, V2H
0x027E, low-voltage smart meter 0x0288, node profile 0x0EF0): its properties by EPC (name,
EDT size, value type, access, optional canonical telemetry ``field`` with ``scale`` and
``multipliers``), the EPCs polled every time (``poll``) and now and then (``slow``), and a
maker's quirks (:class:`Quirks`). A file may ``extends`` another and add properties and
quirks. :func:`load_object` takes a name from the package or a path to a YAML file (a
site's own maps), so that a maker variant needs no code.

Value types (EDT big-endian): ``uint``/``int`` (unsigned/signed integer of ``size`` bytes),
``enum`` (one code byte, ``values`` name -> code), ``lookup`` (code -> number, ``table``),
``pair`` (two unsigned integers of ``size/2`` bytes: min, max), ``fixed_time`` (smart meter
EA/EB: YYYY MM DD hh mm ss + 4-byte count), ``history`` (E2: day + 48 four-byte counts),
``instance_list`` (count + EOJs), ``raw`` (bytes).
"""
from __future__ import annotations

import functools
import struct
import dataclasses
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

OBJECTS_DIR = Path(__file__).parent / "objects"
TYPES = ("uint", "int", "enum", "lookup", "pair", "fixed_time", "history", "instance_list", "raw")
ACCESS = frozenset({"get", "set", "inf"})
#: Sizes fixed by the value type [bytes].
_FIXED_SIZE = {"enum": 1, "lookup": 1, "fixed_time": 11, "history": 194}
NO_DATA = 0xFFFFFFFE  # "no data" marker of 4-byte smart-meter counts


class ObjectError(ValueError):
    """An invalid object file (the message names the file and the property) or value."""


@dataclass(frozen=True, slots=True)
class PropertySpec:
    """One property of an object class (see the module docstring for the types)."""

    epc: int
    name: str
    type: str
    size: int | None
    access: frozenset[str]
    field: str | None = None
    scale: float = 1.0
    multipliers: tuple[str, ...] = ()
    values: dict[str, int] = dataclasses.field(default_factory=dict)
    table: dict[int, float] = dataclasses.field(default_factory=dict)

    def decode(self, edt: bytes) -> Any:
        """Value of an EDT; raises :class:`ObjectError` when it does not fit the type."""
        t, n = self.type, len(edt)
        if self.size is not None and n != self.size:
            raise ObjectError(f"EPC {self.epc:#04x} {self.name}: {n} bytes, expected {self.size}")
        if t == "uint":
            return int.from_bytes(edt, "big")
        if t == "int":
            return int.from_bytes(edt, "big", signed=True)
        if t == "enum":
            for name, code in self.values.items():
                if code == edt[0]:
                    return name
            raise ObjectError(f"EPC {self.epc:#04x} {self.name}: unknown code {edt[0]:#04x}")
        if t == "lookup":
            if edt[0] not in self.table:
                raise ObjectError(f"EPC {self.epc:#04x} {self.name}: unknown code {edt[0]:#04x}")
            return self.table[edt[0]]
        if t == "pair":
            h = n // 2
            return int.from_bytes(edt[:h], "big"), int.from_bytes(edt[h:], "big")
        if t == "fixed_time":
            y, mo, d, hh, mm, ss, count = struct.unpack(">HBBBBBI", edt)
            try:
                ts = datetime(y, mo, d, hh, mm, ss)
            except ValueError as e:
                raise ObjectError(f"EPC {self.epc:#04x} {self.name}: bad time: {e}") from None
            return ts, None if count == NO_DATA else count
        if t == "history":
            day = int.from_bytes(edt[:2], "big")
            counts = struct.unpack(">48I", edt[2:])
            return day, tuple(None if c == NO_DATA else c for c in counts)
        if t == "instance_list":
            if n < 1 or n != 1 + 3 * edt[0]:
                raise ObjectError(f"EPC {self.epc:#04x} {self.name}: {n} bytes for {edt[:1].hex()} EOJs")
            return tuple(int.from_bytes(edt[1 + 3 * i:4 + 3 * i], "big") for i in range(edt[0]))
        return bytes(edt)

    def encode(self, value: Any) -> bytes:
        """EDT of a value; raises :class:`ObjectError` when it does not fit."""
        t, n = self.type, self.size
        try:
            if t in ("uint", "int"):
                return int(value).to_bytes(n, "big", signed=t == "int")
            if t == "enum":
                code = self.values[value] if isinstance(value, str) else int(value)
                if code not in self.values.values():
                    raise ObjectError(f"EPC {self.epc:#04x} {self.name}: unknown code {code:#04x}")
                return bytes([code])
            if t == "lookup":
                return bytes([next(c for c, v in self.table.items() if v == value)])
            if t == "pair":
                return b"".join(int(v).to_bytes(n // 2, "big") for v in value)
            if t == "fixed_time":
                ts, count = value
                return struct.pack(">HBBBBBI", ts.year, ts.month, ts.day, ts.hour, ts.minute,
                                   ts.second, NO_DATA if count is None else int(count))
            if t == "history":
                day, counts = value
                return int(day).to_bytes(2, "big") + struct.pack(
                    ">48I", *(NO_DATA if c is None else int(c) for c in counts))
            if t == "instance_list":
                return bytes([len(value)]) + b"".join(int(e).to_bytes(3, "big") for e in value)
            return bytes(value)
        except (OverflowError, KeyError, StopIteration, struct.error, TypeError, ValueError) as e:
            if isinstance(e, ObjectError):
                raise
            raise ObjectError(f"EPC {self.epc:#04x} {self.name}: cannot encode {value!r}: {e}") from None


@dataclass(frozen=True, slots=True)
class Quirks:
    """A maker's deviations from the standard, as data.

    Attributes
    ----------
    get_sna : frozenset of int
        EPCs listed in the Get map but answered with Get_SNA.
    external_control : (EPC, code) or None
        A property that must hold ``code`` before the operation mode (DA) is honoured.
    mode_reverts_after_s : float or None
        A commanded mode silently falls back to :attr:`revert_to` after this long [s].
    revert_to : str
        The mode it falls back to.
    """

    get_sna: frozenset[int] = frozenset()
    external_control: tuple[int, int] | None = None
    mode_reverts_after_s: float | None = None
    revert_to: str = "auto"


@dataclass(frozen=True)
class ObjectClass:
    """One ECHONET object class: properties by EPC, poll sets and quirks."""

    name: str
    class_code: int           # 16-bit class group + class code (0x027D)
    kind: str                 # "battery", "pv", "ev_charger", "meter", "node"
    properties: dict[int, PropertySpec]
    poll: tuple[int, ...]
    slow: tuple[int, ...]
    slow_every: int
    quirks: Quirks = Quirks()

    @functools.cached_property
    def by_name(self) -> dict[str, PropertySpec]:
        return {p.name: p for p in self.properties.values()}

    def epc(self, name: str) -> int:
        """EPC of the property ``name`` (``KeyError`` naming it when absent)."""
        try:
            return self.by_name[name].epc
        except KeyError:
            raise KeyError(f"object {self.name} has no property {name!r}") from None

    def maps(self) -> dict[str, frozenset[int]]:
        """EPCs per access (``get``, ``set``, ``inf``) incl. the property maps themselves."""
        base = {"get": {0x9D, 0x9E, 0x9F}, "set": set(), "inf": set()}
        for p in self.properties.values():
            for a in p.access:
                base[a].add(p.epc)
        return {k: frozenset(v) for k, v in base.items()}

    def canonical(self, decoded: dict[str, Any]) -> dict[str, float]:
        """Canonical telemetry fields [SI] of decoded values ``{property name: value}``.

        A field whose property or a multiplier is missing (not read, SNA) is left out.
        """
        out: dict[str, float] = {}
        for p in self.properties.values():
            if p.field is None or decoded.get(p.name) is None:
                continue
            v = float(decoded[p.name]) * p.scale + 0.0  # no -0.0
            for m in p.multipliers:
                if decoded.get(m) is None:
                    break
                v *= float(decoded[m])
            else:
                out[p.field] = v
        return out


def _int(x: Any, where: str) -> int:
    if isinstance(x, bool) or not isinstance(x, int):
        raise ObjectError(f"{where}: expected an integer, got {x!r}")
    return x


def _parse_property(epc: Any, d: Any, where: str) -> PropertySpec:
    epc = _int(epc, where)
    if not 0x80 <= epc <= 0xFF:
        raise ObjectError(f"{where}: EPC {epc:#x} outside 0x80..0xFF")
    where = f"{where} EPC {epc:#04x}"
    if not isinstance(d, dict):
        raise ObjectError(f"{where}: expected a mapping")
    unknown = set(d) - {"name", "size", "type", "access", "field", "scale", "multipliers", "values", "table"}
    if unknown:
        raise ObjectError(f"{where}: unknown keys {sorted(unknown)}")
    t = d.get("type", "raw")
    if t not in TYPES:
        raise ObjectError(f"{where}: type {t!r} not one of {TYPES}")
    size = d.get("size", _FIXED_SIZE.get(t))
    if size is None and t in ("uint", "int", "pair"):
        raise ObjectError(f"{where}: type {t} needs a size")
    if t in _FIXED_SIZE and size != _FIXED_SIZE[t]:
        raise ObjectError(f"{where}: type {t} has size {_FIXED_SIZE[t]}, not {size}")
    access = frozenset(d.get("access", ["get"]))
    if not access <= ACCESS:
        raise ObjectError(f"{where}: access {sorted(access - ACCESS)} not in {sorted(ACCESS)}")
    if "name" not in d:
        raise ObjectError(f"{where}: name missing")
    if t == "enum" and not d.get("values"):
        raise ObjectError(f"{where}: enum needs values")
    if t == "lookup" and not d.get("table"):
        raise ObjectError(f"{where}: lookup needs a table")
    return PropertySpec(epc, str(d["name"]), t, size, access, d.get("field"), float(d.get("scale", 1.0)),
                        tuple(d.get("multipliers", ())), dict(d.get("values", {})),
                        {int(k): float(v) for k, v in d.get("table", {}).items()})


def _resolve(name_or_path: str) -> Path:
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or "/" in name_or_path:
        if not p.is_file():
            raise ObjectError(f"object file {name_or_path} not found")
        return p
    for d in (OBJECTS_DIR, OBJECTS_DIR / "quirks"):
        if (d / f"{name_or_path}.yaml").is_file():
            return d / f"{name_or_path}.yaml"
    raise ObjectError(f"unknown ECHONET object {name_or_path!r}; known: {', '.join(available_objects())}")


def available_objects() -> list[str]:
    """Names of the object files shipped with the package (maker variants included)."""
    return sorted(p.stem for d in (OBJECTS_DIR, OBJECTS_DIR / "quirks") for p in d.glob("*.yaml"))


def _raw(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ObjectError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ObjectError(f"{path}: expected a mapping")
    base = data.pop("extends", None)
    if base is None:
        return data
    parent = _raw(_resolve(base))
    merged = {**parent, **{k: v for k, v in data.items() if k not in ("properties", "quirks")}}
    merged["properties"] = {**parent.get("properties", {}), **data.get("properties", {})}
    merged["quirks"] = {**parent.get("quirks", {}), **data.get("quirks", {})}
    return merged


@functools.cache
def load_object(name_or_path: str) -> ObjectClass:
    """Load and validate an object class by package name (``storage_battery``) or file path."""
    path = _resolve(name_or_path)
    d = _raw(path)
    where = str(path)
    for k in ("class", "eoj", "kind", "properties"):
        if k not in d:
            raise ObjectError(f"{where}: {k} missing")
    props = {p.epc: p for p in (_parse_property(e, v, where) for e, v in d["properties"].items())}
    names = [p.name for p in props.values()]
    if len(set(names)) != len(names):
        raise ObjectError(f"{where}: duplicate property names")
    for p in props.values():
        for m in p.multipliers:
            if m not in names:
                raise ObjectError(f"{where} EPC {p.epc:#04x}: multiplier {m!r} is no property")
    for k in ("poll", "slow"):
        missing = [e for e in d.get(k, []) if e not in props]
        if missing:
            raise ObjectError(f"{where}: {k} lists undeclared EPCs {[hex(e) for e in missing]}")
    q = d.get("quirks") or {}
    unknown = set(q) - {"get_sna", "external_control", "mode_reverts_after_s", "revert_to"}
    if unknown:
        raise ObjectError(f"{where}: unknown quirks {sorted(unknown)}")
    ext = q.get("external_control")
    quirks = Quirks(frozenset(q.get("get_sna", [])),
                    (int(ext["epc"]), int(ext["value"])) if ext else None,
                    float(q["mode_reverts_after_s"]) if q.get("mode_reverts_after_s") else None,
                    str(q.get("revert_to", "auto")))
    if ext and quirks.external_control[0] not in props:
        raise ObjectError(f"{where}: external_control EPC {ext['epc']:#04x} is not declared")
    return ObjectClass(str(d["class"]), _int(d["eoj"], where), str(d["kind"]), props,
                       tuple(d.get("poll", [])), tuple(d.get("slow", [])), int(d.get("slow_every", 10)),
                       quirks)

