"""Emulated ECHONET Lite nodes: one UDP socket per home on its own loopback address, port 3610.

An :class:`EmulatedNode` serves the node profile (0x0EF001) and its device objects
(:class:`EmulatedObject`, built from the same YAML object files the driver reads) and answers
Get, SetC, SetI, INF_REQ and SetGet as the standard says: a property it cannot serve makes the
reply the SNA variant (Get_SNA with that property's PDC 0, SetC_SNA with the refused
property's data echoed). Replies go to the request's source address. Malformed frames are
counted per reason in :attr:`EmulatedNode.stats` and dropped.

Faults (:meth:`EmulatedNode.set_fault`): ``offline`` (no reply), ``slow`` (reply after
``slow_delay_s``), and per object (:class:`EmulatedObject`): ``sna`` (EPCs answered with
Get_SNA), ``frozen`` (values stop updating), :meth:`EmulatedObject.revert_mode` (the mode falls
back silently), and :meth:`EmulatedNode.inf_burst` (a burst of INF notifications).
An object's values come from its ``source`` callable (``() -> {property name: value}``, the
physics) whenever it is asked; Sets go to its ``on_set`` callable.
"""
from __future__ import annotations

import asyncio
import logging
import socket
from collections import Counter
from collections.abc import Callable
from typing import Any

from drivers.echonet.frame import (
    Esv, Frame, FrameError, Property, decode, encode, encode_property_map,
)
from drivers.echonet.objects import ObjectClass, ObjectError, load_object

log = logging.getLogger(__name__)

PORT = 3610
NODE_PROFILE_EOJ = 0x0EF001
MAKER_CODE = b"\x00\x00\x77"  # an experimental maker code (the emulator's own)


class EmulatedObject:
    """One device object of a node (see the module docstring)."""

    def __init__(self, obj: ObjectClass | str, instance: int = 1, *,
                 source: Callable[[], dict[str, Any]] | None = None,
                 on_set: Callable[[str, Any], bool] | None = None,
                 values: dict[str, Any] | None = None) -> None:
        self.obj = load_object(obj) if isinstance(obj, str) else obj
        self.eoj = (self.obj.class_code << 8) | instance
        self.source, self.on_set = source, on_set
        self.values: dict[str, Any] = dict(values or {})   # property name -> value
        self.sna: set[int] = set(self.obj.quirks.get_sna)   # EPCs answered without data
        self.frozen = False
        self.locked_mode: str | None = None  # fault: stuck in this mode, DA Sets refused
        self.extra_get: set[int] = set()  # EPCs added to the Get map at run time (map-change fault)
        self.sets = 0

    def maps(self) -> dict[str, frozenset[int]]:
        m = self.obj.maps()
        return {**m, "get": m["get"] | self.extra_get}

    def refresh(self) -> None:
        if self.source is not None and not self.frozen:
            self.values.update(self.source())

    def get(self, epc: int) -> bytes | None:
        """EDT of ``epc`` now, or None (SNA)."""
        maps = self.maps()
        if epc not in maps["get"] or epc in self.sna:
            return None
        if epc == 0x9D:
            return encode_property_map(maps["inf"])
        if epc == 0x9E:
            return encode_property_map(maps["set"])
        if epc == 0x9F:
            return encode_property_map(maps["get"])
        spec = self.obj.properties.get(epc)
        if spec is None or self.values.get(spec.name) is None:
            return None
        try:
            return spec.encode(self.values[spec.name])
        except ObjectError:
            log.debug("emulator: cannot encode %s=%r", spec.name, self.values[spec.name])
            return None

    def set(self, epc: int, edt: bytes) -> bool:
        """Apply a Set; False = refused (not settable, bad data, or the device said no)."""
        spec = self.obj.properties.get(epc)
        if spec is None or "set" not in spec.access:
            return False
        try:
            value = spec.decode(edt)
        except ObjectError:
            return False
        if spec.name == "operation_mode" and self.locked_mode is not None:
            return False  # stuck (fault): the unit keeps its own mode and refuses commands
        ext = self.obj.quirks.external_control
        if spec.name == "operation_mode" and ext is not None:
            ext_spec = self.obj.properties[ext[0]]
            if self.values.get(ext_spec.name) != ext_spec.decode(bytes([ext[1]])):
                return False  # the maker ignores DA until external control is granted
        if self.on_set is not None and not self.on_set(spec.name, value):
            return False
        self.values[spec.name] = value
        self.sets += 1
        return True

    def lock_mode(self, mode: str | None) -> None:
        """Fault: fall back to ``mode`` and refuse every mode command (None: release)."""
        if mode is not None:
            self.revert_mode(mode)
        self.locked_mode = mode

    def revert_mode(self, to: str | None = None) -> None:
        """Silently fall back from the commanded mode (no INF, as the quirky makers do)."""
        mode = to or self.obj.quirks.revert_to
        if self.on_set is not None:
            self.on_set("operation_mode", mode)
        self.values["operation_mode"] = mode


