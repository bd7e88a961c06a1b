"""The edge agent of one town: the bus side of a town that keeps running on its own.

::

    TownPort (devices, controller, reserve, local plan)
       │ readings ─► Outbox (SQLite) ─► vpp.<town>.telemetry / status / acks ─► centre
       │ ◄─ CommandBook ◄─ checks (lease, order, ratings, reserve) ◄─ vpp.<town>.plans / dispatches / policy

* Everything the agent sends goes through its :class:`~vpp.bus.outbox.Outbox`: buffered
  while the bus is away and replayed in order (same ids: no duplicates) when it returns,
  also after a ``kill -9`` of the agent.
* Commands come from the town's durable consumers (one per kind). Each is decided by
  :mod:`vpp.edge.commands`; the decision, the held command and its ack are committed in one
  SQLite transaction together with the id in the :class:`~vpp.bus.inbox.Inbox`, so a
  redelivered command is never applied twice and an applied one is never forgotten: on restart
  the agent re-holds the unexpired plan/dispatch and re-applies the newest policy if the
  town's reserve differs from it.
* The town never waits for the centre: with no command in force the controller follows the
  town's own plan and reserve rules. Cut off for longer than ``link_alarm_s`` (town time) the
  agent raises the ``central_link`` alarm; when the link returns and the outbox is drained it
  clears it and sends a ``status`` with ``reconciled: true`` (how long it was away, what it
  replayed) so the centre re-issues what the town missed.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from datetime import datetime
from pathlib import Path
from typing import Any

from vpp.bus.client import Bus, cancel_tasks
from vpp.bus.envelope import BusMessageError, Envelope
from vpp.bus.inbox import Inbox
from vpp.bus.outbox import Outbox, tx
from vpp.bus.subjects import DOWN_KINDS, DOWN_STREAM, subject
from vpp.bus.telemetry import telemetry_body
from vpp.edge.commands import CommandBook, Held, Outcome, check_order, check_policy, check_power_command
from vpp.edge.port import TownPort
from vpp.timefmt import iso

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS held (kind TEXT PRIMARY KEY, row TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS policy (id INTEGER PRIMARY KEY CHECK (id = 1), body TEXT NOT NULL, state TEXT NOT NULL);
"""


