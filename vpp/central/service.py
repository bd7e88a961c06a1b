"""The centre's bus side: every town's telemetry, status and acks in; plans, dispatches and
reserve policy out, leased, per town.

* Telemetry: a :class:`~vpp.bus.telemetry.TelemetrySink` (durable consumer) into the store
  of each town.
* Status and acks: durable consumers into :class:`~vpp.central.state.CentralState` (an
  :class:`~vpp.bus.inbox.Inbox` on the same file drops redelivered ones).
* Commands: :meth:`CentralService.issue` commits the command first, the publisher sends it
  (JetStream ack, ``Nats-Msg-Id`` = command id); :meth:`wait_acks` waits for the towns' acks.
  Each town's command is independent: a slow or absent town delays only its own ack.
* :meth:`plan_round` asks ``plan_towns`` (pluggable, :mod:`vpp.central.planning`) for every
  town that reported a status and issues the plans.
* Reconciliation: when a town reports ``reconciled`` after a partition, its unacknowledged
  commands whose lease ended are marked ``expired_unacked`` and its newest plan is re-issued
  with a fresh lease (new seq), so the town follows the current plan again.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from vpp.bus.client import Bus, cancel_tasks
from vpp.bus.envelope import Envelope, decode
from vpp.bus.inbox import Inbox
from vpp.bus.outbox import tx
from vpp.bus.subjects import MAX_AGE_S, UP_STREAM, all_towns, check_town
from vpp.bus.telemetry import TelemetrySink, embedded_store_per_town
from vpp.central.checks import precheck
from vpp.central.planning import PlanRequest, PlanTowns, serial_plan_towns
from vpp.central.state import CentralState
from vpp.storage.base import Store
from vpp.timefmt import iso

log = logging.getLogger(__name__)

#: Default lease of a command [s]: a town stops following it after this.
LEASE_S = 900.0


def telemetry_sink(bus: Bus, state_dir: str | Path, store_for: Callable[[str], Store] | None = None) -> TelemetrySink:
    """The centre's telemetry sink: per-town stores under ``state_dir/telemetry`` (or
    ``store_for``), its idempotency record in ``state_dir/telemetry-inbox.sqlite``."""
    d = Path(state_dir)
    d.mkdir(parents=True, exist_ok=True)
    return TelemetrySink(bus, store_for or embedded_store_per_town(d / "telemetry"),
                         Inbox(d / "telemetry-inbox.sqlite"))


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class CentralService:
    """See module doc. ``clock`` is the centre's time (leases are stamped with it)."""

    def __init__(self, bus_url: str, state_dir: str | Path, *, plan_towns: PlanTowns = serial_plan_towns,
                 clock: Callable[[], datetime] = _utcnow, store_for: Callable[[str], Store] | None = None,
                 lease_s: float = LEASE_S, horizon_slots: int = 96, ack_wait_s: float = 10.0,
                 sink: bool = True) -> None:
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.bus = Bus(bus_url, name="central", ack_wait_s=ack_wait_s)
        self.state = CentralState(self.state_dir / "central.sqlite")
        self.inbox = Inbox(self.state.db)
        #: telemetry into the stores; ``sink=False`` leaves it to its own process
        #: (``vpp central sink``, :func:`telemetry_sink`) so storing never delays the command path
        self.sink = telemetry_sink(self.bus, self.state_dir, store_for)
        self.run_sink = sink
        self.plan_towns, self.clock, self.lease_s, self.horizon_slots = plan_towns, clock, lease_s, horizon_slots
        self.acks = 0  #: first acks received (this process); the times are in the state
        self.double_acks = 0  #: second acks of one command (distinct messages): a command applied twice
        self._ack_event = asyncio.Event()
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task] = []

    # ------------------------------------------------------------------ lifecycle
    async def start(self, connect_timeout_s: float | None = None) -> "CentralService":
        await self.bus.connect(connect_timeout_s)
        jobs = [(self.sink.run(self._stop), "telemetry")] if self.run_sink else []
        for coro, name in jobs + [
                           (self.bus.consume("central-status", all_towns("status"), self._on_status,
                                             stop=self._stop, stream=UP_STREAM), "status"),
                           (self.bus.consume("central-acks", all_towns("acks"), self._on_ack,
                                             stop=self._stop, stream=UP_STREAM), "acks"),
                           (self._publisher(), "publisher"), (self._prune(), "prune")]:
            self._tasks.append(asyncio.create_task(coro, name=f"central-{name}"))
        return self

    async def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        await cancel_tasks(self._tasks)
        await self.bus.close()
        self.sink.close()
        self.state.close()

    async def __aenter__(self) -> "CentralService":
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    # ------------------------------------------------------------------ commands out
    def issue(self, town: str, kind: str, body: dict[str, Any], lease_s: float | None = None,
              *, check: bool = True) -> Envelope:
        """Commit a leased command for ``town`` (published by the background publisher).
        With ``check`` it is first checked against the town's last status
        (:func:`~vpp.central.checks.precheck`: :class:`~vpp.errors.ServiceError` naming the
        reason); the town checks it again on arrival either way."""
        now = self.clock()
        if check:
            precheck(town, kind, body, self.state.towns().get(town, {}).get("status"), now)
        with tx(self.state.db):
            env = Envelope(f"c:{uuid.uuid4().hex}", check_town(town), kind, self.state.next_seq(town, kind), now,
                           body, now + timedelta(seconds=self.lease_s if lease_s is None else lease_s))
            if not env.is_command:
                raise ValueError(f"{kind!r} is not a command kind")
            self.state.add_command(env, time.time())
        self._wake.set()
        return env

    async def _publisher(self) -> None:
        while not self._stop.is_set():
            rows = self.state.unpublished()
            if not rows:
                self._wake.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), 1.0)
                continue
            envs = [decode(p) for _, p in rows]
            res = await asyncio.gather(*(self.bus.publish(e) for e in envs), return_exceptions=True)
            ok = [e.id for e, r in zip(envs, res) if not isinstance(r, BaseException)]
            if ok:
                self.state.mark_published(ok)
            if len(ok) < len(envs):
                await asyncio.sleep(0.2)

    async def _prune(self, every_s: float = 600.0) -> None:
        """Keep the idempotency records small: statuses an hour (a late one cannot overwrite
        a newer one anyway), acks and telemetry as long as the streams keep messages."""
        while not self._stop.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop.wait(), every_s)
            now = _utcnow()
            self.inbox.prune(iso(now - timedelta(hours=1)), "status")
            self.inbox.prune(iso(now - timedelta(seconds=MAX_AGE_S + 86400)), "acks")
            if self.run_sink:
                self.sink.inbox.prune(iso(now - timedelta(seconds=MAX_AGE_S + 86400)))

    async def wait_acks(self, ids: Iterable[str], timeout_s: float = 30.0) -> dict[str, float | None]:
        """Wait until every command in ``ids`` is acknowledged (or ``timeout_s``); returns id →
        seconds from issue to ack (None: no ack yet)."""
        ids = list(ids)
        end = time.monotonic() + timeout_s
        while True:
            out = {}
            for i in ids:
                c = self.state.command(i)
                out[i] = (c["acked_wall"] - c["issued_wall"]) if c and c["acked_wall"] is not None else None
            if all(v is not None for v in out.values()) or time.monotonic() >= end:
                return out
            self._ack_event.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._ack_event.wait(), min(0.5, max(end - time.monotonic(), 0.01)))

    def plan_requests(self, towns: Iterable[str] | None = None) -> dict[str, PlanRequest]:
        """Planning inputs from the towns' last status (towns without battery data are left out)."""
        start = self.clock()
        out = {}
        for town, rec in self.state.towns().items():
            if towns is not None and town not in towns:
                continue
            st = rec["status"]
            try:
                out[town] = PlanRequest(town, start, float(st["headroom_wh"]), float(st.get("room_wh", 0.0)),
                                        float(st["max_discharge_w"]), float(st.get("max_charge_w", 0.0)),
                                        n_slots=self.horizon_slots,
                                        net_load_w=tuple(st.get("net_load_w") or ()))
            except (KeyError, TypeError, ValueError):
                continue
        return out

    def plan_round(self, towns: Iterable[str] | None = None) -> dict[str, Envelope]:
        """Plan every (or the given) town with ``plan_towns`` and issue the plans."""
        plans = self.plan_towns(self.plan_requests(towns))
        items = plans.items() if isinstance(plans, Mapping) else plans
        return {town: self.issue(town, "plans", body) for town, body in items}

    async def plan_round_async(self, towns: Iterable[str] | None = None) -> dict[str, Envelope]:
        """:meth:`plan_round` with the planner in a worker thread; a planner that returns an
        iterable of ``(town, plan)`` pairs as they finish (e.g. from a distributed engine's
        as-completed) gets each plan issued the moment it is ready, so a slow town does not
        hold up the others' plans. Planner errors are raised after the ready plans are issued."""
        loop = asyncio.get_running_loop()
        reqs = self.plan_requests(towns)
        ready: asyncio.Queue = asyncio.Queue()

        def work() -> None:
            try:
                res = self.plan_towns(reqs)
                for town, body in (res.items() if isinstance(res, Mapping) else res):
                    loop.call_soon_threadsafe(ready.put_nowait, (town, body))
            finally:
                loop.call_soon_threadsafe(ready.put_nowait, None)

        done = loop.run_in_executor(None, work)
        out: dict[str, Envelope] = {}
        while (item := await ready.get()) is not None:
            out[item[0]] = self.issue(item[0], "plans", item[1])
        await done
        return out

    # ------------------------------------------------------------------ messages in
    async def _on_status(self, env: Envelope) -> None:
        with tx(self.state.db):
            if not self.inbox.claim(env.id, env.town, env.kind, env.seq, iso(_utcnow()), "seen", advance=False):
                return
            newest = self.state.set_status(env.town, env.body, env.issued_at)
        if newest and env.body.get("reconciled"):
            self.reconcile(env.town, env.body.get("held") or {})

    async def _on_ack(self, env: Envelope) -> None:
        b = env.body
        with tx(self.state.db):
            if not self.inbox.claim(env.id, env.town, env.kind, env.seq, iso(_utcnow()), "seen", advance=False):
                return
            detail = {k: v for k, v in b.items() if k not in ("ref", "status", "reason", "kind", "seq")}
            first = self.state.record_ack(str(b.get("ref")), str(b.get("status")), str(b.get("reason", "")),
                                          detail, time.time())
        if first:
            self.acks += 1
        elif self.state.command(str(b.get("ref"))) is not None:
            self.double_acks += 1  # a town handled one command twice: must stay 0
        self._ack_event.set()

    def reconcile(self, town: str, held: dict[str, Any] | None = None) -> Envelope | None:
        """After a town's partition: expire what it can no longer apply, re-issue its newest
        plan with a fresh lease unless the town reports it holds that plan already."""
        n = self.state.expire_unacked(town, self.clock())
        last = self.state.latest(town, "plans")
        log.info("central: %s reconciled (%d commands expired unacknowledged)", town, n)
        if last is None or (held or {}).get("plans", {}).get("id") == last["id"]:
            return None
        return self.issue(town, "plans", last["body"], check=False)

    # ------------------------------------------------------------------ views
    def overview(self) -> dict[str, Any]:
        """Per-town summary (last status, when seen) and command/ack counts."""
        return {"towns": self.state.towns(), "commands": self.state.ack_counts(),
                "telemetry": {"messages": self.sink.messages, "points": self.sink.points,
                              "duplicates": self.sink.inbox.duplicates, "rejected": self.sink.rejected}}


