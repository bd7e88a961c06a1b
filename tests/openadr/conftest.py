"""Shared OpenADR test helpers: a free loopback port, a polling wait, and an openleadr VTN on
loopback that accepts one VEN ("ven-site"), records its opt responses and telemetry reports."""
from __future__ import annotations

import socket
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial

from openleadr import OpenADRServer

from tests.testkit.wait import wait_until


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def wait_for(cond, timeout=15.0):
    await wait_until(cond, timeout)


@dataclass
class LoopbackVtn:
    """An openleadr VTN on 127.0.0.1:``port`` (not started: ``await vtn.server.run()``).

    ``opts`` maps event id → "optIn"/"optOut" as the VEN answered; ``reports`` maps a
    measurement name ("RealPower", "soc") → the (time, value) pairs the VEN reported."""

    port: int = field(default_factory=free_port)
    opts: dict[str, str] = field(default_factory=dict)
    reports: dict[str, list] = field(default_factory=dict)
    #: more :class:`openleadr.OpenADRServer` keywords (signing cert/key, https cert/key/CA, ...)
    server_kw: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.server = OpenADRServer(vtn_id="TESTVTN", http_port=self.port, http_host="127.0.0.1",
                                    requested_poll_freq=timedelta(seconds=1), show_fingerprint=False,
                                    **self.server_kw)
        self.server.add_handler("on_create_party_registration", self._on_reg)
        self.server.add_handler("on_register_report", self._on_register_report)

    @property
    def url(self) -> str:
        scheme = "https" if self.server_kw.get("http_cert") else "http"
        return f"{scheme}://127.0.0.1:{self.port}/OpenADR2/Simple/2.0b"

    def cancel(self, event_id: str) -> None:
        self.server.cancel_event("ven-site", event_id)

    def add_load_dispatch(self, start: datetime, duration: timedelta, load_kw: float) -> str:
        """Queue a LOAD_DISPATCH delta event for "ven-site": site load change ``load_kw`` (kW;
        negative = less import = more battery discharge) over [start, start+duration). Returns
        the event id (a key of ``opts`` once the VEN answered)."""
        return self.server.add_event(ven_id="ven-site", signal_name="LOAD_DISPATCH", signal_type="delta",
                                     intervals=[{"dtstart": start, "duration": duration, "signal_payload": load_kw}],
                                     callback=self._on_opt)

    async def _on_reg(self, info):
        return "ven-site", "reg-1"

    async def _on_update(self, data, measurement):
        self.reports.setdefault(measurement, []).extend(data)

    async def _on_register_report(self, ven_id, resource_id, measurement, unit, scale, min_sampling_interval,
                                  max_sampling_interval):
        return partial(self._on_update, measurement=measurement), min_sampling_interval

    async def _on_opt(self, ven_id, event_id, opt_type):
        self.opts[event_id] = opt_type
