"""ECHONET Lite over UDP: one socket for the whole fleet, one requester per home node.

:class:`EchonetSocket` owns one UDP endpoint and hands each datagram to the
:class:`NodeRequester` of its source address. Whatever cannot be used is counted in
:attr:`EchonetSocket.stats` and dropped, never raised: malformed frames (``malformed:<reason>``,
see :data:`drivers.echonet.frame.REJECT_REASONS`), datagrams from an address no requester
owns (``unexpected_source``), replies whose TID matches no outstanding request
(``wrong_tid``). Notifications (INF, INFC) go to the requester's ``on_notify`` callback; an
INFC is acknowledged with INFC_Res as the standard requires.

At most ``max_inflight`` requests of the whole fleet are on the wire at once (a town's worth
of simultaneous Gets would otherwise overrun the receive buffers and time out together; a
request's timeout starts when it is sent). A requester serialises its node's requests (a home
gateway answers one at a time), matches
replies by TID and by the object addressed, and retries a request that got no reply after
``timeout_s`` up to ``retries`` times, waiting ``backoff_s × 2^attempt`` in between.
"""
from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping

from drivers.echonet.frame import NOTIFICATIONS, RESPONSES, SNA, Esv, Frame, FrameError, Property, decode, encode

log = logging.getLogger(__name__)

PORT = 3610
#: Our own object: a controller (class group 0x05, class 0xFF), instance 1.
CONTROLLER_EOJ = 0x05FF01


class EchonetError(Exception):
    """A request failed (base class)."""


class EchonetTimeout(EchonetError):
    """No matching reply after every retry."""


NotifyCallback = Callable[[Frame], None]


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, owner: "EchonetSocket") -> None:
        self.owner = owner

    def datagram_received(self, data: bytes, addr) -> None:
        self.owner._received(data, (addr[0], addr[1]))

    def error_received(self, exc: Exception) -> None:  # ICMP port unreachable etc.
        self.owner.stats["socket_error"] += 1


class EchonetSocket:
    """One UDP endpoint shared by every :class:`NodeRequester` (see the module docstring)."""

    def __init__(self, max_inflight: int = 64) -> None:
        self.stats: Counter[str] = Counter()
        self.max_inflight = max_inflight
        self._inflight: asyncio.Semaphore | None = None
        self.transport: asyncio.DatagramTransport | None = None
        self._nodes: dict[tuple[str, int], NodeRequester] = {}

    async def open(self, host: str = "0.0.0.0", port: int = 0) -> tuple[str, int]:
        """Bind (port 0: any free port); returns the bound address."""
        loop = asyncio.get_running_loop()
        self._inflight = asyncio.Semaphore(self.max_inflight)
        self.transport, _ = await loop.create_datagram_endpoint(lambda: _Protocol(self), local_addr=(host, port))
        return self.transport.get_extra_info("sockname")[:2]

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
            self.transport = None
        for n in self._nodes.values():
            n._fail_pending(EchonetError("socket closed"))

    def requester(self, host: str, port: int = PORT, **kw) -> "NodeRequester":
        """The requester of node ``host:port`` (created on first use)."""
        key = (host, port)
        if key not in self._nodes:
            self._nodes[key] = NodeRequester(self, host, port, **kw)
        return self._nodes[key]

    def send(self, frame: Frame, addr: tuple[str, int]) -> None:
        if self.transport is None:
            raise EchonetError("socket not open")
        self.transport.sendto(encode(frame), addr)
        self.stats["tx"] += 1

    def _received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.stats["rx"] += 1
        node = self._nodes.get(addr)
        if node is None:
            self.stats["unexpected_source"] += 1
            return
        try:
            frame = decode(data)
        except FrameError as e:
            self.stats[f"malformed:{e.reason}"] += 1
            node.stats[f"malformed:{e.reason}"] += 1
            return
        try:
            node._on_frame(frame)
        except Exception:  # noqa: BLE001 - a consumer's bug must not kill the socket
            log.exception("echonet: handling a frame from %s failed", addr)
            self.stats["handler_error"] += 1


