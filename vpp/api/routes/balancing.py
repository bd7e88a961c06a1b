"""``/balancing``: 計画値同時同量 of the site's balancing group (:mod:`vpp.market.balancing`):
the day's 48-コマ plan, revisions from the controller's schedule and operator edits until
gate closure (an edit of a frozen コマ is 409 with the reason, recorded in the ledger), the
plan file, and actual vs plan with the imbalance in kWh and yen."""
from __future__ import annotations

from datetime import date
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, HTTPException, Query, Request, Response
from pydantic import BaseModel, Field

from vpp.api.deps import Caller, LedgerDep, ServicesDep
from vpp.api.schemas.common import ts
from vpp.forecast.prices import PriceFileError, read_imbalance_csv
from vpp.market.balancing import (BalancingPlans, PlanError, PlanFrozen, imbalance, imbalance_kpis, plan_file,
                                  plan_from_schedule)
from vpp.market.bill import period_bounds
from vpp.storage.base import StorageError

router = APIRouter(prefix="/balancing", tags=["balancing"])
Day = Annotated[date, Query(description="local delivery day")]


def _plans(request: Request, ledger) -> BalancingPlans:
    cfg = request.app.state.config
    return BalancingPlans(ledger, cfg.site.name, cfg.site.timezone)


def _rows(df) -> list[dict[str, Any]]:
    return [{"koma": int(k), "start": ts(r["start"]), "demand_kwh": None if r["demand_kwh"] != r["demand_kwh"] else
             float(r["demand_kwh"]), "supply_kwh": None if r["supply_kwh"] != r["supply_kwh"] else float(r["supply_kwh"]),
             "revision": int(r["revision"]), "frozen": bool(r["frozen"])} for k, r in df.iterrows()]


@router.get("/plan")
def read_plan(_: Caller, request: Request, ledger: LedgerDep, services: ServicesDep, day: Day) -> dict[str, Any]:
    p = _plans(request, ledger)
    return {"group": p.group, "day": day.isoformat(), "koma": _rows(p.current(day, services.now()))}


@router.get("/plan.csv", response_class=Response)
def export_plan(_: Caller, request: Request, ledger: LedgerDep, services: ServicesDep, day: Day) -> Response:
    p = _plans(request, ledger)
    body = plan_file(p.current(day, services.now()), p.group, day, p.tz)
    return Response(body, media_type="text/csv; charset=cp932",
                    headers={"Content-Disposition": f'attachment; filename="plan-{p.group}-{day.isoformat()}.csv"'})


@router.post("/plan/revise")
def revise_from_schedule(principal: Caller, request: Request, ledger: LedgerDep, services: ServicesDep,
                         day: Day) -> dict[str, Any]:
    """A revision from the controller's current plan: open コマ only (frozen ones stay)."""
    ctl = services.controller
    plan = ctl.plan if ctl is not None else None
    if plan is None:
        raise HTTPException(409, "no schedule to plan from (the controller has no plan yet)")
    s = plan.schedule
    rows = plan_from_schedule(s.grid_import_w, s.grid_export_w, s.start, s.slot_s, day, request.app.state.config.site.timezone)
    if not rows:
        raise HTTPException(409, f"the schedule does not cover any コマ of {day.isoformat()}")
    p = _plans(request, ledger)
    rec, changed = p.submit(principal.name, day, rows, services.now(), strict=False, reason="schedule")
    return {"group": p.group, "day": day.isoformat(), "changed": changed,
            "revision": rec.payload["revision"] if rec is not None else None}


class KomaIn(BaseModel):
    koma: Annotated[int, Field(ge=1, le=48)]
    demand_kwh: Annotated[float, Field(ge=0, le=1e6, allow_inf_nan=False)]
    supply_kwh: Annotated[float, Field(ge=0, le=1e6, allow_inf_nan=False)]


class PlanEditIn(BaseModel):
    day: date
    reason: Annotated[str, Field(min_length=3, max_length=200)]
    koma: Annotated[list[KomaIn], Field(min_length=1, max_length=48)]


@router.put("/plan", responses={409: {"description": "a コマ past its gate closure (recorded)"}})
def edit_plan(principal: Caller, request: Request, ledger: LedgerDep, services: ServicesDep,
              body: PlanEditIn) -> dict[str, Any]:
    ks = [k.koma for k in body.koma]
    if len(set(ks)) != len(ks):
        raise HTTPException(422, "each コマ at most once")
    p = _plans(request, ledger)
    try:
        rec, changed = p.submit(principal.name, body.day, {k.koma: (k.demand_kwh, k.supply_kwh) for k in body.koma},
                                services.now(), strict=True, reason=body.reason)
    except PlanFrozen as e:
        raise HTTPException(409, str(e)) from None
    except PlanError as e:
        raise HTTPException(422, str(e)) from None
    return {"group": p.group, "day": body.day.isoformat(), "changed": changed,
            "revision": rec.payload["revision"] if rec is not None else None}


@router.get("/imbalance")
def read_imbalance(_: Caller, request: Request, ledger: LedgerDep, services: ServicesDep, day: Day) -> dict[str, Any]:
    """Actual vs plan per コマ; yen at the configured imbalance prices (null without them)."""
    from vpp.storage.meter_flows import import_export_slots

    cfg = request.app.state.config
    tz = cfg.site.timezone
    if day > services.now().astimezone(ZoneInfo(tz)).date():
        raise HTTPException(422, f"day {day.isoformat()} is in the future")
    p = _plans(request, ledger)
    plan = p.current(day, services.now())
    start, end = period_bounds("day", day, tz)
    meter = cfg.grid_meter()
    store = services.store
    try:
        if store is not None and meter is not None and meter.id in store.devices():
            f = import_export_slots(store, meter.id, start, end)
            imp, exp = f["import_kwh"].to_numpy(), f["export_kwh"].to_numpy()
        else:
            imp = exp = [0.0] * 48
        prices = (read_imbalance_csv(cfg.prices.imbalance_csv, cfg.prices.area, tz)
                  if cfg.prices.imbalance_csv else None)
        table = imbalance(plan, imp, exp, prices)
    except PriceFileError as e:
        raise HTTPException(422, f"imbalance prices: {e}") from None
    except StorageError as e:
        raise HTTPException(503, f"telemetry store unavailable: {e}") from None
    kpi = imbalance_kpis(table)
    if prices is None:
        kpi["yen"] = None
    rows = [{"koma": int(k), "start": ts(r["start"]), **{c: (None if r[c] != r[c] else round(float(r[c]), 4)) for c in
            ("plan_demand_kwh", "plan_supply_kwh", "import_kwh", "export_kwh", "imbalance_kwh", "imbalance_yen")}}
            for k, r in table.iterrows()]
    return {"group": p.group, "day": day.isoformat(), "kpis": kpi, "koma": rows}
