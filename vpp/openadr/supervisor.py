"""OpenADR VEN supervision: keep the site's VEN registered with its VTN.

:class:`VenSupervisor` registers the VEN (:class:`vpp.openadr.ven.Ven`), polls the VTN (at most
every ``poll_interval_s``) and reports telemetry. A VTN that does not answer raises the
``openadr`` alarm and is retried with back-off while the rest of the runtime carries on; after
a long silence the VEN registers again (a restarted VTN may have lost it). Events go to the
dispatch service it is given (the API's, so OpenADR and REST dispatches follow the same rules).
OpenADR events carry absolute times: against a simulated clock the VTN must speak the site's
time (openleadr judges event status by the wall clock, so keep simulated time ahead of it).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Protocol

from vpp.config import OpenAdrConfig
from vpp.timefmt import iso

log = logging.getLogger(__name__)

#: The VTN counts as down after this many poll intervals without an answer [-]...
VTN_DOWN_POLLS = 3.0
#: ...and the VEN registers again after this many [-].
VTN_REREGISTER_POLLS = 10.0
#: Longest wait [s] between registration attempts while the VTN is unreachable.
VTN_RETRY_MAX_S = 300.0


class AlarmSink(Protocol):
    """Where the ``openadr`` alarm goes (:class:`vpp.control.alarms.Alarms`)."""

    def raise_(self, key: str, reason: str, now: datetime, severity: str = "warning") -> Any: ...

    def clear(self, key: str, now: datetime, reason: str = "") -> Any: ...


class DispatchSink(Protocol):
    """What the VEN hands events to (:class:`vpp.market.dispatch.DispatchService`)."""

    def find_award(self, start: datetime, end: datetime, direction: str | None = None) -> Any: ...

    def create(self, actor: str, key: str, req: Any, source: str = "rest") -> Any: ...

    def cancel(self, actor: str, dispatch_id: str, source: str = "rest") -> Any: ...


class VenSupervisor:
    """The VEN's register / poll / re-register loop (see module doc).

    Parameters
    ----------
    oc : OpenAdrConfig
    ven_name : str
        ``oc.ven_name`` or the site's name.
    dispatch : DispatchSink
    telemetry : callable
        ``() -> (site battery power [W] > 0 discharge, SoC [fraction])`` reported to the VTN.
    alarms : AlarmSink
        The ``openadr`` alarm.
    now : callable
        The runtime's clock (UTC).
    time_scale : float
        Runtime-clock seconds per wall second (alarm texts say when the VTN went silent).
    """

    def __init__(self, oc: OpenAdrConfig, ven_name: str, dispatch: DispatchSink,
                 telemetry: Callable[[], tuple[float, float]], alarms: AlarmSink,
                 now: Callable[[], datetime], time_scale: float = 1.0) -> None:
        self.oc, self.name, self.dispatch, self.telemetry = oc, ven_name, dispatch, telemetry
        self.alarms, self.now, self.time_scale = alarms, now, time_scale
        self.ven: Any = None  #: the :class:`~vpp.openadr.ven.Ven` while registered
        self.results: dict[str, dict[str, Any]] = {}  #: per OpenADR event: dispatches, opt

    async def run(self) -> None:
        """Keep the VEN registered until cancelled; never raises otherwise. OpenADR support
        not installed (the ``openadr`` extra) raises the ``openadr`` alarm (critical) and
        ends; a VEN that cannot be made (unreadable certificate, …) raises it and retries."""
        try:
            from vpp.openadr.ven import Ven
        except ImportError as e:
            msg = (f"OpenADR VEN not started: OpenADR support is not installed ({e}); "
                   "install the `openadr` extra (pip install 'vpp-town[openadr]')")
            log.error(msg)
            self.alarms.raise_("openadr", msg, self.now(), "critical")
            return

        oc, alarms = self.oc, self.alarms
        poll_s = float(oc.poll_interval_s)
        retry_s = poll_s
        loop = asyncio.get_running_loop()
        remembered = False
        while True:
            try:
                ven = Ven(self.dispatch, oc.vtn_url, self.name, self.telemetry,
                          report_every=timedelta(seconds=oc.report_interval_s), cert=oc.cert, key=oc.key,
                          ca_file=oc.ca_file, vtn_fingerprint=oc.vtn_fingerprint, show_fingerprint=False)
            except Exception as e:  # noqa: BLE001 - alarm and retry: the runtime carries on
                log.exception("OpenADR VEN could not be started")
                alarms.raise_("openadr", f"OpenADR VEN could not be started: {type(e).__name__}: {e}",
                              self.now(), "critical")
                await asyncio.sleep(retry_s)
                retry_s = min(2 * retry_s, max(VTN_RETRY_MAX_S, poll_s))
                continue
            if not remembered:  # the events remembered in the ledger, once
                self.results.update(ven.results)
                remembered = True
            ven.results = self.results  # one memory of events across re-registrations
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
                    await stop_ven(ven)
                    await asyncio.sleep(retry_s)
                    retry_s = min(2 * retry_s, max(VTN_RETRY_MAX_S, poll_s))
                    continue
                retry_s = poll_s
                self.ven = ven
                every = set_poll(ven, poll_s)
                alarms.clear("openadr", self.now(), f"registered with {oc.vtn_url} as {self.name}")
                log.info("OpenADR VEN %s registered with %s (polling every %.0f s)", self.name, oc.vtn_url, every)
                while True:
                    await asyncio.sleep(every)
                    silent = loop.time() - heard[0]
                    if silent > VTN_REREGISTER_POLLS * every:
                        log.warning("OpenADR VTN silent for %.0f s: registering again", silent)
                        break
                    if silent > VTN_DOWN_POLLS * every:
                        since = self.now() - timedelta(seconds=silent * self.time_scale)
                        alarms.raise_("openadr", f"OpenADR VTN {oc.vtn_url} not answering since {iso(since)}",
                                      self.now(), "warning")
                    else:
                        alarms.clear("openadr", self.now(), "VTN answering")
            except asyncio.CancelledError:
                self.ven = None
                await stop_ven(ven)
                raise
            except Exception as e:  # noqa: BLE001 - the VEN must not take the runtime down
                log.exception("OpenADR VEN failed")
                alarms.raise_("openadr", f"OpenADR VEN failed: {type(e).__name__}: {e}", self.now(), "warning")
                await asyncio.sleep(retry_s)
            self.ven = None
            await stop_ven(ven)


def set_poll(ven: Any, poll_s: float) -> float:
    """Poll at most every ``poll_s`` [s] (sooner if the VTN asked for it); the period [s]."""
    c = ven.client
    want = min(poll_s, c.poll_frequency.total_seconds()) if c.poll_frequency else poll_s
    for job in c.scheduler.get_jobs():
        if job.func == c._poll:
            job.reschedule("interval", seconds=want)
    return want


async def stop_ven(ven: Any) -> None:
    if ven.client.client_session is None:
        return
    with contextlib.suppress(Exception):
        await asyncio.wait_for(ven.stop(), 5)
