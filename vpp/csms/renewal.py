"""Renew a running transaction's TxProfile before its validity ends.

A ``TxProfile`` is sent with a duration (``ocpp.profile_duration_s``) so that a central system
that goes away leaves the station on its safe default. The control loop writes only limits
that change, so while the central system is up it must itself re-send the limit in force
before the station's copy runs out; otherwise the station would silently fall back to the
default in the middle of a session. A profile is due once less than :data:`RENEW_FRACTION`
of its duration is left (times on the central system's clock, which may be simulated).
"""
from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from vpp.csms.station import StationState

if TYPE_CHECKING:
    from vpp.csms.server import CentralSystem

log = logging.getLogger(__name__)

#: Renew when less than this fraction of the profile's duration is left.
RENEW_FRACTION = 0.5


def renewal_due(st: StationState, now: datetime, duration_s: float) -> bool:
    """True when ``st``'s accepted TxProfile (``duration_s`` [s] long) should be re-sent now."""
    if not st.connected or st.transaction_id is None or st.paused_by_stop or st.profiles_rejected:
        return False
    if st.limit_a is None or st.limit_until is None:
        return False
    return now >= st.limit_until - timedelta(seconds=duration_s * RENEW_FRACTION)


async def renew_once(cs: "CentralSystem") -> list[str]:
    """Re-send every due TxProfile; returns the station ids renewed (failures alarm, never raise)."""
    duration = cs.config.ocpp.profile_duration_s
    done = []
    for sid, st in cs.stations.items():
        if not renewal_due(st, cs.now(), duration):
            continue
        try:
            await cs.chargers[sid].set_current_limit(st.limit_a)
        except Exception as e:  # noqa: BLE001 - one station's failure is its alarm, not the loop's
            cs.alarm(sid, f"could not renew the charging profile before it ends: {e}")
            continue
        st.count("profiles_renewed")
        done.append(sid)
    return done


async def renew_loop(cs: "CentralSystem", every_s: float) -> None:
    """Check every ``every_s`` wall seconds (short: the clock may run faster than the wall)."""
    while True:
        await asyncio.sleep(every_s)
        await renew_once(cs)
