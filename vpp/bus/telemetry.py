"""Telemetry over the bus: snapshots as JSON, and the consumer that stores them per town.

A telemetry message's body is ``{"snapshots": [{"device", "kind", "ts", "values", "quality",
"reason"}, …]}`` (values in SI units, see :mod:`drivers.fields`). :class:`TelemetrySink` is a
durable consumer of every town's telemetry that writes each message into the store of its
town (partitioned by town: one embedded store file per town by default, or an InfluxDB store
whose ``site`` tag is the town). Writes are idempotent per point, and the sink's
:class:`~vpp.bus.inbox.Inbox` records each message id after its points are written, so a
redelivered message is neither lost nor counted twice.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from pathlib import Path

from drivers.protocols import DeviceKind, Quality, Snapshot
from vpp.bus.client import Bus
from vpp.bus.envelope import BusMessageError, Envelope
from vpp.bus.inbox import Inbox
from vpp.bus.subjects import all_towns, subject
from vpp.config import EmbeddedStorage, InfluxStorage
from vpp.storage import open_store
from vpp.storage.base import Store
from vpp.timefmt import iso

log = logging.getLogger(__name__)


def snapshot_doc(s: Snapshot, ts: str | None = None) -> dict:
    return {"device": s.device, "kind": s.kind.value, "ts": ts or iso(s.ts, ms=True),
            "values": {k: float(v) for k, v in s.values.items()}, "quality": s.quality.value, "reason": s.reason}


def telemetry_body(snaps: Iterable[Snapshot]) -> dict:
    stamps: dict[datetime, str] = {}  # a town's readings share a few timestamps: format each once
    out = []
    for s in snaps:
        ts = stamps.get(s.ts)
        if ts is None:
            ts = stamps[s.ts] = iso(s.ts, ms=True)
        out.append(snapshot_doc(s, ts))
    return {"snapshots": out}


def snapshots_of(env: Envelope) -> list[Snapshot]:
    """The snapshots of a telemetry message (:class:`BusMessageError` naming the bad row)."""
    rows = env.body.get("snapshots")
    if not isinstance(rows, list):
        raise BusMessageError("body.snapshots: expected a list")
    out: list[Snapshot] = []
    stamps: dict[str, datetime] = {}
    for i, r in enumerate(rows):
        try:
            ts = stamps.get(r["ts"])
            if ts is None:
                ts = datetime.fromisoformat(r["ts"].replace("Z", "+00:00"))
                if ts.tzinfo is None:
                    raise ValueError("ts needs a time zone")
                ts = stamps[r["ts"]] = ts.astimezone(timezone.utc)
            out.append(Snapshot(str(r["device"]), DeviceKind(r["kind"]), ts,
                                {str(k): float(v) for k, v in r.get("values", {}).items()},
                                Quality(r.get("quality", "good")), str(r.get("reason", ""))))
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise BusMessageError(f"body.snapshots[{i}]: {type(e).__name__}: {e}") from None
    return out


def embedded_store_per_town(root: str | Path) -> Callable[[str], Store]:
    """Store factory: one embedded store file per town under ``root``."""
    def make(town: str) -> Store:
        return open_store(EmbeddedStorage(path=str(Path(root) / f"telemetry-{town}.sqlite")), site=town)
    return make


def influx_store_per_town(cfg: InfluxStorage) -> Callable[[str], Store]:
    """Store factory: one InfluxDB database (``cfg``), the town as the ``site`` tag. While
    InfluxDB is down, opening or writing fails and the messages stay on the bus (not
    acknowledged, redelivered) until it is back: nothing is lost."""
    def make(town: str) -> Store:
        return open_store(cfg, site=town)
    return make


class TelemetrySink:
    """Durable consumer ``durable`` of all towns' telemetry into ``store_for(town)``."""

    def __init__(self, bus: Bus, store_for: Callable[[str], Store], inbox: Inbox,
                 durable: str = "telemetry-sink") -> None:
        self.bus, self.store_for, self.inbox, self.durable = bus, store_for, inbox, durable
        self.stores: dict[str, Store] = {}
        self.messages = 0  #: messages written (first delivery of each id)
        self.points = 0
        self.rejected = 0  #: messages whose body could not be read (dropped, counted)
        self.last_at: float | None = None  #: loop time of the last written message

    def store(self, town: str) -> Store:
        if town not in self.stores:
            self.stores[town] = self.store_for(town)
        return self.stores[town]

    async def handle(self, env: Envelope) -> None:
        if self.inbox.seen(env.id):
            self.inbox.duplicates += 1
            return
        try:
            snaps = snapshots_of(env)
        except BusMessageError as e:
            self.rejected += 1
            log.warning("telemetry %s from %s dropped: %s", env.id, env.town, e)
            self.inbox.claim(env.id, env.town, env.kind, env.seq, iso(datetime.now(timezone.utc)), "rejected",
                             advance=False)
            return
        store = self.store(env.town)
        await asyncio.to_thread(store.write, snaps)  # idempotent per point: a crash here is retried
        if self.inbox.claim(env.id, env.town, env.kind, env.seq, iso(datetime.now(timezone.utc)), "stored",
                            advance=False):
            self.messages += 1
            self.points += len(snaps)
            self.last_at = asyncio.get_running_loop().time()

    async def run(self, stop: asyncio.Event, towns: list[str] | None = None) -> None:
        """Consume every town's telemetry (one durable consumer), or only ``towns`` (one
        durable consumer each: several sink processes share the towns between them; on the
        work-queue stream the two layouts cannot be mixed)."""
        # small fetches: every fetched message must be stored within the ack wait
        if not towns:
            await self.bus.consume(self.durable, all_towns("telemetry"), self.handle, stop=stop, batch=8)
            return
        await asyncio.gather(*(self.bus.consume(f"{self.durable}-{t}", subject(t, "telemetry"), self.handle,
                                                stop=stop, batch=8) for t in towns))

    def close(self) -> None:
        for s in self.stores.values():
            s.close()
        self.stores.clear()
