"""One running site in one process: (simulated site) + store + pollers + controller + HTTP.

Composition (the same pieces as ``vpp run``, plus the API and dashboard)::

    SimulatedSite (optional, SimClock × speed) ──Modbus TCP──► DriverFleet ──► TelemetryPipeline ──► Store
                                                                   │
                          Controller + APScheduler (intervals ÷ speed) ──► leases
                                                                   │
                          FastAPI app (API + dashboard at /) on uvicorn, 127.0.0.1:<port>
                          OpenADR VEN (optional) ──► the API's DispatchService

One clock: :meth:`Runtime.now`. With ``simulate=True`` it is the site's
:class:`~simulators.clock.SimClock` (``speed`` simulated seconds per wall second): the
drivers stamp readings with it, the controller plans and dispatches on it, the scheduler runs
the jobs every ``plan_interval_s`` / ``dispatch_interval_s`` *simulated* seconds (at 60× the
60 s dispatch runs every wall second), and the API (status, plan, flexibility, ledger) reports
it. Age limits that protect against lost devices (stale input, lost device) are wall-clock
limits scaled to simulated seconds, because polling stays on the wall clock. Without a
simulator the clock is the wall clock (UTC).

Market wiring: the API's dispatch book is the controller's ``dispatch_source``, and accepted
awards (ledger) its ``commitments_source``, so every plan keeps them deliverable. With
``vpp.openadr.enabled`` an OpenADR 2.0b VEN (:mod:`vpp.openadr.ven`) registers with the VTN
and hands its events to the same dispatch service as REST; a VTN outage raises the
``openadr`` alarm and is retried, it never stops the runtime. OpenADR events carry absolute
times: against a simulated clock the VTN must speak the site's time (openleadr judges event
status by the wall clock, so keep simulated time ahead of it).

JMA warnings: with ``vpp.jma.enabled`` the runtime fetches ``vpp.jma.url`` (else the area's
JMA office document) every :data:`JMA_POLL_S` wall seconds (JMA publishes on the wall clock;
the decision itself is taken at :meth:`Runtime.now`). The document goes to the bid export
(``services.jma_doc``: its warning windows remove day-ahead slots) and
:func:`vpp.market.jma_reserve.jma_reserve` drives storm mode: a raise code in force for
``area_code`` (or forecast within ``reserve.storm_lead_h``) switches it on with the warnings
as its reason, their lifting switches it off again (only a storm mode the watch raised; an
operator's is left alone). Each change is a ``policy_change`` ledger record by actor ``jma``
with its reason, followed by a re-plan; flexibility goes unavailable (``storm_mode``) while
it lasts; ``status()["jma"]`` shows the last report, decision and fetch error. A failed fetch
or a malformed document raises the ``jma`` alarm and keeps the last good document.

Reserve policy across restarts: the operator's floor and storm mode (``set_reserve``) and the
JMA watch's storm mode live in the ledger's ``reserve`` ``policy_change`` records; at start,
before the first plan, the newest one is replayed (:meth:`Runtime._restore_reserve`), audited
``reserve_restored`` and shown in ``status()["reserve_restored"]``, so a restart or a crash
never drops the reserve back to the config default. A restored JMA storm stays the watch's
(its next poll keeps or lifts it). The operator's last explicit floor wins over a later edit of
``reserve.floor_pct`` in the config file (change it through the API).

The status functions below are what the status routes and the dashboard serve: all powers in
kW, battery > 0 discharge, grid > 0 import, SoC in %.

Usage::

    rt = Runtime(config, simulate=True, speed=60, data_dir="var/demo")
    await rt.start()           # rt.url is the dashboard
    rt.status(); rt.plan(); rt.set_reserve(actor, floor_pct=40)
    await rt.stop()
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import uvicorn

from drivers.protocols import Quality, Snapshot
from vpp.config import EmbeddedStorage, SiteConfig, updated
from vpp.errors import ServiceError

log = logging.getLogger(__name__)

#: A device whose last good reading is older than this many poll intervals is "lost" [-].
LOST_AFTER_POLLS = 5.0
#: ...but never sooner than this [s].
LOST_MIN_S = 5.0
#: The controller ignores readings older than this many wall seconds [s].
STALE_INPUT_S = 30.0
#: OpenADR: the VTN counts as down after this many poll intervals without an answer [-]...
VTN_DOWN_POLLS = 3.0
#: ...and the VEN registers again after this many [-] (a restarted VTN may have lost it).
VTN_REREGISTER_POLLS = 10.0
#: Longest wait [s] between registration attempts while the VTN is unreachable.
VTN_RETRY_MAX_S = 300.0
#: JMA warnings: wall seconds between fetches of ``vpp.jma.url`` (JMA updates them as issued)...
JMA_POLL_S = 180.0
#: ...and the HTTP timeout of one fetch [s].
JMA_TIMEOUT_S = 10.0


class _QuietServer(uvicorn.Server):
    """uvicorn without its own signal handlers: the runtime's owner decides when to stop."""

    @contextlib.contextmanager
    def capture_signals(self):
        yield


@dataclass
class Ack:
    raised_at: datetime
    by: str
    at: datetime
    #: restored from the ledger at start: covers the alarm's first raise after the restart
    restored: bool = False


def _kw(w: float | None) -> float | None:
    return None if w is None or not math.isfinite(w) else round(w / 1000.0, 2)


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.astimezone(timezone.utc).isoformat(timespec="seconds")


def with_data_dir(config: SiteConfig, data_dir: str | Path) -> SiteConfig:
    """Copy of ``config`` whose embedded store, API keys and ledger live under ``data_dir``."""
    d = Path(data_dir)
    d.mkdir(parents=True, exist_ok=True)
    storage = {"path": str(d / "vpp.sqlite")} if isinstance(config.storage, EmbeddedStorage) else {}
    return updated(config, storage=storage,
                   api={"keys_path": str(d / "api_keys.json"), "ledger_path": str(d / "ledger.sqlite")})