class _Proto(asyncio.DatagramProtocol):
    def __init__(self, node: "EmulatedNode") -> None:
        self.node = node

    def datagram_received(self, data: bytes, addr) -> None:
        self.node._received(data, addr)


class EmulatedNode:
    """One home's ECHONET node on ``host:port`` (see the module docstring)."""

    def __init__(self, host: str, objects: list[EmulatedObject], port: int = PORT, *,
                 slow_delay_s: float = 3.0, uid: bytes | None = None) -> None:
        self.host, self.port = host, port
        self.objects = {o.eoj: o for o in objects}
        self.slow_delay_s = slow_delay_s
        self.fault: str | None = None
        self.stats: Counter[str] = Counter()
        self.transport: asyncio.DatagramTransport | None = None
        self.peer: tuple[str, int] | None = None  # last requester: where INFs go
        ident = uid or socket.inet_aton(host).ljust(13, b"\x00")[:13]
        eojs = [o.eoj for o in objects]
        classes = sorted({e >> 8 for e in eojs})
        self.profile = EmulatedObject("node_profile", 1, values={
            "operation_status": "on", "version": b"\x01\x0d\x01\x00",
            "identification": b"\xfe" + MAKER_CODE + ident, "manufacturer_code": MAKER_CODE,
            "product_code": b"VPP-EMU-HEMS", "instance_count": len(eojs), "instance_list": tuple(eojs),
            "class_list": bytes([len(classes)]) + b"".join(c.to_bytes(2, "big") for c in classes)})
        self.objects[NODE_PROFILE_EOJ] = self.profile
        for o in objects:
            o.values.setdefault("manufacturer_code", MAKER_CODE)

    async def start(self, sock: socket.socket | None = None) -> None:
        """Serve on ``host:port`` (or on an already bound UDP ``sock``)."""
        loop = asyncio.get_running_loop()
        if sock is not None:
            self.transport, _ = await loop.create_datagram_endpoint(lambda: _Proto(self), sock=sock)
        else:
            self.transport, _ = await loop.create_datagram_endpoint(lambda: _Proto(self),
                                                                    local_addr=(self.host, self.port))

    def stop(self) -> None:
        if self.transport is not None:
            self.transport.close()
            self.transport = None

    def set_fault(self, fault: str | None) -> None:
        """``offline`` (never answer), ``slow`` (answer after ``slow_delay_s``) or None."""
        if fault not in (None, "offline", "slow"):
            raise ValueError(f"unknown node fault {fault!r}; known: offline, slow")
        self.fault = fault

    def object(self, eoj: int) -> EmulatedObject:
        return self.objects[eoj]

    # -------------------------------------------------------------------------- serving
    def _received(self, data: bytes, addr) -> None:
        self.stats["rx"] += 1
        try:
            f = decode(data)
        except FrameError as e:
            self.stats[f"malformed:{e.reason}"] += 1
            return
        if self.fault == "offline":
            self.stats["dropped"] += 1
            return
        try:
            reply = self._handle(f)
        except Exception:  # noqa: BLE001 - a bad request must not kill the node
            log.exception("emulated node %s: request failed", self.host)
            self.stats["errors"] += 1
            return
        self.peer = addr
        if reply is None or self.transport is None:
            return
        raw = encode(reply)
        if self.fault == "slow":
            asyncio.get_running_loop().call_later(self.slow_delay_s, self._send, raw, addr)
        else:
            self._send(raw, addr)

    def _send(self, raw: bytes, addr) -> None:
        if self.transport is not None:
            self.transport.sendto(raw, addr)
            self.stats["tx"] += 1

    def _target(self, deoj: int) -> EmulatedObject | None:
        if deoj == 0x0EF000:  # "all node profiles"
            deoj = NODE_PROFILE_EOJ
        return self.objects.get(deoj)

    def _gets(self, o: EmulatedObject, props) -> tuple[tuple[Property, ...], bool]:
        o.refresh()
        out, ok = [], True
        for p in props:
            edt = o.get(p.epc)
            ok &= edt is not None
            out.append(Property(p.epc, edt or b""))
        self.stats["gets"] += len(out)
        return tuple(out), ok

    def _sets(self, o: EmulatedObject, props) -> tuple[tuple[Property, ...], bool]:
        out, ok = [], True
        for p in props:
            accepted = o.set(p.epc, p.edt)
            ok &= accepted
            out.append(Property(p.epc, b"" if accepted else p.edt))
        self.stats["sets"] += len(out)
        return tuple(out), ok

    def _handle(self, f: Frame) -> Frame | None:
        o = self._target(f.deoj)
        if o is None:
            self.stats["unknown_object"] += 1
            return None  # the standard says: discard
        reply = lambda esv, props, get_props=(): Frame(f.tid, o.eoj, f.seoj, esv, props, get_props)  # noqa: E731
        if f.esv is Esv.GET:
            props, ok = self._gets(o, f.props)
            return reply(Esv.GET_RES if ok else Esv.GET_SNA, props)
        if f.esv is Esv.INF_REQ:
            props, ok = self._gets(o, f.props)
            return reply(Esv.INF if ok else Esv.INF_SNA, props)
        if f.esv in (Esv.SETC, Esv.SETI):
            props, ok = self._sets(o, f.props)
            if f.esv is Esv.SETI:
                return None if ok else reply(Esv.SETI_SNA, props)
            return reply(Esv.SET_RES if ok else Esv.SETC_SNA, props)
        if f.esv is Esv.SETGET:
            sets, ok1 = self._sets(o, f.props)
            gets, ok2 = self._gets(o, f.get_props)
            return reply(Esv.SETGET_RES if ok1 and ok2 else Esv.SETGET_SNA, sets, gets)
        self.stats["ignored"] += 1  # replies, INF, INFC_Res sent to us
        return None

    def notify(self, eoj: int, epcs: list[int], to: tuple[str, int] | None = None) -> bool:
        """Send one INF of ``epcs`` of object ``eoj`` to ``to`` (default: the last requester)."""
        to = to or self.peer
        o = self.objects[eoj]
        if to is None or self.transport is None:
            return False
        o.refresh()
        props = tuple(Property(e, o.get(e) or b"") for e in epcs)
        self._send(encode(Frame(0, o.eoj, 0x05FF01, Esv.INF, props)), to)
        return True

    def inf_burst(self, eoj: int, count: int, to: tuple[str, int] | None = None) -> int:
        """Fault: ``count`` INFs of the object's polled EPCs at once; returns how many were sent."""
        o = self.objects[eoj]
        epcs = [e for e in o.obj.poll if e in o.maps()["get"]]
        return sum(self.notify(eoj, epcs, to) for _ in range(count))
