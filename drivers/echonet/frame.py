"""ECHONET Lite frame codec: EHD 0x1081 (specified message format, "format 1").

Layout (big-endian)::

    EHD1 EHD2 | TID(2) | SEOJ(3) | DEOJ(3) | ESV | OPC | OPC × (EPC PDC EDT[PDC])

SetGet (0x6E) and its replies (0x7E, 0x5E) carry two property lists: ``OPCSet`` with the
Set properties, then ``OPCGet`` with the Get properties (:attr:`Frame.get_props`).

Property maps (EPC 0x9D status-change, 0x9E Set, 0x9F Get): the first byte is the number
of properties; below 16 the EPCs follow as a list, from 16 on a 16-byte bitmap follows in
which bit ``j`` of byte ``i`` stands for EPC ``0x80 + i + 0x10 × j``.

:func:`decode` never raises anything but :class:`FrameError`, whose ``reason`` is one of
:data:`REJECT_REASONS` so that receivers count rejected frames per reason.
"""
from __future__ import annotations

import enum
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

EHD = b"\x10\x81"
HEADER_LEN = 12  # EHD(2) TID(2) SEOJ(3) DEOJ(3) ESV(1) OPC(1)
#: Why a frame was rejected (the keys receivers count under).
REJECT_REASONS = ("truncated", "ehd", "esv", "opc", "pdc", "trailing")


class Esv(enum.IntEnum):
    """ECHONET Lite service codes."""

    SETI = 0x60
    SETC = 0x61
    GET = 0x62
    INF_REQ = 0x63
    SETGET = 0x6E
    SET_RES = 0x71
    GET_RES = 0x72
    INF = 0x73
    INFC = 0x74
    INFC_RES = 0x7A
    SETGET_RES = 0x7E
    SETI_SNA = 0x50
    SETC_SNA = 0x51
    GET_SNA = 0x52
    INF_SNA = 0x53
    SETGET_SNA = 0x5E


#: ESVs with two property lists (Set then Get).
TWO_LISTS = frozenset({Esv.SETGET, Esv.SETGET_RES, Esv.SETGET_SNA})
#: "Service not available" replies: at least one property could not be served.
SNA = frozenset({Esv.SETI_SNA, Esv.SETC_SNA, Esv.GET_SNA, Esv.INF_SNA, Esv.SETGET_SNA})
#: Replies a requester matches to its request by TID.
RESPONSES = frozenset({Esv.SET_RES, Esv.GET_RES, Esv.SETGET_RES, Esv.INFC_RES} | SNA)
#: Notifications a device sends on its own (or for INF_REQ).
NOTIFICATIONS = frozenset({Esv.INF, Esv.INFC})


class FrameError(ValueError):
    """A malformed frame; ``reason`` is one of :data:`REJECT_REASONS`."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Property:
    """One property: EPC and its data (empty in a Get request and in a successful Set reply)."""

    epc: int
    edt: bytes = b""


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded frame; EOJs as 24-bit ints (``0x027D01`` = storage battery, instance 1)."""

    tid: int
    seoj: int
    deoj: int
    esv: Esv
    props: tuple[Property, ...] = ()
    get_props: tuple[Property, ...] = field(default=())  # SetGet family only

    def values(self) -> dict[int, bytes]:
        """``{EPC: EDT}`` of the (Set-list) properties."""
        return {p.epc: p.edt for p in self.props}


def _props_bytes(props: Sequence[Property]) -> bytes:
    if len(props) > 255:
        raise ValueError(f"{len(props)} properties do not fit OPC (max 255)")
    out = bytearray([len(props)])
    for p in props:
        if not 0x00 <= p.epc <= 0xFF:
            raise ValueError(f"EPC {p.epc:#x} out of range")
        if len(p.edt) > 255:
            raise ValueError(f"EPC {p.epc:#04x}: EDT of {len(p.edt)} bytes does not fit PDC")
        out += bytes((p.epc, len(p.edt))) + p.edt
    return bytes(out)


