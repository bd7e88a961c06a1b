"""Demand-response baselines per 30-min slot (Japanese ERAB guideline methods).

All functions are pure: a metered history goes in, a per-slot baseline comes out.

Input series
------------
``history`` is a :class:`pandas.Series` of per-slot site demand indexed by tz-aware UTC slot
*starts* on 30-min boundaries. Values may be energy per slot [Wh] or mean power [W]; every
method here is linear, so the baseline comes back in the unit it was given. A slot missing
from the history (absent or NaN) makes that day ineligible as a baseline day.

Methods
-------
* **High X of Y** (:func:`high_x_of_y`): weekday events use *High 4 of 5*: of the 5 most
  recent eligible weekdays before the event day (looking back at most ``lookback_days``),
  average per slot the 4 with the highest event-window demand. Weekend/holiday events use
  *High 2 of 3* over the most recent weekend days and Japanese public holidays.
  A day is eligible when it has the event day's day type, is not an event day, and has
  complete data. *Low-day rule*: a selected day whose event-window average is < 25 % of the
  mean event-window average of the current selection is dropped and the search continues
  one day further back; the mean is recomputed after each drop, and a dropped day never
  returns.
* **Same-day adjustment** (:class:`SameDayAdjustment`): the baseline is shifted by the mean
  of (actual − baseline) over a window before the event (default 4 h to 1 h before start).
* **Plan-based** (:func:`plan_baseline`): the submitted 30-min plan is the baseline.

Reference: 資源エネルギー庁「エネルギー・リソース・アグリゲーション・ビジネスに関するガイドライン」
(standard baseline "High 4 of 5" with same-day adjustment).
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import jpholiday
import numpy as np
import pandas as pd

#: Bumped whenever a change could alter a computed baseline; stored with every settlement.
ALGORITHM_VERSION = "erab-high-x-of-y/1"

SLOT = pd.Timedelta(minutes=30)


class BaselineError(ValueError):
    """The baseline cannot be computed (bad window, too little eligible history)."""


@dataclass(frozen=True, slots=True)
class SameDayAdjustment:
    """Shift by mean(actual − baseline) over ``[start − before_start, start − before_end)``."""

    before_start: timedelta = timedelta(hours=4)
    before_end: timedelta = timedelta(hours=1)

    def __post_init__(self) -> None:
        if self.before_start <= self.before_end or self.before_end < timedelta(0):
            raise BaselineError("adjustment window must satisfy before_start > before_end >= 0")


@dataclass(frozen=True, slots=True)
class BaselineResult:
    """A computed baseline and the facts needed to audit it.

    Attributes
    ----------
    values : pandas.Series
        Baseline per event slot, indexed by UTC slot start, in the unit of the input.
    method : str
        ``"high4of5"``, ``"high2of3"`` or ``"plan"``.
    days : tuple[date, ...]
        Local dates averaged (the "high X"), most recent first.
    candidates : tuple[date, ...]
        Local dates in the final selection (the "of Y"), most recent first.
    skipped_low : tuple[date, ...]
        Dates dropped by the 25 % low-day rule.
    adjustment : float
        Same-day shift added to every slot (0 when not applied).
    algorithm_version : str
    """

    values: pd.Series
    method: str
    days: tuple[date, ...] = ()
    candidates: tuple[date, ...] = ()
    skipped_low: tuple[date, ...] = ()
    adjustment: float = 0.0
    algorithm_version: str = ALGORITHM_VERSION
    notes: tuple[str, ...] = field(default=())


def is_holiday_type(day: date, extra_holidays: Iterable[date] = ()) -> bool:
    """True for Saturday, Sunday, a Japanese public holiday (jpholiday) or an extra date."""
    return day.weekday() >= 5 or jpholiday.is_holiday(day) or day in set(extra_holidays)


def event_slots(start: datetime | pd.Timestamp, end: datetime | pd.Timestamp) -> pd.DatetimeIndex:
    """UTC slot starts covering ``[start, end)``; both ends must be tz-aware 30-min boundaries."""
    s, e = _utc(start, "start"), _utc(end, "end")
    for name, t in (("start", s), ("end", e)):
        if t != t.floor(SLOT):
            raise BaselineError(f"event {name} {t.isoformat()} is not on a 30-min boundary")
    if e <= s:
        raise BaselineError("event end must be after start")
    return pd.date_range(s, e, freq=SLOT, inclusive="left")


def high_x_of_y(
    history: pd.Series,
    start: datetime | pd.Timestamp,
    end: datetime | pd.Timestamp,
    *,
    tz: str = "Asia/Tokyo",
    event_days: Iterable[date] = (),
    extra_holidays: Iterable[date] = (),
    lookback_days: int = 30,
    low_ratio: float = 0.25,
    adjustment: SameDayAdjustment | None = None,
    weekday_rule: tuple[int, int] = (4, 5),
    holiday_rule: tuple[int, int] = (2, 3),
) -> BaselineResult:
    """ERAB "High X of Y" baseline for the event ``[start, end)``.

    Parameters
    ----------
    history : pandas.Series
        Per-slot demand [Wh per slot or W], UTC slot starts. Must contain the pre-event
        window on the event day when ``adjustment`` is given.
    start, end : datetime
        Event window, tz-aware, on 30-min boundaries.
    tz : str
        Site time zone; day types and "same time of day" are taken in local time.
    event_days : iterable of date
        Local dates with earlier events; never used as baseline days.
    extra_holidays : iterable of date
        Additional holiday-type dates (e.g. year-end closure) on top of jpholiday.
    lookback_days : int
        Search at most this many days before the event day.
    low_ratio : float
        Low-day rule threshold (0.25 = 25 % of the selection mean).
    adjustment : SameDayAdjustment or None
        Apply the same-day adjustment when given.
    weekday_rule, holiday_rule : (X, Y)
        "High X of Y" for weekday and weekend/holiday events.

    Returns
    -------
    BaselineResult

    Raises
    ------
    BaselineError
        On a malformed window, or fewer than X eligible days in the lookback.
    """
    zone = ZoneInfo(tz)
    slots = event_slots(start, end)
    hist = _clean(history)
    extra = frozenset(extra_holidays)
    excluded = frozenset(event_days)
    local_start = slots[0].tz_convert(zone)
    event_day = local_start.date()
    holiday_event = is_holiday_type(event_day, extra)
    x, y = holiday_rule if holiday_event else weekday_rule
    if not 0 < x <= y:
        raise BaselineError(f"invalid rule High {x} of {y}")

    eligible: list[date] = []
    window_mean: dict[date, float] = {}
    for k in range(1, lookback_days + 1):
        d = event_day - timedelta(days=k)
        if d in excluded or is_holiday_type(d, extra) != holiday_event:
            continue
        vals = _day_values(hist, slots, k, zone)
        if vals is None:
            continue
        eligible.append(d)
        window_mean[d] = float(vals.mean())

    selection, skipped = _select_with_low_rule(eligible, window_mean, y, low_ratio)
    if len(selection) < x:
        raise BaselineError(
            f"only {len(selection)} eligible {'holiday' if holiday_event else 'weekday'} days in "
            f"the {lookback_days} days before {event_day}; High {x} of {y} needs at least {x}"
        )
    # Highest event-window demand first; ties go to the more recent day.
    ranked = sorted(selection, key=lambda d: (-window_mean[d], -d.toordinal()))
    chosen = ranked[:x]

    def average(target: pd.DatetimeIndex) -> pd.Series:
        rows = []
        for d in chosen:
            v = _day_values(hist, target, (event_day - d).days, zone)
            if v is None:
                raise BaselineError(f"history on {d} lacks slots needed for the adjustment window")
            rows.append(v)
        return pd.Series(np.mean(np.vstack(rows), axis=0), index=target, name="baseline")

    values = average(slots)
    shift = 0.0
    if adjustment is not None:
        adj_slots = event_slots(slots[0] - adjustment.before_start, slots[0] - adjustment.before_end)
        actual = hist.reindex(adj_slots)
        if actual.isna().any():
            raise BaselineError("actual demand missing in the same-day adjustment window")
        shift = float((actual.to_numpy() - average(adj_slots).to_numpy()).mean())
        values = values + shift

    return BaselineResult(
        values=values.rename("baseline"),
        method=f"high{x}of{y}",
        days=tuple(sorted(chosen, reverse=True)),
        candidates=tuple(selection),
        skipped_low=tuple(skipped),
        adjustment=shift,
    )


def plan_baseline(
    plan: pd.Series, start: datetime | pd.Timestamp, end: datetime | pd.Timestamp
) -> BaselineResult:
    """Plan-based baseline: the submitted per-slot plan over ``[start, end)``, unchanged.

    Raises :class:`BaselineError` when any event slot is missing from the plan.
    """
    slots = event_slots(start, end)
    p = _clean(plan).reindex(slots)
    missing = p.index[p.isna()]
    if len(missing):
        raise BaselineError(f"plan lacks {len(missing)} slot(s), first {missing[0].isoformat()}")
    return BaselineResult(values=p.rename("baseline"), method="plan")


def _select_with_low_rule(
    eligible: list[date], window_mean: dict[date, float], y: int, low_ratio: float
) -> tuple[list[date], list[date]]:
    pool = list(eligible)  # most recent first
    skipped: list[date] = []
    while True:
        selection = pool[:y]
        if not selection:
            return [], skipped
        mean = float(np.mean([window_mean[d] for d in selection]))
        low = [d for d in selection if window_mean[d] < low_ratio * mean]
        if not low:
            return selection, skipped
        skipped.extend(low)
        pool = [d for d in pool if d not in low]


def _day_values(hist: pd.Series, slots: pd.DatetimeIndex, days_back: int, zone: ZoneInfo) -> np.ndarray | None:
    """Values at the same local wall-clock slots ``days_back`` days earlier (None if incomplete)."""
    local = slots.tz_convert(zone)
    shifted = (local.tz_localize(None) - pd.Timedelta(days=days_back)).tz_localize(
        zone, ambiguous="NaT", nonexistent="NaT"
    )
    if shifted.isna().any():
        return None
    v = hist.reindex(shifted.tz_convert("UTC"))
    if v.isna().any():
        return None
    return v.to_numpy(dtype=float)


def _clean(series: pd.Series) -> pd.Series:
    if not isinstance(series.index, pd.DatetimeIndex) or series.index.tz is None:
        raise BaselineError("series must be indexed by tz-aware timestamps")
    s = series.astype(float)
    s.index = s.index.tz_convert("UTC")
    if s.index.has_duplicates:
        raise BaselineError("series has duplicate timestamps")
    return s.sort_index()


def _utc(t: datetime | pd.Timestamp, name: str) -> pd.Timestamp:
    ts = pd.Timestamp(t)
    if ts.tzinfo is None:
        raise BaselineError(f"event {name} must be timezone-aware")
    return ts.tz_convert("UTC")
