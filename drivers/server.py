"""Generic async Modbus TCP server serving register images (for simulators and tests).

One :class:`ModbusImageServer` listens on one host:port and answers for one or more
device ids (unit ids). Each device is described by a *register image*
``{(table, address): word}`` with ``table`` in ``{"holding", "input"}``; the owner replaces
values with :meth:`ModbusImageServer.update` and learns about client writes to holding
registers through the ``on_write(device_id, table, address, words)`` callback (raise
``ValueError`` there to answer the client with exception 0x03 ILLEGAL DATA VALUE).

Fault hooks per device (:meth:`ModbusImageServer.set_fault`):

``"offline"``
    requests to the device get no answer; when every device on the port is offline the
    listener is closed, so connections are refused and open ones dropped.
``"slow"``
    every answer is delayed by ``slow_delay_s`` (pick it beyond the client's timeout).
``"exception"``
    every request is answered with Modbus exception ``exception_code`` (default 0x04).
``"frozen"``
    :meth:`update` is ignored: the device keeps serving the last values.

Requests for a device id that is not served get no answer (as from an absent unit).
Addresses absent from the image answer 0x02 ILLEGAL DATA ADDRESS, except gaps of at most
``gap_fill`` registers between image addresses, which read as 0 (real devices pad
similarly, and it lets clients read contiguous blocks with declared gaps).
Only this package imports pymodbus.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from pymodbus.constants import ExcCodes
from pymodbus.exceptions import NoSuchIdException
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

log = logging.getLogger(__name__)

Image = dict[tuple[str, int], int]
WriteCallback = Callable[[int, str, int, list[int]], None]
FAULTS = ("offline", "slow", "exception", "frozen")
TABLES = ("holding", "input")
_READ_INPUT = 4


@dataclass
class _Device:
    device_id: int
    image: dict[str, dict[int, int]]
    writable: set[int] | None  # holding addresses a client may write; None = all
    fault: str | None = None
    exception_code: int = int(ExcCodes.DEVICE_FAILURE)
    requests: int = 0
    writes: int = 0
    layout: dict[str, list[SimData]] = field(default_factory=dict)


class _KnownIdsOnly:
    """Datastore wrapper: unknown device ids raise NoSuchIdException (answered by silence).

    pymodbus would otherwise route them to device id 0 and answer 0x04 with an error log.
    """

    def __init__(self, core) -> None:
        self._core = core

    def device_ids(self) -> list[int]:
        return self._core.device_ids()

    def _check(self, device_id: int) -> None:
        if device_id not in self._core.devices:
            raise NoSuchIdException(f"no device id {device_id}")

    async def async_getValues(self, device_id: int, func_code: int, address: int, count: int = 1):
        self._check(device_id)
        return await self._core.async_getValues(device_id, func_code, address, count)

    async def async_setValues(self, device_id: int, func_code: int, address: int, values):
        self._check(device_id)
        return await self._core.async_setValues(device_id, func_code, address, values)


def _runs(addresses: Iterable[int], gap_fill: int) -> list[tuple[int, int]]:
    """Group sorted addresses into (start, count) runs, bridging gaps <= gap_fill."""
    runs: list[tuple[int, int]] = []
    for a in sorted(addresses):
        if runs and a - (runs[-1][0] + runs[-1][1]) <= gap_fill:
            runs[-1] = (runs[-1][0], a - runs[-1][0] + 1)
        else:
            runs.append((a, 1))
    return runs


class ModbusImageServer:
    """Modbus TCP server for register images; see the module docstring.

    Parameters
    ----------
    host, port : str, int
        Where to listen; ``port=0`` binds a free port (see :attr:`port` after start).
    on_write : callable, optional
        ``on_write(device_id, table, address, words)`` after a client write was accepted.
    slow_delay_s : float
        Response delay of the ``"slow"`` fault [s].
    gap_fill : int
        Largest gap (registers) between image addresses served as zeros.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *,
                 on_write: WriteCallback | None = None, slow_delay_s: float = 5.0,
                 gap_fill: int = 64) -> None:
        self.host = host
        self._port = port
        self.on_write = on_write
        self.slow_delay_s = slow_delay_s
        self.gap_fill = gap_fill
        self._devices: dict[int, _Device] = {}
        self._server: ModbusTcpServer | None = None
        self._listening = False
        self._lock = asyncio.Lock()

    # ------------------------------------------------------------------ configuration
    def add_device(self, device_id: int, image: Image,
                   writable: Iterable[tuple[str, int]] | None = None) -> None:
        """Serve ``image`` as ``device_id``; only ``writable`` holding registers accept writes.

        Must be called before :meth:`start`; the set of addresses is fixed from here on.
        """
        if self._server is not None:
            raise RuntimeError("add devices before start()")
        if device_id in self._devices:
            raise ValueError(f"device id {device_id} already served")
        tables: dict[str, dict[int, int]] = {t: {} for t in TABLES}
        for (table, address), word in image.items():
            if table not in tables:
                raise ValueError(f"unknown register table {table!r}")
            tables[table][address] = int(word) & 0xFFFF
        w = None if writable is None else {a for t, a in writable if t == "holding"}
        dev = _Device(device_id, tables, w)
        for table, regs in tables.items():
            runs = _runs(regs, self.gap_fill)
            dev.layout[table] = [
                SimData(address=s, values=[regs.get(a, 0) for a in range(s, s + n)],
                        datatype=DataType.REGISTERS)
                for s, n in runs
            ] or [SimData(address=0, datatype=DataType.INVALID)]
        self._devices[device_id] = dev

    @property
    def device_ids(self) -> list[int]:
        return list(self._devices)

    @property
    def port(self) -> int:
        """Bound port (the real one once started, also for ``port=0``)."""
        return self._port

    def image(self, device_id: int) -> Image:
        """Current served image of ``device_id`` (copy)."""
        d = self._devices[device_id]
        return {(t, a): w for t, regs in d.image.items() for a, w in regs.items()}

    def stats(self, device_id: int) -> dict[str, int]:
        """Requests answered and writes accepted for ``device_id``."""
        d = self._devices[device_id]
        return {"requests": d.requests, "writes": d.writes}

    # --------------------------------------------------------------------- lifecycle
    def _sim_devices(self) -> list[SimDevice]:
        bits = [SimData(address=0, values=[False] * 16, datatype=DataType.BITS)]
        devices = [
            SimDevice(id=d.device_id,
                      simdata=(list(bits), list(bits), list(d.layout["holding"]),
                               list(d.layout["input"])),
                      action=self._make_action(d))
            for d in self._devices.values()
        ]
        return devices

    async def start(self) -> int:
        """Start listening; returns the bound port."""
        if not self._devices:
            raise RuntimeError("no devices to serve")
        await self._listen()
        return self._port

    async def _listen(self) -> None:
        async with self._lock:
            if self._listening:
                return
            server = ModbusTcpServer(self._sim_devices(), address=(self.host, self._port),
                                     ignore_missing_devices=True)
            server.context = _KnownIdsOnly(server.context)
            await server.serve_forever(background=True)
            self._server = server
            self._port = server.transport.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
            self._listening = True

    async def _close(self) -> None:
        async with self._lock:
            if self._server is not None and self._listening:
                await self._server.shutdown()
            self._listening = False

    async def stop(self) -> None:
        """Close the listener and every client connection."""
        await self._close()
        self._server = None

    @property
    def listening(self) -> bool:
        return self._listening

    # ------------------------------------------------------------------ owner updates
    def update(self, device_id: int, image: Image) -> None:
        """Replace served values (addresses outside the initial image are ignored)."""
        d = self._devices[device_id]
        if d.fault == "frozen":
            return
        for (table, address), word in image.items():
            regs = d.image.get(table)
            if regs is not None and address in regs:
                regs[address] = int(word) & 0xFFFF

    def set_fault(self, device_id: int, fault: str | None, *,
                  exception_code: int = int(ExcCodes.DEVICE_FAILURE)) -> asyncio.Future:
        """Inject ``fault`` (one of :data:`FAULTS`) into ``device_id``; ``None`` clears it.

        Takes effect for requests at once; opening/closing the listener (``"offline"`` on
        every device) happens in a task that the returned future completes with. Call it
        from within the running event loop.
        """
        if fault is not None and fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; known: {', '.join(FAULTS)}")
        d = self._devices[device_id]
        d.fault = fault
        d.exception_code = int(exception_code)
        return asyncio.ensure_future(self._follow_faults())

    async def _follow_faults(self) -> None:
        if self._server is None:
            return
        all_offline = all(x.fault == "offline" for x in self._devices.values())
        if all_offline and self._listening:
            await self._close()
        elif not all_offline and not self._listening:
            await self._listen()

    def fault(self, device_id: int) -> str | None:
        return self._devices[device_id].fault

    # ------------------------------------------------------------------ request hook
    def _make_action(self, d: _Device):
        async def action(function_code: int, start_address: int, address: int, count: int,
                         registers: list[int], set_values: list[int] | list[bool] | None,
                         ) -> ExcCodes | None:
            if d.fault == "offline":
                raise NoSuchIdException(f"device {d.device_id} offline")
            if d.fault == "slow":
                await asyncio.sleep(self.slow_delay_s)
            if d.fault == "exception":
                return ExcCodes(d.exception_code)
            table = "input" if function_code == _READ_INPUT else "holding"
            regs = d.image[table]
            if set_values:
                words = [int(v) for v in set_values]
                span = range(address, address + len(words))
                if d.writable is not None and any(a not in d.writable for a in span):
                    return ExcCodes.ILLEGAL_ADDRESS
                if self.on_write is not None:
                    try:
                        self.on_write(d.device_id, table, address, words)
                    except ValueError as e:
                        log.info("device %s rejected write at %s: %s", d.device_id, address, e)
                        return ExcCodes.ILLEGAL_VALUE
                for a, w in zip(span, words):
                    if a in regs:
                        regs[a] = w & 0xFFFF
                d.writes += 1
            else:
                for a in range(address, address + count):
                    registers[a - start_address] = regs.get(a, 0)
            d.requests += 1
            return None

        return action