def restored_policy(recs: list[Any], default_target_pct: float) -> dict[str, Any]:
    """The reserve policy in force after the ``reserve`` ``policy_change`` records ``recs``
    (ledger order): ``floor_pct`` [%], ``storm`` (bool) and, when on, ``target`` [fraction],
    ``deadline`` and ``activated_at`` (tz-aware UTC), ``reason`` and ``set_by`` (actor).

    The newest record's ``new`` state is the policy. Records written before the storm's
    reason, activation and actor were recorded fall back to what :meth:`Runtime.set_reserve`
    and the JMA watch would have set: the reason, time and actor of the record that switched
    the storm on (or moved its deadline or target), an empty reason being ``operator
    <actor>``. Raises ``KeyError`` / ``TypeError`` / ``ValueError`` on a record
    that cannot be read (an out-of-range floor or target, a deadline without time zone)."""
    set_by = set_at = set_reason = None
    for r in recs:
        o, n = r.payload.get("old") or {}, r.payload.get("new") or {}
        if n.get("storm") and (not o.get("storm") or o.get("storm_deadline") != n.get("storm_deadline")
                               or o.get("storm_target_pct") != n.get("storm_target_pct")):
            set_by, set_at, set_reason = r.actor, r.ts, r.payload.get("reason")
    last = recs[-1]
    n = last.payload["new"]
    floor = float(n["floor_pct"])
    if not (math.isfinite(floor) and 0 <= floor <= 100):
        raise ValueError(f"floor_pct {floor} outside 0–100 %")
    out: dict[str, Any] = {"floor_pct": floor, "storm": bool(n.get("storm"))}
    if not out["storm"]:
        return out
    target = float(n.get("storm_target_pct", default_target_pct))
    if not (math.isfinite(target) and 0 <= target <= 100):
        raise ValueError(f"storm_target_pct {target} outside 0–100 %")
    deadline = datetime.fromisoformat(n["storm_deadline"])
    if deadline.tzinfo is None:
        raise ValueError(f"storm_deadline {n['storm_deadline']!r} has no time zone")
    actor = n.get("storm_set_by") or set_by or last.actor
    act = datetime.fromisoformat(n["storm_activated_at"]) if n.get("storm_activated_at") else (set_at or last.ts)
    if act.tzinfo is None:
        raise ValueError(f"storm_activated_at {act} has no time zone")
    reason = n.get("storm_reason") or set_reason or f"operator {actor}"
    out.update(target=target / 100.0, deadline=deadline.astimezone(timezone.utc),
               activated_at=act.astimezone(timezone.utc), reason=reason, set_by=actor)
    return out