class EdgeAgent:
    """Run with ``async with EdgeAgent(port, url, state_dir): ...`` (see module doc).

    ``telemetry_every_s`` / ``status_every_s`` are wall seconds between telemetry batches and
    status messages; ``link_alarm_s`` is town-clock seconds without the bus before the alarm.
    """

    def __init__(self, port: TownPort, bus_url: str, state_dir: str | Path, *, telemetry_every_s: float = 0.2,
                 status_every_s: float = 1.0, link_alarm_s: float = 60.0, ack_wait_s: float = 10.0) -> None:
        self.port, self.town = port, port.town
        self.bus = Bus(bus_url, name=f"edge-{self.town}", ack_wait_s=ack_wait_s)
        self.state_dir = Path(state_dir)
        self.outbox = Outbox(self.state_dir / "agent.sqlite", self.town, port.now)
        self.db = self.outbox.db
        self.db.executescript(_SCHEMA)
        self.inbox = Inbox(self.db)
        self.book = CommandBook(lambda now: port.capacity(now).batteries)
        self.telemetry_every_s, self.status_every_s, self.link_alarm_s = telemetry_every_s, status_every_s, link_alarm_s
        self.applied: list[str] = []  #: ids of commands applied by this process, in order
        self.offline_since: datetime | None = None
        self.alarmed = False
        self.reconciliations = 0
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task] = []

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> "EdgeAgent":
        self._restore()
        self.port.install(self.book)
        self.offline_since = self.port.now()  # not connected yet
        spawn = self._spawn
        spawn(self._connect_and_consume(), "bus")
        spawn(self.outbox.run(self.bus, self._stop), "outbox")
        spawn(self._every(self.telemetry_every_s, self.flush_telemetry), "telemetry")
        spawn(self._every(self.status_every_s, self.send_status), "status")
        spawn(self._every(0.1, self._watch_link), "link")
        spawn(self._every(60.0, self.outbox.prune), "prune")  # sent rows: keep the newest only
        return self

    def _spawn(self, coro, name: str) -> None:
        self._tasks.append(asyncio.create_task(coro, name=f"edge-{self.town}-{name}"))

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.flush_telemetry()
        with contextlib.suppress(Exception):  # send what is left if the bus is there (else: next start)
            await asyncio.wait_for(self._drain(), 3.0)
        self._stop.set()
        await cancel_tasks(self._tasks)
        await self.bus.close()
        self.outbox.close()

    async def _drain(self) -> None:
        while self.bus.connected and self.outbox.pending():
            await asyncio.sleep(0.02)

    async def __aenter__(self) -> "EdgeAgent":
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    async def _every(self, seconds: float, fn) -> None:
        while not self._stop.is_set():
            await asyncio.sleep(seconds)
            try:
                res = fn()
                if asyncio.iscoroutine(res):
                    await res
            except Exception:  # noqa: BLE001 - a periodic job must not die
                log.exception("edge %s: %s failed", self.town, getattr(fn, "__name__", fn))

    # ------------------------------------------------------------------ restart
    def _restore(self) -> None:
        now = self.port.now()
        for _, row in self.db.execute("SELECT kind, row FROM held"):
            h = Held.from_row(json.loads(row))
            if now < h.lease_until:
                self.book.hold(h)
        got = self.db.execute("SELECT body, state FROM policy WHERE id=1").fetchone()
        if got is not None:
            body, state = json.loads(got[0]), json.loads(got[1])
            cur = self.port.policy_state()
            if (cur.get("floor_pct"), cur.get("storm")) != (state.get("floor_pct"), state.get("storm")):
                log.warning("edge %s: re-applying the centre's reserve policy after a restart", self.town)
                with contextlib.suppress(Exception):
                    self.port.set_policy(body)

    # ------------------------------------------------------------------ outgoing
    def flush_telemetry(self) -> int:
        snaps = self.port.drain_telemetry()
        if snaps:
            self.outbox.append("telemetry", telemetry_body(snaps))
        return len(snaps)

    def send_status(self, **extra: Any) -> Envelope:
        st = dict(self.port.status())
        held = {k: {"id": h.id, "seq": h.seq, "lease_until": iso(h.lease_until)} for k, h in self.book.held.items()}
        st.update({"connected": self.bus.connected, "outbox_pending": self.outbox.pending(),
                   "held": held, "newest_seq": {k: self.inbox.newest(self.town, k) for k in DOWN_KINDS},
                   "duplicates_dropped": self.inbox.duplicates, "link_alarm": self.alarmed, **extra})
        return self.outbox.append("status", st)

    # ------------------------------------------------------------------ link
    def _watch_link(self) -> None:
        now = self.port.now()
        up = self.bus.connected and self.outbox.pending() == 0
        if not self.bus.connected:
            if self.offline_since is None:
                self.offline_since = now
            away = (now - self.offline_since).total_seconds()
            if away >= self.link_alarm_s and not self.alarmed:
                self.alarmed = True
                self.port.alarm("central_link", f"no link to the centre for {away:.0f} s: running on the "
                                                "local plan and reserve", True)
        elif up and self.offline_since is not None:
            away = (now - self.offline_since).total_seconds()
            if self.alarmed:
                self.port.alarm("central_link", "link to the centre is back", False)
            self.alarmed, self.offline_since = False, None
            self.reconciliations += 1
            self.send_status(reconciled=True, offline_s=away)

    # ------------------------------------------------------------------ incoming
    async def _connect_and_consume(self) -> None:
        await self.bus.connect()
        await asyncio.gather(*(self.bus.consume(f"edge-{self.town}-{k}", subject(self.town, k), self.handle,
                                                stop=self._stop, batch=50, stream=DOWN_STREAM)
                               for k in DOWN_KINDS))

    async def handle(self, env: Envelope) -> Outcome | None:
        """Decide, record and apply one command (see module doc); None for a duplicate."""
        if env.town != self.town or not env.is_command:
            log.warning("edge %s: ignored %s for %s", self.town, env.kind, env.town)
            return None
        if self.inbox.seen(env.id):
            self.inbox.duplicates += 1
            return None
        now = self.port.now()
        cap = self.port.capacity(now)
        held = None
        try:
            out = check_order(env, now, self.inbox.newest(self.town, env.kind))
            if out is None and env.kind == "policy":
                out = check_policy(env, now, cap)
            elif out is None:
                out, held = check_power_command(env, now, cap)
        except BusMessageError as e:
            out = Outcome("rejected", "malformed", {"detail": str(e)})
        with tx(self.db):
            if not self.inbox.claim(env.id, self.town, env.kind, env.seq, iso(now), out.status,
                                    advance=out.applies):
                return None
            if held is not None:
                self.db.execute("INSERT OR REPLACE INTO held VALUES (?, ?)", (held.kind, json.dumps(held.as_row())))
            if out.applies and env.kind == "policy":
                self.db.execute("INSERT OR REPLACE INTO policy VALUES (1, ?, ?)",
                                (json.dumps(env.body), json.dumps({"floor_pct": env.body.get("floor_pct"),
                                                                   "storm": env.body.get("storm")})))
            self.outbox.append("acks", out.ack_body(env))
        if out.applies:
            self.applied.append(env.id)
            if held is not None:
                self.book.hold(held)
            else:
                try:
                    self.port.set_policy(env.body)
                except Exception as e:  # noqa: BLE001 - checked before; loud if the town refuses
                    log.error("edge %s: policy %s could not be put in force: %s", self.town, env.id, e)
                    self.port.alarm("central_policy", f"policy {env.id} not in force: {e}", True)
        log.info("edge %s: %s %s seq %d -> %s %s", self.town, env.kind, env.id, env.seq, out.status, out.reason)
        return out