def encode(frame: Frame) -> bytes:
    """Bytes of ``frame``; raises ``ValueError`` for a frame that cannot be encoded."""
    if not 0 <= frame.tid <= 0xFFFF:
        raise ValueError(f"TID {frame.tid} out of range")
    for eoj in (frame.seoj, frame.deoj):
        if not 0 <= eoj <= 0xFFFFFF:
            raise ValueError(f"EOJ {eoj:#x} out of range")
    head = EHD + struct.pack(">H", frame.tid) + frame.seoj.to_bytes(3, "big") \
        + frame.deoj.to_bytes(3, "big") + bytes((int(frame.esv),))
    body = _props_bytes(frame.props)
    if frame.esv in TWO_LISTS:
        body += _props_bytes(frame.get_props)
    elif frame.get_props:
        raise ValueError(f"ESV {frame.esv.name} has one property list")
    return head + body


def _read_props(data: bytes, pos: int) -> tuple[tuple[Property, ...], int]:
    if pos >= len(data):
        raise FrameError("truncated", f"no OPC at byte {pos}")
    opc = data[pos]
    pos += 1
    # each property takes at least EPC + PDC: an OPC the payload cannot hold is caught first
    if pos + 2 * opc > len(data):
        raise FrameError("opc", f"OPC {opc} larger than the {len(data) - pos}-byte payload")
    props = []
    for i in range(opc):
        if pos + 2 > len(data):
            raise FrameError("opc", f"property {i + 1} of OPC {opc} missing")
        epc, pdc = data[pos], data[pos + 1]
        pos += 2
        if pos + pdc > len(data):
            raise FrameError("pdc", f"EPC {epc:#04x}: PDC {pdc} past the end ({len(data) - pos} left)")
        props.append(Property(epc, bytes(data[pos:pos + pdc])))
        pos += pdc
    return tuple(props), pos


def decode(data: bytes) -> Frame:
    """Decode one datagram; raises :class:`FrameError` for anything malformed."""
    if len(data) < HEADER_LEN:
        raise FrameError("truncated", f"{len(data)} bytes, a header needs {HEADER_LEN}")
    if data[:2] != EHD:
        raise FrameError("ehd", f"EHD {data[:2].hex()} is not 1081")
    try:
        esv = Esv(data[10])
    except ValueError:
        raise FrameError("esv", f"unknown ESV {data[10]:#04x}") from None
    tid = (data[2] << 8) | data[3]
    seoj = int.from_bytes(data[4:7], "big")
    deoj = int.from_bytes(data[7:10], "big")
    props, pos = _read_props(data, 11)
    get_props: tuple[Property, ...] = ()
    if esv in TWO_LISTS:
        get_props, pos = _read_props(data, pos)
    if pos != len(data):
        raise FrameError("trailing", f"{len(data) - pos} bytes after the last property")
    return Frame(tid, seoj, deoj, esv, props, get_props)


# ------------------------------------------------------------------------- property maps
PROPERTY_MAP_EPCS = (0x9D, 0x9E, 0x9F)


def encode_property_map(epcs: Iterable[int]) -> bytes:
    """A property map's EDT: list form below 16 properties, bitmap form from 16."""
    s = sorted(set(epcs))
    if any(not 0x80 <= e <= 0xFF for e in s):
        raise ValueError("property-map EPCs must lie in 0x80..0xFF")
    if len(s) < 16:
        return bytes([len(s), *s])
    bitmap = bytearray(16)
    for e in s:
        bitmap[(e - 0x80) & 0x0F] |= 1 << ((e - 0x80) >> 4)
    return bytes([len(s)]) + bytes(bitmap)


def decode_property_map(edt: bytes) -> frozenset[int]:
    """EPCs of a property map's EDT; raises :class:`FrameError` (reason ``pdc``) when the
    EDT does not hold what its count announces."""
    if not edt:
        raise FrameError("pdc", "empty property map")
    n = edt[0]
    if n < 16:
        if len(edt) != 1 + n:
            raise FrameError("pdc", f"list-form map of {n} EPCs in {len(edt) - 1} bytes")
        return frozenset(edt[1:])
    if len(edt) != 17:
        raise FrameError("pdc", f"bitmap-form map needs 16 bytes, got {len(edt) - 1}")
    out = frozenset(0x80 + i + 0x10 * j for i in range(16) for j in range(8) if edt[1 + i] >> j & 1)
    if len(out) != n:
        raise FrameError("pdc", f"bitmap announces {n} EPCs but holds {len(out)}")
    return out