class NodeRequester:
    """Requests to one ECHONET node (see the module docstring)."""

    def __init__(self, sock: EchonetSocket, host: str, port: int = PORT, *, timeout_s: float = 1.0,
                 retries: int = 1, backoff_s: float = 0.05) -> None:
        self.sock, self.host, self.port = sock, host, port
        self.timeout_s, self.retries, self.backoff_s = timeout_s, retries, backoff_s
        self.stats: Counter[str] = Counter()
        self.on_notify: dict[int, NotifyCallback] = {}  # by source EOJ
        self._tid = 0
        self._pending: tuple[int, int, asyncio.Future] | None = None  # (tid, deoj, future)
        self._lock = asyncio.Lock()

    @property
    def addr(self) -> tuple[str, int]:
        return self.host, self.port

    def _next_tid(self) -> int:
        self._tid = (self._tid + 1) & 0xFFFF
        return self._tid

    def _fail_pending(self, exc: Exception) -> None:
        if self._pending is not None and not self._pending[2].done():
            self._pending[2].set_exception(exc)

    def _on_frame(self, f: Frame) -> None:
        if f.esv in NOTIFICATIONS:
            self.stats["inf"] += 1
            if f.esv is Esv.INFC:  # acknowledge, as the standard requires
                self.sock.send(Frame(f.tid, CONTROLLER_EOJ, f.seoj, Esv.INFC_RES,
                                     tuple(Property(p.epc) for p in f.props)), self.addr)
            cb = self.on_notify.get(f.seoj)
            if cb is not None:
                cb(f)
            return
        p = self._pending
        if f.esv not in RESPONSES or p is None or f.tid != p[0] or p[2].done():
            self.stats["wrong_tid"] += 1
            return
        if f.seoj != p[1]:
            self.stats["wrong_object"] += 1
            return
        p[2].set_result(f)

    async def request(self, deoj: int, esv: Esv, props: Iterable[Property],
                      get_props: Iterable[Property] = ()) -> Frame:
        """Send one request and return its reply (an SNA reply is a reply, not an error).

        Raises :class:`EchonetTimeout` when no matching reply came after every retry.
        """
        props, get_props = tuple(props), tuple(get_props)
        loop = asyncio.get_running_loop()
        async with self._lock:
            for attempt in range(1 + self.retries):
                if attempt:
                    await asyncio.sleep(self.backoff_s * 2 ** (attempt - 1))
                    self.stats["retries"] += 1
                if self.sock._inflight is None:
                    raise EchonetError("socket not open")
                async with self.sock._inflight:
                    tid = self._next_tid()
                    fut = loop.create_future()
                    self._pending = (tid, deoj, fut)
                    self.sock.send(Frame(tid, CONTROLLER_EOJ, deoj, esv, props, get_props), self.addr)
                    self.stats["requests"] += 1
                    try:
                        return await asyncio.wait_for(fut, self.timeout_s)
                    except asyncio.TimeoutError:
                        self.stats["timeouts"] += 1
                    finally:
                        self._pending = None
        raise EchonetTimeout(f"{self.host}: no reply to {esv.name} for {deoj:06X} "
                             f"after {1 + self.retries} attempts")

    async def get(self, deoj: int, epcs: Iterable[int]) -> dict[int, bytes | None]:
        """Get properties; ``None`` for each one the node answered without data (SNA)."""
        epcs = tuple(epcs)
        reply = await self.request(deoj, Esv.GET, (Property(e) for e in epcs))
        if reply.esv not in (Esv.GET_RES, Esv.GET_SNA):
            raise EchonetError(f"{self.host}: {reply.esv.name} in reply to Get")
        got = {p.epc: (p.edt if p.edt or reply.esv is Esv.GET_RES else None) for p in reply.props}
        return {e: got.get(e) for e in epcs}

    async def set(self, deoj: int, values: Mapping[int, bytes]) -> set[int]:
        """SetC properties; returns the EPCs the node refused (empty: all accepted)."""
        reply = await self.request(deoj, Esv.SETC, (Property(e, v) for e, v in values.items()))
        if reply.esv not in (Esv.SET_RES, Esv.SETC_SNA):
            raise EchonetError(f"{self.host}: {reply.esv.name} in reply to SetC")
        if reply.esv is Esv.SET_RES:
            return set()
        # in SetC_SNA, accepted properties come back with PDC 0 and refused ones with their data
        refused = {p.epc for p in reply.props if p.edt}
        return refused or set(values)


__all__ = ["EchonetSocket", "NodeRequester", "EchonetError", "EchonetTimeout", "PORT", "CONTROLLER_EOJ", "SNA"]
