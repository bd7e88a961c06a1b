"""Collecting the smart meters' 30-minute readings (EA/EB) into a :class:`HalfHourLog`.

Once per 30-min slot (on the first call after each :00/:30, site-local = UTC half hours in
Japan and every whole-hour-offset zone) every meter that offers ``read_half_hour()`` (the
ECHONET Lite smart meter driver) is asked for its latched readings; a meter that does not
answer (or has not latched yet) is named in the result / asked again on the next call of the
same slot, never crashing the caller. The log feeds :func:`vpp.market.metering.metered_import_w` /
:func:`~vpp.market.metering.home_import_w` (baselines, settlement).
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from drivers.echonet.transport import EchonetError
from vpp.market.half_hour_metering import HalfHourLog
from vpp.slots import floor_time

log = logging.getLogger(__name__)


def half_hour_meters(devices: Mapping[str, Any]) -> dict[str, Any]:
    """The drivers in ``devices`` (id -> driver) that read fixed-time 30-minute readings."""
    return {i: d for i, d in devices.items() if callable(getattr(d, "read_half_hour", None))}


class HalfHourCollector:
    """Reads each meter's EA/EB once per slot (retrying the ones that failed) into :attr:`log`."""

    def __init__(self, meters: Mapping[str, Any], half_hour: HalfHourLog | None = None) -> None:
        self.meters = dict(meters)
        self.log = half_hour if half_hour is not None else HalfHourLog()
        self._done: dict[str, datetime] = {}  # meter id -> slot whose latch was read
        self.errors: dict[str, str] = {}  # meter id -> last failure

    async def collect(self, now: datetime, concurrency: int = 32) -> dict[str, str]:
        """Read the meters not yet read in ``now``'s slot, ``concurrency`` at a time (an offline
        home's timeout never holds up the others); returns ``{meter id: error}``."""
        slot = floor_time(now)
        failed: dict[str, str] = {}
        gate = asyncio.Semaphore(concurrency)

        async def one(mid: str, dev: Any) -> None:
            async with gate:
                try:
                    new = self.log.record(mid, await dev.read_half_hour())
                except (EchonetError, OSError, TimeoutError) as e:
                    failed[mid] = f"{type(e).__name__}: {e}"
                    log.warning("30-minute readings of %s not read: %s", mid, e)
                    return
            if new:  # an unchanged latch (the meter has not latched yet): ask again next call
                self._done[mid] = slot

        await asyncio.gather(*(one(m, d) for m, d in self.meters.items() if self._done.get(m) != slot))
        self.errors = failed
        return failed
