"""One running site in one process: the composition root.

It opens the clock, the store and telemetry pipeline, the device fleet and the ledger, builds
the services over them and starts/stops them; the services do the work::

    (devices or a simulated site) ──Modbus──► DriverFleet ──► TelemetryPipeline ──► Store
                                                   │ └──► Liveness (last good readings, lost devices)
                         Controller + APScheduler (intervals ÷ time scale) ──► leases
                           ▲ reserve_source                    │
                     ReservePolicy (floor in force, storm) ◄── JmaWatch (vpp.market.jma_watch)
                                                               │
                     FastAPI app (API + dashboard at /) over SiteServices, uvicorn on 127.0.0.1:<port>
                     VenSupervisor (vpp.openadr.supervisor) ──► the API's DispatchService

One clock: :meth:`Runtime.now`, the ``clock`` the caller gives (a simulated site's
:class:`~simulators.clock.SimClock` in ``vpp demo``, ``time_scale`` simulated seconds per wall
second), else the wall clock (UTC). The drivers stamp readings with it, the controller plans
and dispatches on it, the scheduler runs the jobs every ``plan_interval_s`` /
``dispatch_interval_s`` of it, and the API reports it. Age limits that protect against lost
devices are wall-clock limits scaled to it (polling stays on the wall clock).

Market wiring: the API's dispatch book is the controller's ``dispatch_source`` and accepted
awards (ledger) its ``commitments_source``, so every plan keeps them deliverable. With
``vpp.openadr.enabled`` the OpenADR VEN hands its events to the same dispatch service as REST;
with ``vpp.jma.enabled`` the JMA watch drives storm mode. The reserve in force lives in the
:class:`~vpp.control.reserve_policy.ReservePolicy` (restored from the ledger before the first
plan); the config is never changed.

Usage (``vpp demo`` builds a simulated site with :func:`vpp.commands.demo.simulated_runtime`)::

    rt = Runtime(config, weather="open-meteo")
    await rt.start()           # rt.url is the dashboard
    views.status(rt.services); rt.reserve.set_reserve(actor, floor_pct=40)
    await rt.stop()
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

import uvicorn

from drivers.protocols import Snapshot
from vpp.config import EmbeddedStorage, SiteConfig, updated
from vpp.control.freshness import STALE_INPUT_S
from vpp.control.liveness import Liveness
from vpp.control.operator import OperatorActions
from vpp.control.reserve_policy import ReservePolicy, restored_policy

__all__ = ["Runtime", "restored_policy", "resume_at", "with_data_dir"]

log = logging.getLogger(__name__)


class Clock(Protocol):
    def now(self) -> datetime: ...


class AppFactory(Protocol):
    """Builds the HTTP app over the running services (:func:`vpp.api.app.create_app`)."""

    def __call__(self, config: SiteConfig, services: Any, *, ledger: Any = None) -> Any: ...


class DeviceSite(Protocol):
    """Devices served in this process (a simulated site): started before the pollers,
    stopped after them."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


#: Wall seconds a finished slot's metered data gets to reach the store before it is settled [s].
SETTLE_GRACE_WALL_S = 10.0


class _QuietServer(uvicorn.Server):
    """uvicorn without its own signal handlers: the runtime's owner decides when to stop."""

    @contextlib.contextmanager
    def capture_signals(self):
        yield


def with_data_dir(config: SiteConfig, data_dir: str | Path) -> SiteConfig:
    """Copy of ``config`` whose embedded store, API keys and ledger live under ``data_dir``."""
    d = Path(data_dir)
    d.mkdir(parents=True, exist_ok=True)
    storage = {"path": str(d / "vpp.sqlite")} if isinstance(config.storage, EmbeddedStorage) else {}
    return updated(config, storage=storage,
                   api={"keys_path": str(d / "api_keys.json"), "ledger_path": str(d / "ledger.sqlite")})


def resume_at(config: SiteConfig, start: datetime | None = None) -> datetime:
    """Where a simulated run starts: ``start``, else now, or, on a ledger an earlier
    accelerated run left ahead of the wall clock, its newest record: simulated time never
    runs backwards across restarts, so awards and dispatches stay where they were in time and
    are not replayed."""
    if start is not None:
        return start
    now = datetime.now(timezone.utc)
    path = Path(config.api.ledger_path)
    if not path.exists():
        return now
    from vpp.market.ledger import Ledger

    led = Ledger.open(path)
    try:
        return max([now] + [r.ts for r in led.query(start=now)])
    finally:
        led.close()


