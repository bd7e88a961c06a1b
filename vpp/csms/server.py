"""The central system (CSMS): a WebSocket server that OCPP charge points connect to.

One endpoint per configured station, ``ws[s]://host:port/ocpp/<id>``:

* the path names a ``protocol: ocpp`` device of the site config — any other id is refused
  (HTTP 404) before the upgrade;
* security profile 1: HTTP basic auth with the station id and its ``ocpp.password`` (401
  otherwise); profile 2: the same over TLS (``ocpp.certfile``/``keyfile``); 0: none;
* the subprotocol is the device's configured version (``ocpp1.6`` / ``ocpp2.0.1``); a station
  that does not offer it is closed with 1002;
* frames above ``max_frame_bytes`` close the connection (1009, counted); a station that
  reconnects replaces its old connection (the state — transaction, limits — is kept).

For the control loop it looks like a driver fleet (``latest``, ``device``, ``available``):
``device(id)`` is an :class:`~vpp.csms.charger.OcppCharger`. Alarms go to ``alarm_sink``
(``ocpp:<id>``), readings to ``on_snapshot`` (the telemetry pipeline), charging needs a
station reports (2.0.1 ``NotifyEVChargingNeeds``) to ``needs_sink``.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import itertools
import logging
import ssl
import time
from collections.abc import Callable
from datetime import datetime, timezone
from http import HTTPStatus
from typing import Any, Protocol

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from drivers.config import Device
from drivers.protocols import Snapshot
from vpp.config import SiteConfig
from vpp.csms import renewal
from vpp.csms.charger import OcppCharger
from vpp.csms.handlers import Csms16, Csms201
from vpp.csms.station import StationState

log = logging.getLogger(__name__)

SUBPROTOCOL = {"1.6": "ocpp1.6", "2.0.1": "ocpp2.0.1"}
PATH_PREFIX = "/ocpp/"


class AlarmSink(Protocol):
    def raise_(self, key: str, reason: str) -> None: ...

    def clear(self, key: str, reason: str) -> None: ...


def station_id_of(path: str) -> str | None:
    """The charge point id of a request path ``/ocpp/<id>`` (no further segments)."""
    if not path.startswith(PATH_PREFIX):
        return None
    sid = path[len(PATH_PREFIX):].split("?", 1)[0]
    return sid if sid and "/" not in sid else None


def basic_auth(header: str | None) -> tuple[str, str] | None:
    """``(user, password)`` of an HTTP ``Authorization: Basic`` header, else ``None``."""
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        user, _, pw = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return user, pw


class CentralSystem:
    """OCPP central system of one site (see the module docstring).

    Parameters
    ----------
    config : SiteConfig
        Its ``ocpp`` section and ``protocol: ocpp`` devices.
    now : callable
        UTC time of the service (a simulated clock in simulated runs).
    port : int, optional
        Overrides ``config.ocpp.port`` (0: a free port; see :attr:`port` after start).
    """

    #: Wall seconds between checks for TxProfiles to renew (None: never renew; see vpp.csms.renewal).
    renew_every_s: float | None = 0.25

    def __init__(self, config: SiteConfig, now: Callable[[], datetime] | None = None, port: int | None = None,
                 alarm_sink: AlarmSink | None = None,
                 on_snapshot: Callable[[Snapshot], Any] | None = None,
                 needs_sink: Callable[[str, dict], None] | None = None) -> None:
        self.config = config
        self.now = now or (lambda: datetime.now(timezone.utc))
        self._port = config.ocpp.port if port is None else port
        self.alarm_sink, self.on_snapshot, self.needs_sink = alarm_sink, on_snapshot, needs_sink
        self.devices: dict[str, Device] = {d.id: d for d in config.devices if d.protocol == "ocpp"}
        self.stations = {i: StationState(i, d.version) for i, d in self.devices.items()}
        self.chargers = {i: OcppCharger(d, self) for i, d in self.devices.items()}
        self._conns: dict[str, Csms16 | Csms201] = {}
        self._ws: dict[str, ServerConnection] = {}
        self._tasks: set[asyncio.Task] = set()
        self._server: Server | None = None
        self._tx_ids = itertools.count(int(time.time()) % 1_000_000 * 100 + 1)
        self.messages = 0  #: frames received from all stations
        self.refused: dict[str, int] = {}  #: connection attempts refused, by reason

    # ------------------------------------------------------------------ lifecycle
    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        scheme = "wss" if self.config.ocpp.security_profile == 2 else "ws"
        return f"{scheme}://{self.config.ocpp.host}:{self._port}{PATH_PREFIX}"

    def _ssl(self) -> ssl.SSLContext | None:
        o = self.config.ocpp
        if o.security_profile != 2:
            return None
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(o.certfile, o.keyfile)
        return ctx

    async def start(self) -> None:
        o = self.config.ocpp
        self._server = await serve(self._handler, o.host, self._port, ssl=self._ssl(),
                                   process_request=self._process_request, select_subprotocol=self._subprotocol,
                                   subprotocols=list(SUBPROTOCOL.values()), max_size=o.max_frame_bytes,
                                   ping_interval=30, ping_timeout=30)
        self._port = self._server.sockets[0].getsockname()[1]
        if self.on_snapshot is not None and self.devices:
            t = asyncio.create_task(self._publish_loop(), name="ocpp-publish")
            self._tasks.add(t)
        if self.renew_every_s and self.devices:  # TxProfiles re-sent before they end
            t = asyncio.create_task(renewal.renew_loop(self, self.renew_every_s), name="ocpp-renew")
            self._tasks.add(t)
        log.info("OCPP central system on %s (%d stations configured)", self.url, len(self.devices))

    async def _publish_loop(self) -> None:
        """Hand every station's state to ``on_snapshot`` at the devices' poll interval (wall
        seconds), as a poller would: the state is current while the station is connected
        (it pushes every change), and liveness and storage see it at a steady rate."""
        every = min(d.poll_interval_s for d in self.devices.values())
        while True:
            await asyncio.sleep(every)
            for sid in self.devices:
                self.publish(sid)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    # ------------------------------------------------------------------ connections
    def _refuse(self, conn: ServerConnection, status: HTTPStatus, reason: str, headers: dict | None = None):
        self.refused[reason] = self.refused.get(reason, 0) + 1
        resp = conn.respond(status, f"{reason}\n")
        for k, v in (headers or {}).items():
            resp.headers[k] = v
        return resp

    def _process_request(self, conn: ServerConnection, request: Any):
        sid = station_id_of(request.path)
        if sid is None or sid not in self.devices:
            return self._refuse(conn, HTTPStatus.NOT_FOUND, "unknown charge point id")
        if self.config.ocpp.security_profile >= 1:
            creds = basic_auth(request.headers.get("Authorization"))
            pw = self.devices[sid].ocpp.password
            if creds is None or pw is None or creds[0] != sid or not hmac.compare_digest(creds[1], pw):
                return self._refuse(conn, HTTPStatus.UNAUTHORIZED, "bad credentials",
                                    {"WWW-Authenticate": 'Basic realm="ocpp"'})
        return None

    def _subprotocol(self, conn: ServerConnection, offered: Any) -> str | None:
        sid = station_id_of(conn.request.path)
        want = SUBPROTOCOL.get(self.devices[sid].version) if sid in self.devices else None
        return want if want in offered else None

    async def _handler(self, ws: ServerConnection) -> None:
        sid = station_id_of(ws.request.path)
        dev = self.devices[sid]
        if ws.subprotocol != SUBPROTOCOL[dev.version]:
            self.refused["subprotocol"] = self.refused.get("subprotocol", 0) + 1
            await ws.close(1002, f"this station speaks {SUBPROTOCOL[dev.version]}")
            return
        old = self._ws.get(sid)
        if old is not None:
            self.stations[sid].count("replaced")
            await old.close(1000, "replaced by a new connection")
        st = self.stations[sid]
        cp = (Csms16 if dev.version == "1.6" else Csms201)(st, ws, self)
        self._conns[sid], self._ws[sid] = cp, ws
        st.connected, st.last_seen = True, self.now()
        st.count("connects")
        self.publish(sid)
        try:
            await cp.start()
        except ConnectionClosed as e:
            if e.rcvd is not None and e.rcvd.code == 1009 or e.sent is not None and e.sent.code == 1009:
                st.count("oversized")
        finally:
            if self._conns.get(sid) is cp:
                del self._conns[sid], self._ws[sid]
                st.connected = False
                self.alarm(sid, "disconnected: the station keeps its default profile")
                self.publish(sid)

    def connection(self, sid: str) -> Csms16 | Csms201 | None:
        return self._conns.get(sid)

    # ------------------------------------------------------------------ hooks for the handlers
    def charger(self, sid: str) -> Device:
        return self.devices[sid]

    def authorize(self, id_tag: str) -> str:
        """``Accepted`` if ``id_tag`` is on the local list (or the list is empty), else ``Invalid``."""
        allowed = self.config.ocpp.auth_list
        return "Accepted" if not allowed or id_tag in allowed else "Invalid"

    def next_transaction_id(self) -> int:
        return next(self._tx_ids)

    def _spawn(self, coro: Any, what: str) -> None:
        async def run() -> None:
            try:
                await coro
            except Exception as e:  # noqa: BLE001 - a station's failure is its alarm, never the loop's
                log.warning("OCPP %s: %s: %s", what, type(e).__name__, e)
        t = asyncio.create_task(run(), name=f"ocpp-{what}")
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    def after_boot(self, sid: str) -> None:
        """After BootNotification (outside the receive loop, which must stay free for the
        answers): learn the rate units, install the safe default profile."""
        ch = self.chargers[sid]

        async def setup() -> None:
            if ch.config.ocpp.rate_unit == "auto":
                await ch.learn_rate_units()
            if await ch.set_default():
                self.clear_alarm(sid)
            elif ch.config.ocpp.fallback_limit_key:  # refuses profiles: the safe limit as a plain limit
                self.stations[sid].profiles_rejected = True
                self.alarm(sid, f"refused the safe TxDefaultProfile: plain limit {ch.config.ocpp.fallback_limit_key}")
                await ch.set_plain_limit(ch.safe_limit_a())
            else:
                self.alarm(sid, "refused the safe TxDefaultProfile and has no fallback_limit_key")
        self._spawn(setup(), f"{sid}-boot")

    def after_transaction(self, sid: str) -> None:
        """The transaction ended: clear its TxProfile (stations may keep it for the next one)."""
        if not self.stations[sid].paused_by_stop:
            self._spawn(self.chargers[sid].clear_tx_profile(), f"{sid}-clear")

    def on_needs(self, sid: str, needs: dict) -> None:
        if self.needs_sink is not None:
            self.needs_sink(sid, needs)

    def publish(self, sid: str) -> None:
        if self.on_snapshot is not None:
            self.on_snapshot(self.latest(sid))

    def alarm(self, sid: str, reason: str) -> None:
        log.warning("OCPP station %s: %s", sid, reason)
        if self.alarm_sink is not None:
            self.alarm_sink.raise_(f"ocpp:{sid}", reason)

    def fault_changed(self, sid: str, fault: str | None) -> None:
        """Alarm ``ocpp-fault:<id>`` while a station reports itself out of service."""
        if fault is not None:
            log.warning("OCPP station %s: out of service: %s", sid, fault)
        if self.alarm_sink is not None:
            if fault is None:
                self.alarm_sink.clear(f"ocpp-fault:{sid}", "back in service")
            else:
                self.alarm_sink.raise_(f"ocpp-fault:{sid}", f"station reports {fault}: not offered to the plan")

    def clear_alarm(self, sid: str) -> None:
        if self.alarm_sink is not None:
            self.alarm_sink.clear(f"ocpp:{sid}", "ok")

    # ------------------------------------------------------------------ fleet interface
    def latest(self, sid: str) -> Snapshot:
        return self.stations[sid].snapshot(self.now())

    def available(self, sid: str) -> bool:
        return self.stations[sid].connected

    def device(self, sid: str) -> OcppCharger:
        return self.chargers[sid]

    @property
    def device_ids(self) -> list[str]:
        return list(self.devices)

    def counters(self) -> dict[str, int]:
        """Per-reason totals over all stations (malformed, throttled, timeouts, …)."""
        out: dict[str, int] = {"messages": self.messages}
        for st in self.stations.values():
            for k, v in st.counters.items():
                out[k] = out.get(k, 0) + v
        for k, v in self.refused.items():
            out[f"refused:{k}"] = v
        return out
