"""Day-ahead bids: the site's aggregator offer per 30-min slot of one day (service layer).

:func:`plan_bids` is what ``vpp bids`` and ``GET /api/v1/bids`` both call. It builds the
problem ``vpp plan`` builds (:func:`vpp.forecast.site.forecast_site`,
:func:`vpp.control.problem.build_problem`) from the current 30-min slot, long enough to cover the whole bid day, adds the offers section
(prices per slot, product duration ``vpp.duration_s``, expected activation
``vpp.activation_ratio``, pessimistic PV/load at ``vpp.confidence`` from past forecast
errors) and solves it once: the energy plan and the offers are co-optimised.

Contract
--------
* ``day`` is a local date of the site time zone; it may be today or tomorrow (day-ahead);
  earlier → :class:`BidError` "in the past", later → "too far ahead" (status 422).
* The deadline is 14:00 site time the day before (:func:`bid_deadline`); the result says
  whether it has passed (``late``), callers decide what to do with a late bid.
* Prices are checked by :mod:`vpp.market.prices`; prices for another day, negative prices,
  slots off the 30-min grid → :class:`BidError` (422). A slot without a price is not offered.
* Storm mode and JMA warnings remove only the slots they affect: a slot ``[s, s+30 min)`` is
  removed when it overlaps ``[start − storm_lead_h, end)`` of a storm (start = the storm
  deadline, open-ended: storm mode lasts until switched off) or of a JMA warning window
  (:func:`vpp.market.jma.warning_windows`). The plan raises the reserve floor toward the
  storm target over that lead (for a warning: back to the base floor after it ends), so
  offers next to a removed slot never count on the energy the storm needs.
* Slots that have already started (a bid for today) are removed too. The disaster reserve
  is never offered: the optimiser keeps every offer deliverable above the floor for the
  product duration, in the pessimistic case.
* With ``optimiser.planner == "fleet"`` (a town) the controller's fleet planner solves it
  (:func:`vpp.control.fleet_planner.fleet_solver`): offers are sized on the aggregate
  virtual battery (which already respects every home's power and meter limits), then
  checked on the homes as awards are (summed energy above each home's own floor ≥ offer ×
  duration, power headroom, feeder room) and cut per slot to what the homes can deliver;
  the slot's ``reason`` says why. The site LP over hundreds of batteries is not solved.
* Only site-level aggregates leave this module (no per-device or household data).

Units: W, s, prices in the tariff currency (capacity per kW per slot, energy per kWh).
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

import optimizer
from vpp.config import SiteConfig
from vpp.control.ev import stored_sessions
from vpp.control.fleet_planner import planner_for
from vpp.control.demand import demand_params
from vpp.control.problem import build_problem, problem_horizon, slot_times
from vpp.control.reserve import StormMode, battery_floors, window_floor
from vpp.forecast.site import forecast_site
from vpp.slots import floor_time
from vpp.market.jma import JmaFormatError, WarningWindow, warning_windows
from vpp.market.offers import OfferSlot as BidSlot  # the one offer record
from vpp.market.prices import SLOT_S, PriceError, day_slots, default_prices, prices_for_day, to_market_prices
from vpp.forecast.prices import PriceFileError, price_provider

log = logging.getLogger(__name__)

__all__ = ["BidError", "BidSlot", "BidResult", "Blackout", "bid_deadline", "check_day", "storm_blackout",
           "jma_blackouts", "blackout_reason", "plan_bids", "price_frame", "record_prices", "posted_prices"]

from vpp.slots import SLOT  # noqa: E402
STARTED = "slot already started"


class BidError(ValueError):
    """Bad bid request (``status`` 422) or no plan could be made (503: solver failure, or an
    ``optimiser.slot_s`` that does not divide the 30-min offer slot)."""

    def __init__(self, message: str, status: int = 422, code: str = "invalid_bid_request") -> None:
        super().__init__(message)
        self.status, self.code = status, code


@dataclass(frozen=True)
class Blackout:
    """Slots overlapping ``[start, end)`` are not offered (``end`` None: open-ended)."""

    start: datetime
    end: datetime | None
    reason: str


@dataclass
class BidResult:
    """The bid for ``day``: one :class:`BidSlot` per 30-min slot of the local day."""

    site: str
    day: date
    timezone: str
    generated_at: datetime
    deadline: datetime
    duration_s: float
    activation_ratio: float
    confidence: float
    slots: list[BidSlot]
    storm: str | None = None  #: why slots were removed by storm mode / warnings (None: none were)
    warnings: list[str] = field(default_factory=list)
    #: the co-optimised plan the offers were sized against (per device: stays in-process)
    schedule: optimizer.Schedule | None = field(default=None, repr=False)

    @property
    def late(self) -> bool:
        """The day-ahead deadline has passed."""
        return self.generated_at > self.deadline

    @property
    def expected_revenue(self) -> float:
        return float(sum(s.expected_revenue for s in self.slots))

    @property
    def revenue_at_risk(self) -> float:
        """Expected revenue that depends on being dispatched (energy payments) [currency]."""
        return float(sum(s.expected_revenue - s.capacity_payment for s in self.slots))

    @property
    def removed(self) -> list[BidSlot]:
        return [s for s in self.slots if s.removed]


def bid_deadline(day: date, tz: str) -> datetime:
    """Day-ahead gate closure for ``day``: 14:00 site time the day before (tz-aware)."""
    return datetime.combine(day - timedelta(days=1), time(14, 0), tzinfo=ZoneInfo(tz))


def check_day(day: date, now: datetime, tz: str) -> None:
    """Refuse a bid day before today or after tomorrow (site time) with :class:`BidError`."""
    today = now.astimezone(ZoneInfo(tz)).date()
    if day < today:
        raise BidError(f"day {day.isoformat()} is in the past (today is {today.isoformat()} in {tz})")
    if day > today + timedelta(days=1):
        raise BidError(f"day {day.isoformat()} is too far ahead: bids are day-ahead, at most "
                       f"{(today + timedelta(days=1)).isoformat()} (today is {today.isoformat()} in {tz})")


def storm_blackout(storm: StormMode | None, lead: timedelta, tz: str = "UTC",
                   reason_public: bool = False) -> Blackout | None:
    """The slots storm mode takes out: from ``deadline − lead`` on, open-ended (storm mode
    lasts until switched off). The reason names the target and deadline; the storm's own
    reason only when ``reason_public`` (raised by the JMA watch: public warning text). An
    operator's reason is free text (names, phone numbers), and bids go to aggregators."""
    if storm is None or not storm.active or storm.deadline is None:
        return None
    by = storm.deadline.astimezone(ZoneInfo(tz)).isoformat(timespec="minutes")
    why = f" ({storm.reason})" if reason_public and storm.reason else ""
    return Blackout(storm.deadline - lead, None,
                    f"storm mode{why}: floor to {100 * storm.target:.0f} % by {by}")


