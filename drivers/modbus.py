"""One Modbus connection (TCP or RTU) shared by every device id behind it.

:class:`ModbusLink` owns one pymodbus async client, applies an explicit per-request timeout,
reconnects lazily, and turns pymodbus outcomes into two exceptions:
:class:`DeviceTimeout` (no answer, connection refused or dropped) and
:class:`DeviceException` (the device answered with a Modbus exception code).
pymodbus retries are disabled: retry policy belongs to the poller.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException

from drivers.config import RtuConnection, TcpConnection

log = logging.getLogger(__name__)

# pymodbus logs every timeout at ERROR; our pollers log once per failure/recovery instead.
logging.getLogger("pymodbus").setLevel(logging.CRITICAL)


class ModbusError(Exception):
    """Base of the errors a read or write can raise."""


class DeviceTimeout(ModbusError):
    """No (valid) answer within the timeout, or the connection failed."""


class DeviceException(ModbusError):
    """The device answered with Modbus exception ``code`` (e.g. 2 illegal address, 4 failure)."""

    def __init__(self, code: int, what: str) -> None:
        super().__init__(f"{what}: Modbus exception 0x{code:02X}")
        self.code = code


def link_key(conn: TcpConnection | RtuConnection) -> str:
    """Identity of a physical connection: devices with the same key share one link."""
    if isinstance(conn, TcpConnection):
        return f"tcp://{conn.host}:{conn.port}"
    return f"rtu://{conn.port}"


class ModbusLink:
    """A lazily connected Modbus client; requests are serialised by pymodbus per link."""

    def __init__(self, conn: TcpConnection | RtuConnection, timeout_s: float = 1.0) -> None:
        self.key = link_key(conn)
        self.timeout_s = timeout_s
        self.conn = conn
        self.client: AsyncModbusTcpClient | AsyncModbusSerialClient | None = None
        self._connect_lock: asyncio.Lock | None = None

    def _make_client(self):
        # pymodbus clients bind the running loop when built: build them on first use
        conn, t = self.conn, self.timeout_s
        if isinstance(conn, TcpConnection):
            return AsyncModbusTcpClient(conn.host, port=conn.port, timeout=t, retries=0,
                                        reconnect_delay=0, reconnect_delay_max=0)
        return AsyncModbusSerialClient(conn.port, baudrate=conn.baudrate, parity=conn.parity,
                                       timeout=t, retries=0, reconnect_delay=0,
                                       reconnect_delay_max=0)

    async def _ensure_connected(self, timeout_s: float) -> None:
        if self.client is not None and self.client.connected:
            return
        if self._connect_lock is None:
            self._connect_lock = asyncio.Lock()
        async with self._connect_lock:
            if self.client is None:
                self.client = self._make_client()
            if self.client.connected:
                return
            try:
                ok = await asyncio.wait_for(self.client.connect(), timeout_s)
            except (TimeoutError, OSError, ModbusException) as e:
                self.client.close()
                raise DeviceTimeout(f"{self.key}: cannot connect ({e or type(e).__name__})") from None
            if not ok:
                self.client.close()
                raise DeviceTimeout(f"{self.key}: cannot connect")

    async def _call(self, what, coro_fn, timeout_s: float | None):
        """Run one request; ``what()`` describes it for error messages (built only on error)."""
        if self.client is None or not self.client.connected:
            await self._ensure_connected(timeout_s or self.timeout_s)
        try:
            # retries=0 and comm timeout = timeout_s: pymodbus bounds the wait itself
            rr = await coro_fn()
        except (TimeoutError, ConnectionException, OSError) as e:
            raise DeviceTimeout(f"{self.key} {what()}: {e or 'timeout'}") from None
        except ModbusException as e:
            raise DeviceTimeout(f"{self.key} {what()}: {e}") from None
        if rr is None:
            raise DeviceTimeout(f"{self.key} {what()}: no response")
        if rr.isError():
            raise DeviceException(int(getattr(rr, "exception_code", 0) or 0), f"{self.key} {what()}")
        return rr

    async def read(self, table: str, start: int, count: int, device_id: int,
                   timeout_s: float | None = None) -> list[int]:
        """Read ``count`` registers of ``table`` ("holding" | "input") from ``start``."""
        c = self.client
        if c is None or not c.connected:
            await self._ensure_connected(timeout_s or self.timeout_s)
            c = self.client
        fn = c.read_holding_registers if table == "holding" else c.read_input_registers
        try:  # the hot path of every poll: no wrapper coroutine, messages built on error only
            rr = await fn(start, count=count, device_id=device_id)
        except (TimeoutError, ConnectionException, OSError, ModbusException) as e:
            raise DeviceTimeout(f"{self.key} unit {device_id} read {table} {start}+{count}: "
                                f"{e or 'timeout'}") from None
        if rr.isError():
            raise DeviceException(int(getattr(rr, "exception_code", 0) or 0),
                                  f"{self.key} unit {device_id} read {table} {start}")
        regs = rr.registers
        if len(regs) < count:
            raise DeviceTimeout(f"{self.key} unit {device_id}: short read {len(regs)}/{count}")
        return regs

    async def write(self, address: int, words: Sequence[int], device_id: int,
                    timeout_s: float | None = None) -> None:
        """Write holding registers (function 16) from ``address``."""
        await self._call(lambda: f"unit {device_id} write {address}+{len(words)}",
                         lambda: self.client.write_registers(address, list(words),
                                                             device_id=device_id), timeout_s)

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
