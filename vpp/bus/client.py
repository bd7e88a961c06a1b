"""The bus client: one NATS connection with JetStream, reconnecting for ever.

* :meth:`Bus.connect` retries until the server answers (an agent may start before it);
  afterwards nats-py reconnects by itself and :attr:`Bus.connected` says whether it is up.
* :meth:`Bus.publish` sends one :class:`~vpp.bus.envelope.Envelope` with its id as
  ``Nats-Msg-Id`` and returns only once JetStream stored it (PubAck); it raises while the
  server is away, so the caller (:class:`~vpp.bus.outbox.Outbox`) keeps the message.
* :meth:`Bus.consume` runs a durable pull consumer (explicit acks): a handler that raises
  leaves the message un-acked and it is redelivered after ``ack_wait``; a message that cannot
  be decoded is counted and acked (never redelivered for ever).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import nats
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from vpp.bus.envelope import BusMessageError, Envelope, decode
from vpp.bus.subjects import stream_configs

log = logging.getLogger(__name__)

Handler = Callable[[Envelope], Awaitable[None]]



async def cancel_tasks(tasks: list[asyncio.Task]) -> None:
    """Cancel ``tasks``, wait for each to end (whatever it raised) and empty the list."""
    for t in tasks:
        t.cancel()
    for t in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await t
    tasks.clear()

class BusUnavailable(ConnectionError):
    """The bus is not reachable right now (retry later)."""


class Bus:
    def __init__(self, url: str, name: str = "vpp", *, publish_timeout_s: float = 2.0,
                 ack_wait_s: float = 10.0) -> None:
        self.url, self.name, self.publish_timeout_s = url, name, publish_timeout_s
        #: seconds before an unacknowledged delivery is redelivered (a consumer that died)
        self.ack_wait_s = ack_wait_s
        self.nc = None
        self.js = None
        self.malformed = 0  #: messages dropped because they could not be decoded
        self.handler_failures = 0  #: deliveries a handler failed on (left for redelivery)
        self._closing = False

    @property
    def connected(self) -> bool:
        return self.nc is not None and self.nc.is_connected

    async def connect(self, timeout_s: float | None = None) -> "Bus":
        """Connect (retrying every 0.2 s until ``timeout_s``, default for ever) and make sure
        both streams exist."""
        loop = asyncio.get_running_loop()
        end = None if timeout_s is None else loop.time() + timeout_s
        while True:
            try:
                self.nc = await nats.connect(self.url, name=self.name, max_reconnect_attempts=-1,
                                             reconnect_time_wait=0.2, connect_timeout=1,
                                             ping_interval=2, max_outstanding_pings=2,
                                             error_cb=self._quiet, disconnected_cb=self._disc,
                                             reconnected_cb=self._reconn)
                break
            except Exception as e:  # noqa: BLE001 - the server is not there yet: retry
                if end is not None and loop.time() >= end:
                    raise BusUnavailable(f"no NATS server at {self.url}: {e}") from e
                await asyncio.sleep(0.2)
        self.js = self.nc.jetstream(timeout=self.publish_timeout_s)
        await self.ensure_streams()
        return self

    async def _quiet(self, e: Exception) -> None:
        log.debug("%s: nats: %s", self.name, e)

    async def _disc(self) -> None:
        if not self._closing:
            log.info("%s: bus disconnected", self.name)

    async def _reconn(self) -> None:
        log.info("%s: bus reconnected", self.name)

    async def ensure_streams(self) -> None:
        for cfg in stream_configs():
            try:
                await self.js.stream_info(cfg["name"])
            except NotFoundError:
                with contextlib.suppress(Exception):  # another client may create it first
                    await self.js.add_stream(**cfg)
                await self.js.stream_info(cfg["name"])

    async def publish(self, env: Envelope) -> bool:
        """Publish and wait for JetStream's ack; returns whether the server saw the id
        already (a de-duplicated re-send). Raises :class:`BusUnavailable`."""
        if not self.connected:
            raise BusUnavailable("bus disconnected")
        try:
            ack = await self.js.publish(env.subject, env.encode(), headers=env.headers())
        except Exception as e:  # noqa: BLE001 - timeout, no responders, reconnecting
            raise BusUnavailable(f"publish {env.subject} failed: {type(e).__name__}: {e}") from e
        return bool(ack.duplicate)

    async def publish_raw(self, subject: str, payload: bytes, msg_id: str) -> bool:
        """:meth:`publish` of an already encoded envelope (the outbox keeps the bytes)."""
        if not self.connected:
            raise BusUnavailable("bus disconnected")
        try:
            ack = await self.js.publish(subject, payload, headers={"Nats-Msg-Id": msg_id})
        except Exception as e:  # noqa: BLE001 - timeout, no responders, reconnecting
            raise BusUnavailable(f"publish {subject} failed: {type(e).__name__}: {e}") from e
        return bool(ack.duplicate)

    async def consume(self, durable: str, subject: str, handler: Handler, *, stop: asyncio.Event,
                      stream: str | None = None,
                      batch: int = 100, fetch_timeout_s: float = 1.0, drain_timeout_s: float = 0.05) -> None:
        """Run the durable pull consumer ``durable`` on ``subject`` until ``stop``: each message
        is decoded and handed to ``handler``, then acked (synchronously: the ack is on the
        server before the next message is fetched).

        Fetching adapts to the load: idle, it waits for one message (returned the moment it
        arrives); after a delivery it fetches up to ``batch`` with a short wait. (A lingering
        pull for many messages would hold the first one until the batch fills or times out.)"""
        psub = None
        busy = False
        while not stop.is_set():
            try:
                if psub is None:
                    psub = await self.js.pull_subscribe(
                        subject, durable=durable, stream=stream,
                        config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, ack_wait=self.ack_wait_s,
                                              deliver_policy=DeliverPolicy.ALL, max_ack_pending=10_000))
                msgs = await (psub.fetch(batch, timeout=drain_timeout_s) if busy
                              else psub.fetch(1, timeout=fetch_timeout_s))
                busy = True
            except (NatsTimeout, asyncio.TimeoutError):
                busy = False
                continue
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - server away or consumer gone: retry
                log.debug("%s: fetch %s: %s", self.name, durable, e)
                if psub is not None:
                    with contextlib.suppress(Exception):
                        await psub.unsubscribe()
                psub = None
                await asyncio.sleep(0.2)
                continue
            for m in msgs:
                try:
                    env = decode(m.data)
                except BusMessageError as e:
                    self.malformed += 1
                    log.warning("%s: dropped malformed message on %s: %s", self.name, m.subject, e)
                    with contextlib.suppress(Exception):
                        await m.ack()
                    continue
                try:
                    await handler(env)
                except asyncio.CancelledError:
                    raise
                except Exception:  # noqa: BLE001 - not acked: redelivered after ack_wait
                    self.handler_failures += 1
                    log.exception("%s: handler failed on %s (will be redelivered)", self.name, env.id)
                    continue
                with contextlib.suppress(Exception):  # an ack lost here means a redelivery: idempotent
                    await m.ack_sync(timeout=2.0)

    async def close(self) -> None:
        self._closing = True
        if self.nc is not None:
            with contextlib.suppress(Exception):
                await self.nc.close()
        self.nc = self.js = None