def jma_blackouts(doc: Mapping[str, Any], config: SiteConfig, lead: timedelta) -> list[Blackout]:
    """One blackout per warning window of ``doc`` (:func:`vpp.market.jma.warning_windows` for
    ``vpp.jma.area_code`` / ``raise_codes``), starting ``lead`` before the window."""
    try:
        windows: list[WarningWindow] = warning_windows(doc, config.vpp.jma)
    except JmaFormatError as e:
        raise BidError(f"JMA warning document: {e}") from None
    return [Blackout(w.start - lead, w.end, w.reason) for w in windows]


def blackout_reason(start: datetime, blackouts: list[Blackout]) -> str:
    """Reason of the first blackout overlapping the slot ``[start, start + 30 min)`` ('' = none)."""
    end = start + SLOT
    for b in blackouts:
        if b.start < end and (b.end is None or start < b.end):
            return b.reason
    return ""


def plan_bids(config: SiteConfig, day: date, prices: pd.DataFrame | None = None, *, now: datetime,
              soc: Mapping[str, float], weather: Any = None, store: Any = None, storm: StormMode | None = None,
              jma_doc: Mapping[str, Any] | None = None, errors: pd.DataFrame | None = None,
              duration_s: float | None = None, storm_reason_public: bool = False) -> BidResult:
    """Co-optimise the plan and the offer for local ``day`` (see the module docstring).

    Parameters
    ----------
    prices : DataFrame or None
        Per-slot prices as :func:`vpp.market.prices.parse_price_csv` returns them (UTC slot
        starts); None = the config defaults (``vpp.capacity_price_per_kw`` …).
    now : datetime
        Planning time (tz-aware; naive = site time).
    soc : mapping
        Starting SoC [fraction] per battery id (missing: 0.5).
    weather, store
        Weather provider (None = clear sky) and telemetry store (load history, PV bias).
    storm : StormMode or None
        Storm mode in force (the running controller's); its deadline and target are used.
    jma_doc : mapping or None
        A JMA warning document for the site's area (read with ``vpp.jma``).
    errors : DataFrame or None
        Past forecast errors [W], columns ``pv_error_w`` / ``load_error_w``.
    duration_s : float or None
        Product duration the offers must sustain [s] (default ``vpp.duration_s``).
    storm_reason_public : bool
        The storm's own reason may be named in the slots' reasons (raised by the JMA watch).
    """
    tz = config.site.timezone
    if now.tzinfo is None:
        now = now.replace(tzinfo=ZoneInfo(tz))
    now = now.astimezone(timezone.utc)
    check_day(day, now, tz)
    try:
        frame = prices if prices is not None else default_prices(config.vpp, day, tz)
        frame = with_spot(prices_for_day(frame, day, tz), config)
    except (PriceError, PriceFileError) as e:
        raise BidError(f"prices: {e}") from None
    v = config.vpp
    lead = timedelta(hours=config.reserve.storm_lead_h)
    blackouts: list[Blackout] = []
    sb = storm_blackout(storm, lead, tz, storm_reason_public)
    if sb is not None:
        blackouts.append(sb)
    jma = jma_blackouts(jma_doc, config, lead) if jma_doc is not None else []
    blackouts += jma

    day_start = datetime.combine(day, time(0), tzinfo=ZoneInfo(tz)).astimezone(timezone.utc)
    day_end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=ZoneInfo(tz)).astimezone(timezone.utc)
    t0 = floor_time(now, SLOT_S)  # offer slots are wall-clock half hours
    need_h = (day_end - t0).total_seconds() / 3600.0
    o = config.optimiser
    if SLOT_S % o.slot_s:
        raise BidError(f"optimiser.slot_s {o.slot_s} s does not divide the 30-min offer slot", 503, "bad_config")
    if need_h > o.horizon_h:  # plan at least to the end of the bid day
        config = config.model_copy(update={"optimiser": o.model_copy(update={"horizon_h": float(np.ceil(need_h))})})
    plan_storm = StormMode(lead=lead, target=config.reserve.storm_target_pct / 100.0)
    if storm is not None and storm.active:
        plan_storm.on(storm.activated_at or now, storm.target, storm.deadline, storm.reason)
    fc, _ = forecast_site(config, t0, store=store, weather=weather)
    h = problem_horizon(config, fc, t0)
    times = slot_times(h)
    floors = battery_floors(config, times, plan_storm)
    if jma:  # the warning windows raise the floor as storm mode would (blackouts start `lead` early)
        windows = [(b.start + lead, b.end) for b in jma]
        floors = {k: window_floor(f, times, plan_storm.target, windows, lead) for k, f in floors.items()}
    soc0 = {b.id: float(soc.get(b.id, 0.5)) for b in config.devices_of("battery")}
    problem = build_problem(config, fc, soc0, floors, None, start=t0, evs=stored_sessions(config, store, t0, h),
                            errors=errors)
    n_off = h.n // (SLOT_S // h.slot_s)
    starts = [h.start + SLOT * j for j in range(n_off)]
    blocked = {}
    for j, s in enumerate(starts):
        if not day_start <= s < day_end:
            blocked[j] = "outside the bid day"
        elif s < now:
            blocked[j] = STARTED
        elif why := blackout_reason(s, blackouts):
            blocked[j] = why
    market = to_market_prices(frame, h.start, n_off)
    # a down offer is extra import when called: priced against the month's peak (高圧 demand charge)
    problem.demand = demand_params(config, store, now)
    problem.offers = optimizer.OfferParams(
        prices=market, slot_s=SLOT_S, duration_s=duration_s or v.duration_s, activation_ratio=v.activation_ratio,
        blocked=blocked, **_pessimistic(errors, problem, v.confidence))
    try:  # the controller's planner: the site LP, or for a town the fleet's aggregate problem
        sched = planner_for(config)(problem)
    except PriceError as e:
        raise BidError(f"prices: {e}") from None
    except optimizer.SolveError as e:
        raise BidError(f"no plan: {e}", 503, "solver_failed") from None
    by_start = {o_.slot_start: o_ for o_ in sched.offers}
    slots = []
    for t in day_slots(day, tz):
        s = t.to_pydatetime()
        p = frame.loc[t]  # the prices as given (NaN = none; the optimiser reads NaN as 0)
        price = (float(p["capacity_up"]), float(p["capacity_down"]), float(p["energy_up"]), float(p["energy_down"]),
                 float(p["spot"]))
        if s in by_start:
            of = by_start[s]
            why = blocked.get(starts.index(s), of.reason) if s in starts else of.reason
            slots.append(BidSlot(s, of.up_w, of.down_w, *price, of.expected_revenue,
                                 why, s < now or bool(blackout_reason(s, blackouts))))
        else:  # before the horizon start: the slot has started (a bid for today)
            slots.append(BidSlot(s, 0.0, 0.0, *price, 0.0, STARTED, True))
    hit = sorted({s.reason for s in slots if s.removed and s.reason != STARTED})
    return BidResult(site=config.site.name, day=day, timezone=tz, generated_at=now, deadline=bid_deadline(day, tz),
                     duration_s=problem.offers.duration_s, activation_ratio=v.activation_ratio,
                     confidence=v.confidence, slots=slots, storm="; ".join(hit) or None,
                     warnings=list(sched.warnings), schedule=sched)


