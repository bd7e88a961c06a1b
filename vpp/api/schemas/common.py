"""Shared pieces of the request and response bodies: kW amounts, slot starts, windows.

Bounds are ``Field`` constraints (or validators whose rule the JSON schema states as a
``pattern``), so the OpenAPI document says what validation enforces. Rules that need state
or the clock (past windows, unknown ids, award ≤ offer, deliverability) live in the
services, not here.
"""
# no ``from __future__ import annotations``: window_query builds its parameters at run time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, TypeVar

from fastapi import Query
from fastapi.exceptions import RequestValidationError
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, WithJsonSchema

from vpp.market.offers import MAX_WINDOW  # the longest window one request may span
from vpp.slots import SLOT_S
from vpp.timefmt import iso

MAX_SLOTS = int(MAX_WINDOW.total_seconds() // SLOT_S)
#: the longest ledger export one request may ask for
MAX_EXPORT_WINDOW = timedelta(days=400)
Kw = Annotated[float, Field(ge=0, le=1_000_000, allow_inf_nan=False, description="[kW]")]

#: Years a request time may name, as written (with its offset): wide enough for any
#: settlement history and plan, narrow enough that offsets and slot arithmetic never overflow
#: (year 1 with an offset is before datetime.min in UTC).
MIN_YEAR, MAX_YEAR = 2000, 2099
D = TypeVar("D", date, datetime)
_YEAR = r"20\d{2}"
TIME_PATTERN = rf"^{_YEAR}-\d{{2}}-\d{{2}}[Tt ]\d{{2}}:\d{{2}}"


def in_range(v: D) -> D:
    """``v`` (a date or datetime) when its year lies in [:data:`MIN_YEAR`, :data:`MAX_YEAR`]
    (ValueError otherwise)."""
    if not MIN_YEAR <= v.year <= MAX_YEAR:
        raise ValueError(f"time must lie in the years {MIN_YEAR}–{MAX_YEAR}")
    return v


#: A request time: RFC 3339 with offset, years :data:`MIN_YEAR`–:data:`MAX_YEAR`.
ApiTime = Annotated[
    AwareDatetime, AfterValidator(in_range),
    WithJsonSchema({"type": "string", "format": "date-time", "pattern": TIME_PATTERN,
                    "description": f"RFC 3339 with offset, years {MIN_YEAR}–{MAX_YEAR}"}),
]

#: RFC 3339 date-time whose UTC instant lies on a 30-minute boundary: :00/:30 with a whole-
#: or half-hour offset, :15/:45 with a quarter-hour offset (e.g. +05:45), no seconds; years
#: as :data:`ApiTime`.
SLOT_START_PATTERN = (rf"^{_YEAR}-\d{{2}}-\d{{2}}[Tt ]\d{{2}}:"
                      r"(?:(?:00|30):00(?:\.0+)?(?:[Zz]|[+-]\d{2}:(?:00|30))"
                      r"|(?:15|45):00(?:\.0+)?[+-]\d{2}:(?:15|45))$")


def on_slot_boundary(v: datetime) -> datetime:
    """``v`` in UTC when it starts a 30-min slot (ValueError otherwise)."""
    try:
        if v.timestamp() % SLOT_S:
            raise ValueError("slot start must be on a 30-minute boundary")
        return v.astimezone(UTC)
    except OverflowError:
        raise ValueError("slot start out of range") from None


SlotStart = Annotated[
    AwareDatetime, AfterValidator(in_range), AfterValidator(on_slot_boundary),
    WithJsonSchema({"type": "string", "format": "date-time", "pattern": SLOT_START_PATTERN,
                    "description": "slot start, RFC 3339 with offset, on a 30-minute boundary (:00 or :30 UTC)"}),
]


class In(BaseModel):
    """Request bodies refuse unknown fields."""

    model_config = ConfigDict(extra="forbid")


class Window(BaseModel):
    start: str
    end: str


def window_error(start: datetime, end: datetime, max_window: timedelta = MAX_WINDOW) -> str | None:
    """Why ``[start, end)`` is not a usable request window, None when it is."""
    if end <= start:
        return "end must be after start"
    if end - start > max_window:
        return f"window must not exceed {max_window.days} days"
    return None


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """A request window ``[start, end)`` (UTC), ``end`` after ``start``, at most :data:`MAX_WINDOW`."""

    start: datetime
    end: datetime


def window_query(max_window: timedelta | None = MAX_WINDOW):
    """A query dependency for ``start`` and ``end``: the :class:`TimeWindow`, or 422 (the
    validation error shape) when ``end`` is not after ``start`` or the window is longer
    than ``max_window`` (None: no limit)."""
    longest = f" and at most {max_window.days} days later" if max_window is not None else ""

    def window(start: Annotated[ApiTime, Query(description="window start, RFC 3339 with offset")],
               end: Annotated[ApiTime, Query(description=f"window end, after start{longest}")]) -> TimeWindow:
        try:
            why = window_error(start, end, max_window or timedelta.max)
            if why is None:
                return TimeWindow(start.astimezone(UTC), end.astimezone(UTC))
        except OverflowError:
            why = "window out of range"
        raise RequestValidationError([{"loc": ("query", "end"), "msg": why, "type": "value_error"}])

    return window


#: ``start``/``end`` query parameters, at most :data:`MAX_WINDOW` apart
time_window = window_query()


def ts(t: datetime) -> str:
    """The API's one timestamp format (:func:`vpp.timefmt.iso`)."""
    return iso(t)  # type: ignore[return-value]


def ts_text(text: str) -> str:
    """A stored ISO timestamp (``Z`` or offset) in the API's one format."""
    return ts(datetime.fromisoformat(text.replace("Z", "+00:00")))
