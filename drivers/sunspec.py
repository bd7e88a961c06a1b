"""SunSpec discovery: find the "SunS" marker, walk the model chain, fit a map to the device.

A SunSpec device puts "SunS" at 40000, 50000 or 0, then models as ``ID, L, L registers``
until ID 0xFFFF. Our YAML maps name points as ``model.point`` on an assumed chain;
:func:`fit_map` moves every register to the address the device really uses (models may be
at other offsets, in another order, or interleaved with vendor models).
"""
from __future__ import annotations

from dataclasses import replace

from drivers.modbus import DeviceException, ModbusError, ModbusLink
from drivers.registermap import RegisterMap
from drivers.sunspec_models import BASE_ADDRESSES, END_ID, SUNS_MARKER

MAX_MODELS = 64


class SunSpecError(ModbusError):
    """No SunSpec marker, a broken chain, or a model the map needs is missing."""


async def discover(link: ModbusLink, unit: int, timeout_s: float | None = None
                   ) -> tuple[int, list[tuple[int, int, int]]]:
    """``(base, [(model_id, id_address, length)])`` of the device's SunSpec chain."""
    for base in BASE_ADDRESSES:
        try:
            marker = await link.read("holding", base, 2, unit, timeout_s)
        except DeviceException:
            continue  # illegal address here: try the next base
        if tuple(marker) != SUNS_MARKER:
            continue
        chain = []
        addr = base + 2
        for _ in range(MAX_MODELS):
            mid, length = await link.read("holding", addr, 2, unit, timeout_s)
            if mid == END_ID:
                return base, chain
            chain.append((mid, addr, length))
            addr += 2 + length
        raise SunSpecError(f"unit {unit}: no end marker after {MAX_MODELS} models")
    raise SunSpecError(f"unit {unit}: no SunS marker at {', '.join(map(str, BASE_ADDRESSES))}")


def fit_map(rmap: RegisterMap, base: int, chain: list[tuple[int, int, int]]) -> RegisterMap:
    """``rmap`` with each register moved to its model's address in the discovered ``chain``.

    The first instance of each model id is used. Raises :class:`SunSpecError` if a model
    the map reads is absent or shorter than the map expects.
    """
    found: dict[int, tuple[int, int]] = {}
    for mid, addr, length in chain:
        found.setdefault(mid, (addr, length))
    assumed = dict(rmap.layout)
    regs = {}
    for name, r in rmap.registers.items():
        if r.model is None:
            regs[name] = r
            continue
        if r.model not in found:
            raise SunSpecError(f"{rmap.name}: device has no model {r.model} (needed by {name})")
        addr, length = found[r.model]
        offset = r.address - assumed[r.model]
        if offset + r.size > length + 2:
            raise SunSpecError(f"{rmap.name}: model {r.model} too short for {name}")
        regs[name] = replace(r, address=addr + offset)
    layout = [(mid, addr) for mid, addr, _ in chain]
    return replace(rmap, registers=regs, layout=layout, sunspec_base=base, _plan=None)


def same_layout(rmap: RegisterMap, base: int, chain: list[tuple[int, int, int]]) -> bool:
    return rmap.sunspec_base == base and rmap.layout == [(m, a) for m, a, _ in chain]