def with_spot(frame: pd.DataFrame, config: SiteConfig) -> pd.DataFrame:
    """``frame`` with the spot column filled, where empty, from the config's price provider
    (the JEPX area price, or its stated forecast; TOU sites have none)."""
    if config.prices.source == "tou" or frame["spot"].notna().all():
        return frame
    spot = price_provider(config).energy(frame.index)["spot_per_kwh"]
    return frame.assign(spot=frame["spot"].fillna(spot))


PRICE_COLUMNS = ("capacity_up", "capacity_down", "energy_up", "energy_down", "spot")


def price_frame(rows: list[Mapping[str, Any]], day: date, tz: str) -> pd.DataFrame:
    """Prices posted per slot (``start`` tz-aware on a 30-min boundary, the
    :data:`PRICE_COLUMNS`, None = no price) as the frame :func:`plan_bids` takes, on the 48
    slots of ``day``. A slot off the grid, a duplicate, a negative or non-finite price or a
    slot of another day → :class:`BidError` (422)."""
    try:
        starts = [pd.Timestamp(r["start"]).tz_convert("UTC") for r in rows]
    except (ValueError, TypeError, OverflowError) as e:
        raise BidError(f"prices: bad slot start: {e}") from None
    if any(t.value % (SLOT_S * 10**9) for t in starts):
        raise BidError("prices: every slot start must be on a 30-minute boundary")
    if len(set(starts)) != len(starts):
        raise BidError("prices: duplicate slot start")
    data = {c: [np.nan if r.get(c) is None else float(r[c]) for r in rows] for c in PRICE_COLUMNS}
    if any(not np.isnan(x) and (x < 0 or not np.isfinite(x)) for v in data.values() for x in v):
        raise BidError("prices: prices must be finite and ≥ 0")
    frame = pd.DataFrame(data, index=pd.DatetimeIndex(starts, name="slot_start")).sort_index()
    try:
        return prices_for_day(frame, day, tz)
    except PriceError as e:
        raise BidError(f"prices: {e}") from None