class Runtime:
    """A running site (see module doc).

    Parameters
    ----------
    config : SiteConfig
    simulate : bool
        Start a :class:`simulators.site.SimulatedSite` for the devices (TCP ports are moved
        to free loopback ports first).
    speed : float
        Simulated seconds per wall second for the simulated site.
    sim_start : datetime, optional
        Simulated time at start (default: now, or later: see :meth:`resume_at`).
    data_dir : path, optional
        Store, keys and ledger under this directory (else the paths in ``config``).
    weather : str
        ``clear-sky`` (offline), ``open-meteo`` or a CSV (as ``vpp run --weather``).
    host, port : str, int
        HTTP bind address; ``port=0`` picks a free port (see :attr:`port` after start).
    first_run_s : tuple
        Delays [s] of the first forecast, plan and dispatch runs.
    serve_http : bool
        Serve the API and dashboard (off: controller only).
    """

    def __init__(self, config: SiteConfig, *, simulate: bool = False, speed: float = 60.0,
                 sim_start: datetime | None = None, data_dir: str | Path | None = None,
                 weather: str = "clear-sky", host: str = "127.0.0.1", port: int = 0,
                 first_run_s: tuple[float, float, float] = (0.0, 1.0, 2.0), serve_http: bool = True,
                 seed: int = 0) -> None:
        if data_dir is not None:
            config = with_data_dir(config, data_dir)
        if simulate:
            from simulators.site import with_free_ports
            config = with_free_ports(config)
        self.config = config
        self.simulate, self.speed, self.sim_start, self.seed = simulate, speed, sim_start, seed
        self.weather, self.host, self.port = weather, host, port
        self.first_run_s, self.serve_http = first_run_s, serve_http
        self.site = self.clock = self.store = self.pipeline = self.fleet = None
        self.controller = self.scheduler = self.app = None
        self.ven = None  #: the OpenADR VEN (:class:`vpp.openadr.ven.Ven`) while registered
        self.ven_results: dict[str, dict[str, Any]] = {}  #: per OpenADR event: dispatches, opt
        self.jma_doc: dict[str, Any] | None = None  #: the last JMA warning document fetched
        self.jma_state: dict[str, Any] | None = None  #: what the JMA watch saw and decided (status)
        self.jma_poll_s = JMA_POLL_S  #: wall seconds between JMA fetches
        self._jma_key: tuple | None = None  #: the decision last applied (act on changes only)
        self._jma_storm: str | None = None  #: reason of the storm mode the JMA watch raised
        self.storm_set_by: str | None = None  #: actor of the storm mode in force (operator or ``jma``)
        #: the reserve policy restored from the ledger at start (None: config defaults)
        self.reserve_restored: dict[str, Any] | None = None
        self._server: uvicorn.Server | None = None
        self._tasks: list[asyncio.Task] = []
        self.acks: dict[str, Ack] = {}
        self.last_good: dict[str, Snapshot] = {}
        self.readings = 0  #: snapshots received (the stream pushes when this changes)
        self.newest_wall: datetime | None = None  #: wall time the newest good reading arrived
        self.stopping = asyncio.Event()
        self._replan_lock = asyncio.Lock()

    # ------------------------------------------------------------------ lifecycle
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    async def start(self) -> None:
        from drivers.fleet import DriverFleet
        from vpp.commands.plan import weather_provider
        from vpp.control.loop import Controller, SystemClock
        from vpp.control.scheduler import build_scheduler
        from vpp.storage import TelemetryPipeline, open_store

        cfg = self.config
        try:
            if self.simulate:
                from simulators.clock import SimClock
                from simulators.site import SimulatedSite
                self.clock = SimClock(self.resume_at(), speed=self.speed)
                self.site = SimulatedSite(cfg, self.clock, seed=self.seed)
                await self.site.start()
            self.store = open_store(cfg.storage, site=cfg.site.name, connect=False)
            self.pipeline = TelemetryPipeline(self.store, cfg.storage)
            await self.pipeline.start()
            # simulated runs: readings carry simulated time, like everything the controller sees
            self.fleet = DriverFleet(cfg, clock=self.clock if self.simulate else None)
            await self.fleet.start(on_snapshot=self._on_snapshot)
            await self._first_readings(timeout_s=5.0)
            self.controller = Controller(cfg, fleet=self.fleet, store=self.store,
                                         clock=self.clock if self.clock is not None else SystemClock(),
                                         weather=weather_provider(self.weather, cfg),
                                         stale_input_s=STALE_INPUT_S * self.time_scale)
            self._restore_reserve()  # before the first plan: it must carry the restored floor
            self.scheduler = build_scheduler(self.controller, first_run_s=self.first_run_s,
                                             speed=self.time_scale)
            self.scheduler.start()
            self._tasks.append(asyncio.create_task(self._monitor(), name="runtime-monitor"))
            if self.serve_http:
                await self._start_http()
            self._restore_acks()
            if cfg.vpp.openadr.enabled:
                self._start_openadr()
            if cfg.vpp.jma.enabled:
                self._tasks.append(asyncio.create_task(self._jma_watch(), name="jma"))
        except BaseException:
            await self.stop()
            raise
        log.info("runtime up for %s (%d devices)%s", cfg.site.name, len(cfg.devices),
                 f", dashboard {self.url}" if self.serve_http else "")

    async def _start_http(self) -> None:
        from vpp.api.app import SiteServices, create_app
        from vpp.api.server import bind_socket

        def soc_of(dev_id: str) -> float:
            s = self.last_good.get(dev_id)
            return float(s.values.get("soc", 0.0)) if s is not None else 0.0

        # plan-based flexibility; the dispatch book becomes the controller's dispatch source
        services = SiteServices(controller=self.controller, soc_of=soc_of, store=self.store)
        services.jma_doc = lambda: self.jma_doc  # the bid export removes warning windows
        self.app = create_app(self.config, services)
        self.app.state.runtime = self
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

    def _commitments(self, start: datetime, horizon: Any) -> Any:
        """Accepted awards from the ledger as the plan's commitments (plan thread; the ledger
        store is locked)."""
        from vpp.market.commitments import awards_commitments

        led = self._ledger()
        if led is None:
            return None
        return awards_commitments(led.query(kinds=["award"]), horizon, self.config.vpp.duration_s)

    def resume_at(self) -> datetime:
        """Where a simulated run starts: ``sim_start``, else now, or, on a data dir whose
        ledger an earlier accelerated run left ahead of the wall clock, its newest record:
        simulated time never runs backwards across restarts, so awards and dispatches stay
        where they were in time and are not replayed."""
        if self.sim_start is not None:
            return self.sim_start
        now = datetime.now(timezone.utc)
        path = Path(self.config.api.ledger_path)
        if not path.exists():
            return now
        from vpp.market.ledger import Ledger

        led = Ledger.open(path)
        try:
            return max([now] + [r.ts for r in led.query(start=now)])
        finally:
            led.close()

    def _start_openadr(self) -> None:
        oc = self.config.vpp.openadr
        dispatch = getattr(self.app.state, "dispatch", None) if self.app is not None else None
        if dispatch is None:
            msg = "OpenADR VEN not started: it needs the HTTP API's dispatch service (serve_http)"
            log.error(msg)
            self.controller.alarms.raise_("openadr", msg, self.now(), "warning")
            return
        self._tasks.append(asyncio.create_task(self._openadr(dispatch, oc), name="openadr"))

    def site_telemetry(self) -> tuple[float, float]:
        """(site battery power [W] > 0 discharge, capacity-weighted SoC [fraction]) from the
        latest good readings (what the VEN reports)."""
        power = soc_wh = cap = 0.0
        for b in self.config.devices_of("battery"):
            snap = self.last_good.get(b.id)
            if snap is None:
                continue
            power += float(snap.values.get("power_w", 0.0))
            soc = snap.values.get("soc", math.nan)
            if math.isfinite(soc):
                soc_wh += soc * b.ratings.capacity_wh
                cap += b.ratings.capacity_wh
        return power, (soc_wh / cap if cap else 0.0)

    async def _openadr(self, dispatch: Any, oc: Any) -> None:
        """Keep the VEN registered with the VTN: register, poll (at most every
        ``poll_interval_s``), report telemetry. A VTN that does not answer raises the
        ``openadr`` alarm and is retried with back-off while the rest of the runtime carries
        on; after a long silence the VEN registers again. Events go to ``dispatch`` (the
        API's :class:`~vpp.market.dispatch.DispatchService`, same rules as REST)."""
        from vpp.openadr.ven import Ven

        name = oc.ven_name or self.config.site.name
        poll_s = float(oc.poll_interval_s)
        retry_s = poll_s
        loop = asyncio.get_running_loop()
        alarms = self.controller.alarms
        while True:
            ven = Ven(dispatch, oc.vtn_url, name, self.site_telemetry,
                      report_every=timedelta(seconds=oc.report_interval_s), cert=oc.cert, key=oc.key,
                      vtn_fingerprint=oc.vtn_fingerprint, show_fingerprint=False)
            ven.results = self.ven_results  # one memory of events across re-registrations
            heard = [loop.time()]
            ven.client.add_hook("after_parse_xml", lambda *a: heard.__setitem__(0, loop.time()))
            try:
                why = "no registration from the VTN"
                try:
                    await asyncio.wait_for(ven.start(), timeout=60.0)
                    registered = ven.client.registration_id is not None
                except (asyncio.TimeoutError, OSError) as e:
                    registered, why = False, f"{type(e).__name__}: {e}"
                if not registered:
                    log.warning("OpenADR VTN %s unavailable (%s); retrying in %.0f s", oc.vtn_url, why, retry_s)
                    alarms.raise_("openadr", f"OpenADR VTN {oc.vtn_url} unavailable ({why}); retrying",
                                  self.now(), "warning")
                    await self._stop_ven(ven)
                    await asyncio.sleep(retry_s)
                    retry_s = min(2 * retry_s, max(VTN_RETRY_MAX_S, poll_s))
                    continue
                retry_s = poll_s
                self.ven = ven
                every = self._set_poll(ven, poll_s)
                alarms.clear("openadr", self.now(), f"registered with {oc.vtn_url} as {name}")
                log.info("OpenADR VEN %s registered with %s (polling every %.0f s)", name, oc.vtn_url, every)
                while True:
                    await asyncio.sleep(every)
                    silent = loop.time() - heard[0]
                    if silent > VTN_REREGISTER_POLLS * every:
                        log.warning("OpenADR VTN silent for %.0f s: registering again", silent)
                        break
                    if silent > VTN_DOWN_POLLS * every:
                        since = self.now() - timedelta(seconds=silent * self.time_scale)
                        alarms.raise_("openadr", f"OpenADR VTN {oc.vtn_url} not answering since {_iso(since)}",
                                      self.now(), "warning")
                    else:
                        alarms.clear("openadr", self.now(), "VTN answering")
            except asyncio.CancelledError:
                self.ven = None
                await self._stop_ven(ven)
                raise
            except Exception as e:  # noqa: BLE001 - the VEN must not take the runtime down
                log.exception("OpenADR VEN failed")
                alarms.raise_("openadr", f"OpenADR VEN failed: {type(e).__name__}: {e}", self.now(), "warning")
                await asyncio.sleep(retry_s)
            self.ven = None
            await self._stop_ven(ven)

    async def _jma_watch(self) -> None:
        """Fetch the JMA warning document (``vpp.jma.url``, else the area's JMA office) every
        :attr:`jma_poll_s` wall seconds, keep it for the bid export (``services.jma_doc``) and
        apply :func:`vpp.market.jma_reserve.jma_reserve` to storm mode. A failed fetch or a
        malformed document raises the ``jma`` alarm and keeps the last good document (and
        the decision made from it); nothing here stops the runtime."""
        from vpp.market.jma import fetch_warning_doc

        jc = self.config.vpp.jma
        where = jc.url or f"JMA office of {jc.area_code}"
        alarms = self.controller.alarms
        self.jma_state = {"enabled": True, "url": jc.url, "area_code": jc.area_code, "report": None,
                          "fetched_at": None, "raise": False, "reason": None, "error": None}
        while True:
            try:
                doc = await asyncio.to_thread(fetch_warning_doc, jc, timeout_s=JMA_TIMEOUT_S)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - HTTP, JSON or format: keep the last document
                err = f"{type(e).__name__}: {e}"
                self.jma_state["error"] = err
                kept = self.jma_state["report"]
                alarms.raise_("jma", f"JMA warnings from {where} unavailable ({err}); "
                                     f"keeping {'the report of ' + kept if kept else 'no report'}", self.now(), "warning")
            else:
                self.jma_doc = doc
                self.jma_state.update(report=doc.get("reportDatetime"), error=None,
                                      fetched_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
                alarms.clear("jma", self.now(), "JMA warnings answering")
                try:
                    await self._apply_jma(doc)
                except asyncio.CancelledError:
                    raise
                except Exception as e:  # noqa: BLE001 - one bad document must not end the watch
                    log.exception("JMA warning document not applied")
                    alarms.raise_("jma", f"JMA warning document not applied: {type(e).__name__}: {e}",
                                  self.now(), "warning")
            await asyncio.sleep(self.jma_poll_s)

    async def _apply_jma(self, doc: dict[str, Any]) -> None:
        """Storm mode from one JMA document: raise it on a warning (reason = the warnings),
        switch off a storm mode this watch raised once they are lifted; an operator's storm
        mode is left alone. Each change is a ``policy_change`` ledger record by ``jma`` with
        its reason, and a re-plan (flexibility and bids follow storm mode)."""
        from vpp.market.jma_reserve import jma_reserve

        now = self.now()
        r = self.config.reserve
        d = jma_reserve(doc, self.config.vpp.jma, now, timedelta(hours=r.storm_lead_h))
        self.jma_state.update({"raise": d.raise_, "reason": d.reason})
        if d.key == self._jma_key:
            return
        storm = self.controller.storm
        ours = self._jma_storm is not None and storm.active and storm.reason == self._jma_storm
        old = self._reserve_policy()
        if d.raise_ and storm.active and not ours:
            self._audit("jma", "jma_warning", reason=d.reason, report=d.report,
                        note="operator storm mode active: left as it is")
            self._jma_key = d.key
            return
        if d.raise_:
            # re-raising its own storm (new deadline, or the first poll after a restart that
            # restored it) keeps the ramp's start: the floor reached so far is not dropped
            since = storm.activated_at if ours and storm.activated_at is not None else now
            storm.on(now, r.storm_target_pct / 100.0, d.deadline.astimezone(timezone.utc), d.reason)
            storm.activated_at = min(since, now)
            self._jma_storm, self.storm_set_by = d.reason, "jma"
        elif ours:
            storm.off()
            self._jma_storm = self.storm_set_by = None
        else:
            self._jma_key = d.key
            return
        self._jma_key = d.key
        new = self._reserve_policy()
        led = self._ledger()
        if led is not None:
            led.policy_change("jma", "reserve", old, new, d.reason)
        log.warning("JMA watch changed the reserve: %s -> %s (%s)", old, new, d.reason)
        await self.replan()

    def _reserve_policy(self) -> dict[str, Any]:
        """The reserve policy as recorded in ``policy_change`` records (``old`` / ``new``) and
        replayed from them at start (:meth:`_restore_reserve`): floor [%], storm mode with
        target [%], deadline, reason, activation time and who set it."""
        st = self.controller.storm
        return {"floor_pct": self.config.reserve.floor_pct, "storm": st.active,
                "storm_target_pct": round(100 * st.target, 1), "storm_deadline": _iso(st.deadline),
                "storm_reason": st.reason or None,
                "storm_activated_at": _iso(st.activated_at) if st.active else None,
                "storm_set_by": self.storm_set_by if st.active else None}

    def _restore_reserve(self) -> None:
        """The reserve policy survives a restart or a crash: replay the newest ``reserve``
        ``policy_change`` record of the ledger (operator or JMA watch) into the config's floor
        (never below the config file's own floor) and the controller's storm mode, before the first plan, and audit it
        (``reserve_restored``). Without such a record the config's defaults stand.

        A storm mode comes back with its target, deadline, reason, activation time (the ramp
        continues where it was) and who set it; a deadline that passed while the process was
        down is kept as it is: storm mode holds the target until it is switched off
        (:func:`vpp.control.reserve.floor_trajectory`). A storm the JMA watch raised stays the
        watch's: its next poll keeps or lifts it. A record that cannot be read raises the
        ``reserve`` alarm and leaves the defaults."""
        path = Path(self.config.api.ledger_path)
        if not path.exists():
            return
        from vpp.market.ledger import Ledger

        led = Ledger.open(path, clock=self.now)
        try:
            recs = [r for r in led.query(kinds=["policy_change"]) if r.payload.get("policy") == "reserve"]
            if not recs:
                return
            try:
                got = restored_policy(recs, self.config.reserve.storm_target_pct)
            except (KeyError, TypeError, ValueError) as e:
                msg = f"reserve policy not restored from ledger record {recs[-1].id}: {type(e).__name__}: {e}"
                log.error(msg)
                self.controller.alarms.raise_("reserve", msg + "; config defaults in force", self.now(), "warning")
                return
            config_floor = self.config.reserve.floor_pct
            # safety first: a restart never leaves the floor below the config file's (an
            # engineer may have raised it while the service was down); higher operator floors stay
            self.config.reserve.floor_pct = max(got["floor_pct"], config_floor)
            storm = self.controller.storm
            if got["storm"]:
                storm.on(got["activated_at"], got["target"], got["deadline"], got["reason"])
                self.storm_set_by = got["set_by"]
                self._jma_storm = got["reason"] if got["set_by"] == "jma" else None
            else:
                storm.off()
            policy = self._reserve_policy()
            expired = bool(storm.active and storm.deadline is not None and storm.deadline <= self.now())
            self.reserve_restored = {**policy, "record": recs[-1].id, "recorded_at": _iso(recs[-1].ts),
                                     "recorded_by": recs[-1].actor, "deadline_passed": expired,
                                     "config_floor_pct": config_floor}
            led.audit("system", "reserve_restored", **self.reserve_restored)
            log.warning("reserve policy restored from the ledger (record %s by %s at %s): %s%s", recs[-1].id,
                        recs[-1].actor, _iso(recs[-1].ts), policy,
                        " (storm deadline passed: holding the storm target)" if expired else "")
            if got["floor_pct"] < config_floor:
                log.warning("the operator's last reserve floor %.1f %% is below the config's %.1f %%: the "
                            "config's floor stands after a restart (lower it in the config file)",
                            got["floor_pct"], config_floor)
        finally:
            led.close()

    @staticmethod
    def _set_poll(ven: Any, poll_s: float) -> float:
        """Poll at most every ``poll_s`` [s] (sooner if the VTN asked for it); the period [s]."""
        c = ven.client
        want = min(poll_s, c.poll_frequency.total_seconds()) if c.poll_frequency else poll_s
        for job in c.scheduler.get_jobs():
            if job.func == c._poll:
                job.reschedule("interval", seconds=want)
        return want

    @staticmethod
    async def _stop_ven(ven: Any) -> None:
        if ven.client.client_session is None:
            return
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ven.stop(), 5)

    async def stop(self) -> None:
        """Stop everything (OpenADR VEN, HTTP, scheduler, batteries idle, pollers, store,
        simulator)."""
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
            for b in self.config.devices_of("battery"):
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self.fleet.device(b.id).set_power(
                        0.0, revert_s=self.config.optimiser.lease_s), 3)
            await self.fleet.stop()
            self.fleet = None
        if self.pipeline is not None:
            await self.pipeline.stop()
            self.pipeline = None
        if self.store is not None:
            self.store.close()
            self.store = None
        if self.site is not None:
            await self.site.stop()
            self.site = None

    async def __aenter__(self) -> "Runtime":
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    async def _first_readings(self, timeout_s: float) -> None:
        # the first plan needs the batteries' SoC: give the pollers a moment before it runs
        want = {b.id for b in self.config.devices_of("battery")}
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout_s
        while not want <= set(self.last_good) and loop.time() < end:
            await asyncio.sleep(0.05)

    def _on_snapshot(self, snap: Snapshot) -> None:
        if snap.quality is Quality.GOOD:
            self.last_good[snap.device] = snap
            self.newest_wall = datetime.now(timezone.utc)
        self.readings += 1
        self.pipeline.submit(snap)

    async def _monitor(self) -> None:
        """Raise/clear ``device:<id>`` and ``store`` alarms once a second."""
        await asyncio.sleep(LOST_MIN_S)  # every device gets a chance to answer first
        while True:
            try:
                self._check()
            except Exception:  # noqa: BLE001 - the monitor must outlive one bad pass
                log.exception("runtime monitor pass failed")
            await asyncio.sleep(1.0)

    def _check(self) -> None:
        now = self.now()
        alarms = self.controller.alarms
        for d in self.config.devices:
            lost, why = self._lost(d.id, now)
            key = f"device:{d.id}"
            if lost:
                sev = "critical" if d.kind in ("battery", "meter") else "warning"
                alarms.raise_(key, f"{d.id} ({d.kind}) lost: {why}", now, sev)
            else:
                alarms.clear(key, now, "reading again")
        if self.pipeline is not None and not self.pipeline.store_up:
            alarms.raise_("store", f"telemetry store unavailable; spooling "
                                   f"({self.pipeline.metrics['spool_bytes']} bytes)", now, "critical")
        else:
            alarms.clear("store", now, "store answering")

    # ------------------------------------------------------------------ status services
    @property
    def time_scale(self) -> float:
        """Controller-clock seconds per wall second [-]: ``speed`` when simulating, else 1."""
        return float(self.speed) if self.simulate and self.speed > 0 else 1.0

    def _clock(self) -> datetime:
        return self.clock.now() if self.clock is not None else datetime.now(timezone.utc)

    def now(self) -> datetime:
        """The runtime's time (UTC): the simulated clock when simulating, else the wall clock.
        The controller, the API and every status function use it."""
        return self._clock()

    def _lost_after_s(self, dev_id: str) -> float:
        # polling runs on the wall clock: a wall-time limit, in the runtime's seconds
        wall = max(LOST_MIN_S, LOST_AFTER_POLLS * self.config.device(dev_id).poll_interval_s)
        return wall * self.time_scale

    def _lost(self, dev_id: str, now: datetime) -> tuple[bool, str]:
        """Whether ``dev_id`` has no recent good reading, and why."""
        cur = self.fleet.latest(dev_id) if self.fleet is not None else None
        if cur is not None and cur.quality is not Quality.GOOD:
            return True, f"{cur.quality.value}: {cur.reason}".rstrip(": ")
        good = self.last_good.get(dev_id)
        if good is None:
            return True, "no reading yet"
        age = (now - good.ts).total_seconds()
        if age > self._lost_after_s(dev_id):
            return True, f"last reading {age:.0f} s ago"
        return False, ""

    def _live(self, dev_id: str, now: datetime) -> Snapshot | None:
        return None if self._lost(dev_id, now)[0] else self.last_good.get(dev_id)

    def flow(self, now: datetime | None = None) -> dict[str, Any]:
        """Live energy flow [kW]: PV (produced), battery (> 0 discharge), EV (charging), grid
        (> 0 import) and site load (``grid + pv + battery − ev``). A quantity whose devices
        are not all live is ``None`` and its devices are listed in ``missing``."""
        now = now or self.now()
        cfg = self.config
        missing: list[str] = []

        def total(devs) -> float | None:
            s, ok = 0.0, True
            for d in devs:
                snap = self._live(d.id, now)
                if snap is None:
                    missing.append(d.id)
                    ok = False
                else:
                    s += float(snap.values.get("power_w", 0.0))
            return s if ok else None

        pv = total(cfg.devices_of("pv"))
        bat = total(cfg.devices_of("battery"))
        ev = total(cfg.devices_of("ev_charger"))
        meter = self.controller.grid_meter() if self.controller else None
        grid = total([meter]) if meter is not None else None
        load = None if None in (pv, bat, ev, grid) else grid + pv + bat - ev
        return {"pv_kw": _kw(pv), "battery_kw": _kw(bat), "ev_kw": _kw(ev), "grid_kw": _kw(grid),
                "load_kw": _kw(load), "live": not missing, "missing": sorted(set(missing))}

    def battery(self, now: datetime | None = None) -> dict[str, Any]:
        """Site battery: capacity-weighted SoC [%], reserve floor [%], reserve state and reason,
        storm mode, critical-load autonomy [h] and headroom [kW]."""
        now = now or self.now()
        ctl = self.controller
        bats = self.config.devices_of("battery")
        cap = sum(b.ratings.capacity_wh for b in bats)
        soc_wh = avail_wh = 0.0
        floor_wh = base_wh = up = down = 0.0
        live = bool(bats)
        states, reasons = [], []
        for b in bats:
            r = b.ratings
            floor = float(ctl.floor_at(b, [now])[0])
            base = ctl.base_floor(b)
            floor_wh += floor * r.capacity_wh
            base_wh += base * r.capacity_wh
            snap = self._live(b.id, now)
            sm = ctl.reserve.get(b.id)
            if snap is None or not math.isfinite(snap.values.get("soc", math.nan)):
                live = False
                continue
            soc, p = float(snap.values["soc"]), float(snap.values.get("power_w", 0.0))
            soc_wh += soc * r.capacity_wh
            avail_wh += max(soc - r.soc_min, 0.0) * r.capacity_wh * r.discharge_efficiency
            if sm is not None:
                lim = sm.limits(soc, floor)
                states.append(lim.state.value)
                reasons.append(lim.reason)
            up += max((r.max_discharge_w if soc > floor else 0.0) - p, 0.0)
            down += max(p + (r.max_charge_w if soc < r.soc_max else 0.0), 0.0)
        crit = self.config.reserve.critical_load_w
        storm = ctl.storm
        return {
            "soc_pct": round(100 * soc_wh / cap, 1) if live and cap else None,
            "floor_pct": round(100 * floor_wh / cap, 1) if cap else None,
            "base_floor_pct": round(100 * base_wh / cap, 1) if cap else None,
            "floor_setting_pct": self.config.reserve.floor_pct,
            "capacity_kwh": round(cap / 1000, 1),
            "reserve_state": (states[0] if len(set(states)) == 1 else ",".join(states)) if states else None,
            "reserve_reason": "; ".join(x for x in reasons if x) or None,
            "storm": {"active": storm.active, "target_pct": round(100 * storm.target, 1),
                      "deadline": _iso(storm.deadline), "reason": storm.reason,
                      "set_by": self.storm_set_by if storm.active else None},
            "autonomy_h": round(avail_wh / crit, 1) if live and crit > 0 else None,
            "headroom": {"up_kw": _kw(up) if live else None, "down_kw": _kw(down) if live else None},
            "live": live,
        }

    def grid(self, now: datetime | None = None) -> dict[str, Any]:
        """Grid state: ``connected``, ``outage`` (islanded) or ``unknown`` (no grid reading)."""
        from vpp.control.reserve import grid_outage

        now = now or self.now()
        meter = self.controller.grid_meter()
        snap = self._live(meter.id, now) if meter is not None else None
        if self.controller.outage is not None:
            state = "outage" if self.controller.outage else "connected"
        elif snap is None:
            state = "unknown"
        else:
            v = snap.values
            out = grid_outage(v.get("voltage_v"), v.get("frequency_hz"), nominal_v=meter.ratings.voltage_v)
            state = "outage" if out else "connected"
        v = snap.values if snap is not None else {}
        return {"state": state, "voltage_v": v.get("voltage_v"), "frequency_hz": v.get("frequency_hz"),
                "import_limit_kw": _kw(self.config.grid.import_limit_w),
                "export_limit_kw": _kw(self.config.grid.export_limit_w)}

    def status(self, aggregate_only: bool = False) -> dict[str, Any]:
        """Site-level live status. ``aggregate_only`` (aggregators) leaves out everything
        per device or per household. ``ts`` is :meth:`now` (simulated time when simulating,
        also in ``sim_time``); ``newest_reading`` is the *wall* time the newest good reading
        arrived (reading-to-screen latency)."""
        now = self.now()
        ctl = self.controller
        flow = self.flow(now)
        if aggregate_only:
            flow = {k: v for k, v in flow.items() if k != "missing"}
        plan = ctl.plan
        pm = self.pipeline.metrics if self.pipeline is not None else {"store_up": False}
        active = ctl.alarms.active()
        out = {
            "site": self.config.site.name, "ts": _iso(now),
            "sim_time": _iso(self.clock.now()) if self.clock is not None else None,
            "newest_reading": self.newest_wall,
            "flow": flow, "battery": self.battery(now), "grid": self.grid(now),
            "store": {"up": bool(pm.get("store_up")), "queued": pm.get("queued", 0),
                      "spool_bytes": pm.get("spool_bytes", 0)},
            "plan": {"made_at": _iso(plan.made_at) if plan else None},
            "alarms": {"active": len(active), "unacked": sum(1 for a in active if not self._acked(a))},
            "simulated": self.simulate, "speed": self.time_scale,
            "jma": dict(self.jma_state) if self.jma_state is not None else None,
            "reserve_restored": dict(self.reserve_restored) if self.reserve_restored is not None else None,
        }
        if out["newest_reading"] is not None:
            out["newest_reading"] = out["newest_reading"].astimezone(timezone.utc).isoformat(timespec="milliseconds")
        if not aggregate_only:
            out["decisions"] = {k: {"setpoint_kw": _kw(d.setpoint_w), "source": d.source,
                                    "reasons": list(d.reasons)} for k, d in ctl.decisions.items()}
            out["overrides"] = {k: {"setpoint_kw": _kw(o.setpoint_w), "expires_at": _iso(o.expires_at)}
                                for k, o in ctl.overrides.items() if o.active(now)}
        return out

    def devices(self) -> list[dict[str, Any]]:
        """Per device: availability, quality, last good reading and its age [wall s], main values."""
        now = self.now()
        out = []
        for d in self.config.devices:
            good = self.last_good.get(d.id)
            cur = self.fleet.latest(d.id) if self.fleet is not None else None
            lost, why = self._lost(d.id, now)
            v = good.values if good is not None else {}
            out.append({
                "id": d.id, "kind": d.kind, "home": d.home, "available": not lost, "reason": why,
                "quality": cur.quality.value if cur is not None else None,
                "last_reading": _iso(good.ts) if good else None,
                # wall seconds (readings arrive on the wall clock even when simulating)
                "age_s": round((now - good.ts).total_seconds() / self.time_scale, 1) if good else None,
                "power_kw": _kw(v.get("power_w")) if not lost else None,
                "soc_pct": round(100 * v["soc"], 1) if not lost and "soc" in v else None,
            })
        return out

    def _restore_acks(self) -> None:
        """Acknowledgements survive a restart: replay the ledger's ``alarm_ack`` /
        ``alarm_ack_end`` audit records, and from now on record when an acknowledged alarm
        clears (its acknowledgement ends there)."""
        led = self._ledger()
        if led is None:
            return
        for r in led.query(kinds=["audit"]):
            key, action = r.payload.get("alarm"), r.payload.get("action")
            if action == "alarm_ack" and key:
                self.acks[key] = Ack(datetime.fromisoformat(r.payload["raised_at"]), r.actor, r.ts, restored=True)
            elif action == "alarm_ack_end" and key:
                self.acks.pop(key, None)

        def on_alarm(a) -> None:
            if a.active:
                self._acked(a)  # binds a restored acknowledgement to this raise
            elif self._acked(a):
                del self.acks[a.key]
                self._audit("system", "alarm_ack_end", alarm=a.key, cleared_at=_iso(a.cleared_at))

        for a in self.controller.alarms.active():
            on_alarm(a)
        self.controller.alarms.subscribe(on_alarm)

    def _acked(self, a) -> bool:
        ack = self.acks.get(a.key)
        if ack is not None and ack.restored and a.active and ack.raised_at != a.raised_at:
            # the process restarted while the alarm was acknowledged and active: this raise is it
            ack = self.acks[a.key] = Ack(a.raised_at, ack.by, ack.at)
        return ack is not None and ack.raised_at == a.raised_at

    def alarms(self, include_cleared: int = 20) -> list[dict[str, Any]]:
        """Active alarms (newest first) then the last ``include_cleared`` cleared ones."""
        ctl = self.controller

        def row(a) -> dict[str, Any]:
            ack = self.acks.get(a.key) if self._acked(a) else None
            return {"id": a.key, "reason": a.reason, "severity": a.severity, "active": a.active,
                    "raised_at": _iso(a.raised_at), "updated_at": _iso(a.updated_at),
                    "cleared_at": _iso(a.cleared_at), "clear_reason": a.clear_reason,
                    "acked": ack is not None, "acked_by": ack.by if ack else None,
                    "acked_at": _iso(ack.at) if ack else None}

        active = [row(a) for a in reversed(ctl.alarms.active())]
        cleared = [row(a) for a in reversed(ctl.alarms.history()[-include_cleared:])] if include_cleared else []
        return active + cleared

    def ack(self, alarm_id: str, actor: str) -> dict[str, Any]:
        """Acknowledge the active alarm ``alarm_id`` (404 if not active). An alarm raised
        again after it cleared needs a new acknowledgement."""
        a = self.controller.alarms.get(alarm_id)
        if a is None:
            raise ServiceError(f"no active alarm {alarm_id!r}", 404)
        self.acks[alarm_id] = Ack(a.raised_at, actor, self.now())
        self._audit(actor, "alarm_ack", alarm=alarm_id, reason=a.reason, raised_at=_iso(a.raised_at))
        return next(r for r in self.alarms(0) if r["id"] == alarm_id)

    def plan(self, aggregate_only: bool = False) -> dict[str, Any]:
        """The current plan (up to 48 h): per slot forecast PV/load, planned battery (> 0
        discharge) and grid [kW], site SoC trajectory and floor [%], buy/sell prices."""
        ctl = self.controller
        p = ctl.plan
        if p is None:
            return {"made_at": None, "slots": [], "reason": ctl.alarms.get("plan").reason
                    if ctl.alarms.get("plan") else "no plan yet"}
        s, prob = p.schedule, p.problem
        n = min(s.n, int(48 * 3600 // s.slot_s))
        caps = {b.id: b.ratings.capacity_wh for b in self.config.devices_of("battery")}
        cap = sum(caps.values()) or 1.0

        def site_pct(per: dict[str, np.ndarray]) -> np.ndarray:
            acc = np.zeros(n)
            for k, arr in per.items():
                acc += np.nan_to_num(np.asarray(arr[:n], dtype=float)) * caps.get(k, 0.0)
            return 100 * acc / cap

        bat = sum((np.asarray(v[:n], dtype=float) for v in s.battery_w.values()), np.zeros(n))
        soc, floor = site_pct(s.soc), site_pct(s.floor)
        buy, sell = prob.prices.buy[:n], prob.prices.sell[:n]
        slots = []
        for k in range(n):
            t = s.start + timedelta(seconds=k * s.slot_s)
            slots.append({"start": _iso(t), "pv_kw": _kw(float(s.pv_w[k])), "load_kw": _kw(float(s.load_w[k])),
                          "battery_kw": _kw(float(bat[k])),
                          "grid_kw": _kw(float(s.grid_import_w[k] - s.grid_export_w[k])),
                          "soc_pct": round(float(soc[k]), 1), "floor_pct": round(float(floor[k]), 1),
                          "buy_per_kwh": round(float(buy[k]), 2), "sell_per_kwh": round(float(sell[k]), 2)})
        return {"made_at": _iso(p.made_at), "slot_s": s.slot_s, "currency": self.config.tariff.currency,
                "timezone": self.config.site.timezone,
                "slots": slots, "warnings": [] if aggregate_only else list(s.warnings)}

    # ------------------------------------------------------------------ operator actions
    def _ledger(self):
        return getattr(self.app.state, "ledger", None) if self.app is not None else None

    def _audit(self, actor: str, action: str, **detail: Any) -> None:
        led = self._ledger()
        if led is not None:
            led.audit(actor, action, **detail)
        log.warning("operator %s: %s %s", actor, action, detail)

    async def replan(self) -> None:
        """Re-plan now (in a thread: the solve must not block the event loop)."""
        async with self._replan_lock:
            await asyncio.to_thread(self.controller.plan_job)

    def set_reserve(self, actor: str, *, floor_pct: float | None = None, storm: bool | None = None,
                    storm_target_pct: float | None = None, storm_deadline: datetime | None = None,
                    reason: str = "") -> dict[str, Any]:
        """Change the reserve floor [%] and/or storm mode (on needs a future deadline).
        Validates everything before changing anything; audited in the ledger."""
        now = self.now()
        r = self.config.reserve
        if floor_pct is not None and not (math.isfinite(floor_pct) and 0 <= floor_pct <= 100):
            raise ServiceError(f"floor_pct must be between 0 and 100 %, got {floor_pct}")
        if storm:
            tgt = storm_target_pct if storm_target_pct is not None else r.storm_target_pct
            if not (math.isfinite(tgt) and 0 <= tgt <= 100):
                raise ServiceError(f"storm_target_pct must be between 0 and 100 %, got {tgt}")
            if storm_deadline is None:
                raise ServiceError("storm mode needs a deadline (when the storm is expected)")
            if storm_deadline.tzinfo is None:
                raise ServiceError("storm_deadline needs a time zone (e.g. 2026-11-23T18:00:00+09:00)")
            if storm_deadline <= now:
                raise ServiceError("storm_deadline must be in the future")
        old = self._reserve_policy()
        if floor_pct is not None:
            r.floor_pct = float(floor_pct)
        if storm is True:
            self.controller.storm.on(now, tgt / 100.0, storm_deadline.astimezone(timezone.utc),
                                     reason or f"operator {actor}")
            self.storm_set_by, self._jma_storm = actor, None
        elif storm is False:
            self.controller.storm.off()
            self.storm_set_by = self._jma_storm = None
        new = self._reserve_policy()
        led = self._ledger()
        if led is not None:
            led.policy_change(actor, "reserve", old, new, reason)
        log.warning("operator %s changed the reserve: %s -> %s", actor, old, new)
        return new

    def override(self, actor: str, device: str, setpoint_kw: float, expires_at: datetime,
                 reason: str = "") -> dict[str, Any]:
        """Manual battery setpoint [kW] (> 0 discharge) until ``expires_at`` (required, in
        the future, at most 24 h ahead). The reserve state machine still has the last word."""
        from vpp.control.bounds import Override

        now = self.now()
        ids = [b.id for b in self.config.devices_of("battery")]
        if device not in ids:
            raise ServiceError(f"unknown battery {device!r}; batteries: {', '.join(ids) or 'none'}", 404)
        r = self.config.device(device).ratings
        if not math.isfinite(setpoint_kw) or not -r.max_charge_w <= setpoint_kw * 1000 <= r.max_discharge_w:
            raise ServiceError(f"setpoint_kw must be within -{r.max_charge_w / 1000:g} … "
                               f"{r.max_discharge_w / 1000:g} kW for {device}, got {setpoint_kw}")
        if expires_at.tzinfo is None:
            raise ServiceError("expires_at needs a time zone (e.g. 2026-11-23T18:00:00+09:00)")
        if expires_at <= now:
            raise ServiceError("expires_at must be in the future")
        if expires_at > now + timedelta(hours=24):
            raise ServiceError("expires_at must be at most 24 h ahead")
        ov = Override(device, expires_at.astimezone(timezone.utc), setpoint_w=setpoint_kw * 1000,
                      reason=f"operator {actor}" + (f": {reason}" if reason else ""))
        self.controller.overrides[device] = ov
        self._audit(actor, "battery_override", device=device, setpoint_kw=setpoint_kw,
                    expires_at=_iso(ov.expires_at), reason=reason)
        return {"device": device, "setpoint_kw": setpoint_kw, "expires_at": _iso(ov.expires_at)}
