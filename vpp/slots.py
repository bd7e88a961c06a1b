"""Time slots: the one home of the slot length and of slot arithmetic.

Two slot lengths exist and both are defined here or in the config, nowhere else:

* :data:`SLOT_S` — the market and settlement slot, 30 minutes (JEPX コマ, 同時同量, ERAB
  baselines, VPP offers and awards). ``vpp.slot_s`` in the config is pinned to it.
* ``config.optimiser.slot_s`` — the planning slot of the optimiser (a divisor of
  :data:`SLOT_S`, e.g. 900 s); callers pass it in as ``slot_s``.

Slots are aligned to the Unix epoch, so a 30-minute slot starts on :00 or :30 in every
time zone with whole- or half-hour offsets (Asia/Tokyo included). All times are tz-aware.
"""
from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import pandas as pd

from optimizer.inputs import MARKET_SLOT_S

#: Market / settlement slot length [s]: 30 minutes (defined with the optimiser's offer inputs,
#: the lowest layer that needs it).
SLOT_S: int = MARKET_SLOT_S
#: The same, as a timedelta.
SLOT = timedelta(seconds=SLOT_S)


def floor_time(t: datetime, slot_s: int = SLOT_S) -> datetime:
    """Start of the slot containing ``t`` (UTC, aligned to the Unix epoch) [datetime]."""
    ts = math.floor(t.timestamp() / slot_s) * slot_s
    return datetime.fromtimestamp(ts, tz=timezone.utc)


def ceil_time(t: datetime, slot_s: int = SLOT_S) -> datetime:
    """End of the slot containing ``t``; ``t`` itself when it is a slot boundary (UTC)."""
    ts = math.ceil(t.timestamp() / slot_s) * slot_s
    return datetime.fromtimestamp(ts, tz=timezone.utc)


def covering(start: datetime, end: datetime, slot_s: int = SLOT_S) -> tuple[datetime, datetime]:
    """``[start, end)`` widened outward to whole slots (UTC)."""
    return floor_time(start, slot_s), ceil_time(end, slot_s)


def slot_index(start: datetime, end: datetime, slot_s: int = SLOT_S) -> pd.DatetimeIndex:
    """Slot starts in ``[start, end)`` every ``slot_s`` seconds (UTC index)."""
    return pd.date_range(pd.Timestamp(start).tz_convert("UTC"), pd.Timestamp(end).tz_convert("UTC"),
                         freq=f"{slot_s}s", inclusive="left")


def slot_of(t: datetime, start: datetime, slot_s: int) -> int:
    """Index of the slot containing ``t`` in a plan of ``slot_s`` slots from ``start`` [-]."""
    return int((t - start).total_seconds() // slot_s)