def _prices_ref(day: date) -> str:
    return f"bid_prices:{day.isoformat()}"


def record_prices(ledger: Any, actor: str, key: str, day: date, rows: list[Mapping[str, Any]], *, now: datetime,
                  tz: str) -> tuple[Any, bool]:
    """Check and record the aggregator's prices for ``day`` in the ledger (an ``audit``
    record, action ``bid_prices``, ref ``bid_prices:<day>``, idempotent on ``key``); the
    latest posted prices of a day are the ones :func:`posted_prices` returns. A day that
    is not today or tomorrow → :class:`BidError`. Returns ``(record, created)``."""
    check_day(day, now, tz)
    frame = price_frame(rows, day, tz).dropna(how="all")
    payload = {"action": "bid_prices", "day": day.isoformat(),
               "slots": [{"start": t.isoformat().replace("+00:00", "Z"),
                          **{c: (None if np.isnan(r[c]) else float(r[c])) for c in PRICE_COLUMNS}}
                         for t, r in frame.iterrows()]}
    return ledger.record("audit", actor, payload, ref=_prices_ref(day), idempotency_key=key)


def posted_prices(ledger: Any, day: date, tz: str) -> pd.DataFrame | None:
    """The latest prices posted for ``day`` (:func:`record_prices`), None if none were."""
    recs = [r for r in ledger.query(kinds=["audit"], ref=_prices_ref(day)) if r.payload.get("action") == "bid_prices"]
    if not recs:
        return None
    return price_frame(recs[-1].payload["slots"], day, tz)


def _pessimistic(errors: pd.DataFrame | None, problem: optimizer.Problem, confidence: float) -> dict:
    """Low/high PV and load [W] at ``confidence`` from past errors (empty without them)."""
    if errors is None:
        return {}
    q = 1.0 - confidence
    out = {}
    if "pv_error_w" in errors:
        out["pv_low_w"], _, out["pv_high_w"] = optimizer.forecast_quantiles(
            errors["pv_error_w"].to_numpy(float), problem.pv_w, q)
    if "load_error_w" in errors:
        out["load_low_w"], _, out["load_high_w"] = optimizer.forecast_quantiles(
            errors["load_error_w"].to_numpy(float), problem.load_w, q)
    return out