class Runtime:
    """A running site (see module doc).

    Parameters
    ----------
    config : SiteConfig
        With the devices' real (or already moved) ports.
    clock : Clock, optional
        The site's clock (a simulated site's); default the wall clock.
    time_scale : float
        ``clock`` seconds per wall second [-] (the simulated clock's speed).
    site : DeviceSite, optional
        Devices served in this process (a simulated site on ``clock``), started first.
    data_dir : path, optional
        Store, keys and ledger under this directory (else the paths in ``config``).
    weather : str
        ``clear-sky`` (offline), ``open-meteo`` or a CSV (as ``vpp run --weather``).
    host, port : str, int
        HTTP bind address; ``port=0`` picks a free port (see :attr:`port` after start).
    first_run_s : tuple
        Delays [s] of the first forecast, plan and dispatch runs.
    serve_http : bool
        Serve the API and dashboard (off: controller only, no ledger).
    app_factory : callable, optional
        ``(config, services, ledger=) -> ASGI app`` (:func:`vpp.api.app.create_app`), required
        with ``serve_http``: the entry points hand the API to the runtime, which never imports it.
    jma_poll_s : float, optional
        Wall seconds between JMA fetches (default :data:`vpp.market.jma_watch.JMA_POLL_S`).
    """

    def __init__(self, config: SiteConfig, *, clock: Clock | None = None, time_scale: float = 1.0,
                 site: DeviceSite | None = None, data_dir: str | Path | None = None,
                 weather: str = "clear-sky", host: str = "127.0.0.1", port: int = 0,
                 first_run_s: tuple[float, float, float] = (0.0, 1.0, 2.0), serve_http: bool = True,
                 jma_poll_s: float | None = None, app_factory: AppFactory | None = None) -> None:
        if data_dir is not None:
            config = with_data_dir(config, data_dir)
        if time_scale <= 0:
            raise ValueError("time_scale must be > 0")
        if serve_http and app_factory is None:
            raise ValueError("serve_http needs an app_factory (vpp.api.app.create_app)")
        self.app_factory = app_factory
        self.config = config
        self.clock, self.site = clock, site
        self.time_scale = float(time_scale) if clock is not None else 1.0
        self.simulated = clock is not None
        self.weather, self.host, self.port = weather, host, port
        self.first_run_s, self.serve_http, self.jma_poll_s = first_run_s, serve_http, jma_poll_s
        self.store = self.pipeline = self.fleet = self.ledger = None
        self.csms = None  #: the OCPP central system (:class:`vpp.csms.server.CentralSystem`) with OCPP stations
        self.controller = self.scheduler = self.app = self.services = None
        self.reserve: ReservePolicy | None = None  #: the reserve in force
        self.operator: OperatorActions | None = None  #: alarm acknowledgements, overrides
        self.jma = None  #: the JMA watch (:class:`vpp.market.jma_watch.JmaWatch`) when enabled
        self.openadr = None  #: the VEN supervisor (:class:`vpp.openadr.supervisor.VenSupervisor`)
        self.half_hour = None  #: ECHONET smart meters' 30-minute readings (:class:`vpp.market.half_hour_collector.HalfHourCollector`)
        self.liveness = Liveness(config, self._latest, self.time_scale, driver_alarms=self._driver_alarms)
        #: called with every snapshot after the store gets it (an edge agent's telemetry)
        self.snapshot_listeners: list[Any] = []
        self._server: uvicorn.Server | None = None
        self._site_up = False
        self._tasks: list[asyncio.Task] = []
        self.stopping = asyncio.Event()

    # ------------------------------------------------------------------ clock
    def now(self) -> datetime:
        """The runtime's time (UTC): the given clock, else the wall clock. The controller, the
        API and every status view use it."""
        return self.clock.now() if self.clock is not None else datetime.now(timezone.utc)

    def monotonic(self) -> float:
        """Steady seconds in the runtime's time [s] (a simulated clock's own, else
        :func:`time.monotonic`): what durations and clock-step checks use."""
        mono = getattr(self.clock, "monotonic", None)
        return float(mono()) if callable(mono) else time.monotonic()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        from drivers.fleet import DriverFleet
        from vpp.forecast.weather import weather_provider
        from vpp.control.loop import Controller
        from vpp.control.scheduler import build_scheduler, guard_clock
        from vpp.storage import TelemetryPipeline, open_store

        cfg = self.config
        try:
            if self.site is not None:
                self._site_up = True  # a half-started site is stopped too
                await self.site.start()
            self.store = open_store(cfg.storage, site=cfg.site.name, connect=False)
            self.pipeline = TelemetryPipeline(self.store, cfg.storage)
            await self.pipeline.start()
            # readings carry the runtime's time, like everything the controller sees
            self.fleet = DriverFleet(cfg, clock=self.clock)
            await self.fleet.start(on_snapshot=self._on_snapshot)
            await self._start_csms()
            await self.liveness.first_readings(timeout_s=5.0)
            if self.serve_http:
                from vpp.market.ledger import Ledger
                self.ledger = Ledger.open(cfg.api.ledger_path, clock=self.now)
            self.reserve = ReservePolicy(cfg.reserve, self.now, ledger=self.ledger)
            self.controller = Controller(cfg, fleet=self.fleet, store=self.store, clock=self,
                                         weather=weather_provider(self.weather, cfg),
                                         stale_input_s=STALE_INPUT_S * self.time_scale,
                                         storm=self.reserve.storm, reserve_source=self.reserve.reserve,
                                         load_switch=self._load_switch())
            if self.csms is not None:
                self.csms.alarm_sink = _AlarmSink(self.controller.alarms, self.now)
            if self.ledger is not None:
                ledger = self.ledger
                # every outage start/end (and rejected meter reading) is on the record
                self.controller.on_outage_event = lambda ev: ledger.audit("controller", ev.kind, **ev.detail())
            self.operator = OperatorActions(cfg, self.controller.alarms, self.controller.overrides, self.now,
                                            ledger=self.ledger)
            self._restore_reserve()  # before the first plan: it must carry the restored floor
            self.scheduler = build_scheduler(self.controller, first_run_s=self.first_run_s,
                                             speed=self.time_scale)
            self.scheduler.start()
            self._tasks.append(asyncio.create_task(guard_clock(self.scheduler, self.controller), name="clock-guard"))
            self._tasks.append(asyncio.create_task(self.liveness.monitor(
                self.controller.alarms, self.now, self._store_metrics), name="liveness"))
            if cfg.vpp.jma.enabled:
                self._start_jma()
            self.services = self._services()
            if self.serve_http:
                await self._start_http()
            self.operator.restore_acks()
            if self.app is not None:
                self._schedule_settlement()
            if cfg.vpp.openadr.enabled:
                self._start_openadr()
        except BaseException:
            await self.stop()
            raise
        log.info("runtime up for %s (%d devices)%s", cfg.site.name, len(cfg.devices),
                 f", dashboard {self.url}" if self.serve_http else "")

    async def _start_csms(self) -> None:
        """The OCPP central system, when the config has OCPP stations; its chargers join the
        fleet (:class:`vpp.csms.fleet.CompositeFleet`)."""
        from vpp.csms.fleet import CompositeFleet
        from vpp.csms.server import CentralSystem

        if not self.config.ocpp.enabled or not any(d.protocol == "ocpp" for d in self.config.devices):
            return
        self.csms = CentralSystem(self.config, now=self.now, on_snapshot=self._on_snapshot,
                                  needs_sink=self._on_ev_needs)
        await self.csms.start()
        self.fleet = CompositeFleet(self.fleet, self.csms)
        attach = getattr(self.site, "attach_ocpp", None)
        if attach is not None:  # a simulated site's stations connect now
            attach(self.csms.url)

    def _on_ev_needs(self, charger_id: str, needs: dict) -> None:
        """A station reported what its car needs (OCPP 2.0.1 NotifyEVChargingNeeds)."""
        if self.controller is not None:
            self.controller.ev_needs.set_from_station(charger_id, needs, self.now())

    def _services(self):
        from vpp.services import LiveSite, SiteServices

        live = LiveSite(liveness=self.liveness, operator=self.operator, replan=self.replan,
                        stopping=self.stopping, pipeline_metrics=self._store_metrics_or_down,
                        jma=self.jma, time_scale=self.time_scale, simulated=self.simulated)
        # plan-based flexibility; the dispatch book becomes the controller's dispatch source
        return SiteServices(controller=self.controller, soc_of=self.liveness.soc_of, store=self.store,
                            config=self.config, reserve_policy=self.reserve, live=live,
                            jma_doc=lambda: self.jma.doc if self.jma is not None else None)

    async def _start_http(self) -> None:
        from vpp.http_socket import bind_socket

        self.app = self.app_factory(self.config, self.services, ledger=self.ledger)
        self.controller.commitments_source = self._commitments  # every plan keeps awards deliverable
        sock = bind_socket(self.host, self.port)  # TCP_NODELAY: no 40 ms keep-alive stall
        self.port = sock.getsockname()[1]
        self._server = _QuietServer(uvicorn.Config(self.app, log_level="warning", lifespan="on",
                                                   timeout_graceful_shutdown=3))
        task = asyncio.create_task(self._server.serve(sockets=[sock]), name="http")
        self._tasks.append(task)
        for _ in range(500):
            if self._server.started or task.done():
                break
            await asyncio.sleep(0.02)
        if not self._server.started:
            raise RuntimeError(f"HTTP server did not start on {self.host}:{self.port}")

    def _schedule_settlement(self) -> None:
        """The settlement job: every dispatch interval, record the performance of dispatches
        whose slot is over (once each; metered data gets :data:`SETTLE_GRACE_WALL_S` to land)."""
        from apscheduler.triggers.interval import IntervalTrigger

        from vpp.market.half_hour_collector import HalfHourCollector, half_hour_meters
        from vpp.market.metering import plan_importer
        from vpp.market.settlement_job import settle_due

        state, grace_s = self.app.state, SETTLE_GRACE_WALL_S * self.time_scale
        # ECHONET Lite smart meters: their fixed-time 30-minute readings (EA/EB) are the metering
        fleet = self.fleet
        meters = half_hour_meters({i: fleet.device(i) for i in getattr(fleet, "device_ids", [])})
        self.half_hour = HalfHourCollector(meters) if meters else None
        state.half_hour = None if self.half_hour is None else self.half_hour.log

        async def settle() -> None:
            book = getattr(state, "book", None)  # set by the app's lifespan
            if book is None:
                return
            try:
                if self.half_hour is not None:
                    failed = await self.half_hour.collect(self.now())
                    if failed:
                        self.controller.alarms.raise_("metering:half_hour", "30-minute readings not read: "
                                                      + ", ".join(sorted(failed)), self.now(), "warning")
                    else:
                        self.controller.alarms.clear("metering:half_hour", self.now(), "30-minute readings read")
                await asyncio.to_thread(settle_due, state.ledger, self.store, self.config, self.now(),
                                        list(book.dispatches.values()),
                                        plan_import=plan_importer(self.controller), grace_s=grace_s,
                                        half_hour=state.half_hour)
                self.controller.alarms.clear("settlement", self.now(), "settlement ran")
            except Exception as e:  # noqa: BLE001 - retried next interval, loudly
                log.exception("settlement job failed")
                self.controller.alarms.raise_("settlement", f"settlement job failed: {type(e).__name__}: {e}",
                                              self.now(), "warning")

        every = self.config.optimiser.dispatch_interval_s / self.time_scale
        self.scheduler.add_job(settle, IntervalTrigger(seconds=every), id="settlement")

    def _commitments(self, start: datetime, horizon: Any) -> Any:
        """Accepted awards from the ledger as the plan's commitments (plan thread; the ledger
        store is locked)."""
        from vpp.market.commitments import awards_commitments

        if self.ledger is None:
            return None
        return awards_commitments(self.ledger.query(kinds=["award"]), horizon, self.config.vpp.duration_s)

    def _restore_reserve(self) -> None:
        """Replay the ledger's reserve policy (:meth:`ReservePolicy.restore`): from the open
        ledger, or without HTTP from the ledger file if there is one."""
        if self.ledger is not None:
            self.reserve.restore(self.ledger, self.controller.alarms)
            return
        path = Path(self.config.api.ledger_path)
        if not path.exists():
            return
        from vpp.market.ledger import Ledger

        led = Ledger.open(path, clock=self.now)
        try:
            self.reserve.restore(led, self.controller.alarms)
        finally:
            led.close()

    def _start_jma(self) -> None:
        from vpp.market.jma_watch import JMA_POLL_S, JmaWatch

        self.jma = JmaWatch(self.config, self.reserve, self.controller.alarms, self.now, self.replan,
                            self.operator.audit, poll_s=self.jma_poll_s or JMA_POLL_S)
        self._tasks.append(asyncio.create_task(self.jma.run(), name="jma"))

    def _start_openadr(self) -> None:
        from vpp.openadr.supervisor import VenSupervisor

        oc = self.config.vpp.openadr
        if self.app is None:
            msg = "OpenADR VEN not started: it needs the HTTP API's dispatch service (serve_http)"
            log.error(msg)
            self.controller.alarms.raise_("openadr", msg, self.now(), "warning")
            return
        self.openadr = VenSupervisor(oc, oc.ven_name or self.config.site.name, self.app.state.dispatch,
                                     self.liveness.site_telemetry, self.controller.alarms, self.now,
                                     self.time_scale)
        self._tasks.append(asyncio.create_task(self.openadr.run(), name="openadr"))

    async def replan(self) -> None:
        """Re-plan now (:meth:`Controller.replan`: one plan at a time, solved in a thread,
        applied on the event loop)."""
        await self.controller.replan()

    def _load_switch(self):
        """The load groups' relays: the simulated site's switchable groups when simulating;
        on hardware none yet (no relay driver: the shed state is reported, not switched)."""
        site = self.site
        if site is not None and getattr(site, "switched", None):
            return site.switch_load
        return None

    async def stop(self) -> None:
        """Stop everything (OpenADR VEN, HTTP, scheduler, batteries idle, pollers, store,
        ledger, in-process devices)."""
        self.stopping.set()
        if self._server is not None:
            self._server.should_exit = True
        for t in self._tasks:
            if t.get_name() != "http":
                t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(t, 10)
        self._tasks.clear()
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
            self.scheduler = None
        if self.fleet is not None:
            fleet, lease_s = self.fleet, self.config.optimiser.lease_s

            async def idle(dev_id: str) -> None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(fleet.device(dev_id).set_power(0.0, revert_s=lease_s), 3)
            # all batteries at once: a town's offline homes would each cost the whole timeout
            await asyncio.gather(*(idle(b.id) for b in self.config.devices_of("battery")))
            await self.fleet.stop()
            self.fleet = self.csms = None
        if self.pipeline is not None:
            await self.pipeline.stop()
            self.pipeline = None
        if self.store is not None:
            self.store.close()
            self.store = None
        if self.ledger is not None:
            self.ledger.close()
            self.ledger = None
        if self._site_up:
            self._site_up = False
            await self.site.stop()

    async def __aenter__(self) -> "Runtime":
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    # ------------------------------------------------------------------ telemetry
    def _latest(self, dev_id: str) -> Snapshot | None:
        return self.fleet.latest(dev_id) if self.fleet is not None else None

    def _driver_alarms(self) -> dict[str, dict[str, str]]:
        return self.fleet.device_alarms() if self.fleet is not None else {}

    def _on_snapshot(self, snap: Snapshot) -> None:
        self.liveness.on_snapshot(snap)
        self.pipeline.submit(snap)
        for listener in self.snapshot_listeners:
            listener(snap)

    def _store_metrics(self) -> dict[str, Any] | None:
        return self.pipeline.metrics if self.pipeline is not None else None

    def _store_metrics_or_down(self) -> dict[str, Any]:
        return self._store_metrics() or {"store_up": False}

    @property
    def last_good(self) -> dict[str, Snapshot]:
        """Each device's last GOOD snapshot (:attr:`Liveness.last_good`)."""
        return self.liveness.last_good

    def site_telemetry(self) -> tuple[float, float]:
        """(site battery power [W] > 0 discharge, capacity-weighted SoC [fraction]): what
        the VEN reports."""
        return self.liveness.site_telemetry()


class _AlarmSink:
    """The central system's alarms into the controller's (stamped with the runtime's time)."""

    def __init__(self, alarms: Any, now: Callable[[], datetime]) -> None:
        self.alarms, self.now = alarms, now

    def raise_(self, key: str, reason: str) -> None:
        self.alarms.raise_(key, reason, self.now())

    def clear(self, key: str, reason: str) -> None:
        self.alarms.clear(key, self.now(), reason)
