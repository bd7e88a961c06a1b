"""Grid outage detection: debounced, cross-checked, never from one implausible sample.

The reserve floor is unlocked only in a grid outage, so the detector must not be fooled by a
meter glitch (one 0 Hz sample, a wrong scale factor reading 10.1 V or 500 Hz). Each new grid
meter sample (a snapshot with a newer timestamp) is classified by :func:`classify`:

* ``DEAD``: voltage below ``dead_v`` *and* frequency below ``dead_hz`` (a dead grid reads
  both), or the inverter reports islanding (field :data:`ISLAND_FIELD` = 1, when a map has it);
* ``LIVE``: voltage and frequency inside the live bands;
* ``BAD``: anything else (one quantity dead and the other alive, values between dead and
  live, outside the plausible ranges of :mod:`drivers.fields`): alarm, never an outage;
* ``NONE``: no usable reading: says nothing.

:class:`OutageDetector` declares an outage after ``samples`` consecutive DEAD samples spanning
at least ``confirm_s`` and ends it after ``restore_samples`` consecutive LIVE samples spanning
``restore_s`` (:class:`vpp.config.OutageDetection`). A BAD sample breaks either run; NONE
leaves the state and the runs as they are. Every start/end and every BAD episode is passed to
``on_event`` (the runtime writes them to the ledger).

Units: V, Hz, s; times UTC.
"""
from __future__ import annotations

import enum
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from drivers.fields import plausible_range
from vpp.config import OutageDetection

#: Optional telemetry field [0/1]: the inverter says it runs islanded (grid relay open).
ISLAND_FIELD = "islanded"


class Sample(str, enum.Enum):
    LIVE = "live"
    DEAD = "dead"
    BAD = "bad"
    NONE = "none"


def _finite(x: Any) -> bool:
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)


def classify(values: Mapping[str, Any] | None, cfg: OutageDetection,
             islanded: bool | None = None) -> tuple[Sample, str]:
    """Classify one grid-meter sample (``values``: its ``voltage_v`` [V], ``frequency_hz``
    [Hz], optional :data:`ISLAND_FIELD`), with ``islanded`` the inverters' flag when read
    elsewhere. Returns the class and, for BAD/DEAD, why."""
    values = values or {}
    flag = values.get(ISLAND_FIELD)
    if islanded or (_finite(flag) and flag >= 0.5):
        return Sample.DEAD, "inverter reports islanding"
    v, f = values.get("voltage_v"), values.get("frequency_hz")
    if not _finite(v) or not _finite(f):
        return Sample.NONE, "no voltage/frequency reading"
    for name, x in (("voltage_v", v), ("frequency_hz", f)):
        lo, hi = plausible_range(name)
        if not lo <= x <= hi:
            return Sample.BAD, f"{name} {x:g} outside plausible range [{lo:g}, {hi:g}]"
    v_dead, f_dead = v < cfg.dead_v, f < cfg.dead_hz
    if v_dead and f_dead:
        return Sample.DEAD, f"grid dead ({v:g} V, {f:g} Hz)"
    v_live = cfg.live_v[0] <= v <= cfg.live_v[1]
    f_live = cfg.live_hz[0] <= f <= cfg.live_hz[1]
    if v_live and f_live:
        return Sample.LIVE, ""
    return Sample.BAD, f"implausible grid reading {v:g} V, {f:g} Hz (neither live nor dead)"


@dataclass(frozen=True)
class OutageEvent:
    """``kind``: ``outage_start``, ``outage_end``, ``bad_reading`` (a BAD episode begins) or
    ``reading_ok`` (it ends); ``since`` is the first sample of the run that decided it."""

    kind: str
    at: datetime
    reason: str
    since: datetime | None = None

    def detail(self) -> dict[str, Any]:
        return {"at": self.at.isoformat(), "reason": self.reason,
                "since": self.since.isoformat() if self.since is not None else None}


@dataclass
class OutageDetector:
    """Debounced grid state of one site (see the module docstring). ``outage`` is the state;
    ``bad`` the reason of the BAD episode in progress ('' when none)."""

    cfg: OutageDetection = field(default_factory=OutageDetection)
    on_event: Callable[[OutageEvent], None] | None = None
    outage: bool = False
    bad: str = ""
    _run: Sample | None = None
    _run_n: int = 0
    _run_since: datetime | None = None
    _last_ts: datetime | None = None

    @property
    def suspect(self) -> bool:
        """The grid looks dead but the outage is not confirmed yet (a run of dead samples
        shorter than the debounce). Not an outage: the reserve stays locked; loads that must
        never run on the reserve (EV charging) pause until the grid is confirmed either way."""
        return not self.outage and self._run is Sample.DEAD

    def _emit(self, kind: str, at: datetime, reason: str, since: datetime | None = None) -> None:
        if self.on_event is not None:
            self.on_event(OutageEvent(kind, at, reason, since))

    def update(self, ts: datetime | None, values: Mapping[str, Any] | None,
               islanded: bool | None = None) -> bool:
        """Feed the meter sample taken at ``ts`` (None or not newer than the last one: no new
        sample, nothing changes); returns whether the grid is down."""
        if ts is None or (self._last_ts is not None and ts <= self._last_ts):
            return self.outage
        self._last_ts = ts
        kind, why = classify(values, self.cfg, islanded)
        if kind is Sample.NONE:
            return self.outage
        if kind is Sample.BAD:
            if not self.bad:
                self._emit("bad_reading", ts, why)
            self.bad = why
            self._run, self._run_n, self._run_since = None, 0, None
            return self.outage
        if self.bad:
            self._emit("reading_ok", ts, f"plausible reading again ({kind.value})")
            self.bad = ""
        if kind is not self._run:
            self._run, self._run_n, self._run_since = kind, 0, ts
        self._run_n += 1
        span = (ts - self._run_since).total_seconds()
        if kind is Sample.DEAD and not self.outage and self._run_n >= self.cfg.samples and span >= self.cfg.confirm_s:
            self.outage = True
            self._emit("outage_start", ts, f"{why}: {self._run_n} samples over {span:.0f} s", self._run_since)
        elif kind is Sample.LIVE and self.outage and self._run_n >= self.cfg.restore_samples \
                and span >= self.cfg.restore_s:
            self.outage = False
            self._emit("outage_end", ts, f"grid live: {self._run_n} samples over {span:.0f} s", self._run_since)
        return self.outage
