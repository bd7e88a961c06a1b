"""Status views of the running site: what the status routes, the event stream and the
dashboard serve. Functions over :class:`~vpp.services.Services` whose ``live`` and
``controller`` are set (the routes answer 503 otherwise).

Units: powers in kW (battery > 0 discharge, grid > 0 import), SoC and floors in % of usable
capacity; every time is :func:`vpp.timefmt.iso` on the runtime's clock (simulated when
simulating), ages are wall seconds.
"""
from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np

from drivers.protocols import Snapshot
from vpp.services import LiveSite, Services
from vpp.control.loop import Controller
from vpp.control.autonomy import live_autonomy
from vpp.control.plan_explain import soc_band, why
from vpp.control.reserve import capacity_weighted
from vpp.timefmt import iso

#: The plan view covers at most this much of the plan.
PLAN_VIEW = timedelta(hours=48)


def _kw(w: float | None) -> float | None:
    return None if w is None or not math.isfinite(w) else round(w / 1000.0, 2)


def _pct(x: float) -> float | None:
    return round(100 * x, 1) if math.isfinite(x) else None


def _parts(s: Services) -> tuple[LiveSite, Controller]:
    if s.live is None or s.controller is None:
        raise LookupError("no running site behind these services")
    return s.live, s.controller


def _live(s: Services, dev_id: str, now: datetime) -> Snapshot | None:
    live, _ = _parts(s)
    return live.liveness.live(dev_id, now)


def flow(s: Services, now: datetime | None = None) -> dict[str, Any]:
    """Live energy flow [kW]: PV (produced), battery (> 0 discharge), EV (charging), grid
    (> 0 import) and site load (``grid + pv + battery − ev``). A quantity whose devices
    are not all live is ``None`` and its devices are listed in ``missing``."""
    now = now or s.now()
    cfg = s.config
    missing: list[str] = []

    def total(devs) -> float | None:
        acc, ok = 0.0, True
        for d in devs:
            snap = _live(s, d.id, now)
            if snap is None:
                missing.append(d.id)
                ok = False
            else:
                acc += float(snap.values.get("power_w", 0.0))
        return acc if ok else None

    pv = total(cfg.devices_of("pv"))
    bat = total(cfg.devices_of("battery"))
    ev = total(cfg.devices_of("ev_charger"))
    meter = cfg.grid_meter()
    grid = total([meter]) if meter is not None else None
    load = None if None in (pv, bat, ev, grid) else grid + pv + bat - ev
    return {"pv_kw": _kw(pv), "battery_kw": _kw(bat), "ev_kw": _kw(ev), "grid_kw": _kw(grid),
            "load_kw": _kw(load), "live": not missing, "missing": sorted(set(missing))}


def battery(s: Services, now: datetime | None = None) -> dict[str, Any]:
    """Site battery: capacity-weighted SoC [%], reserve floor in force [%] (storm included),
    base floor [%], the operator's floor setting [%], reserve state and reason, storm mode,
    headroom [kW] and the live autonomy (:func:`autonomy`)."""
    now = now or s.now()
    _, ctl = _parts(s)
    bats = s.config.devices_of("battery")
    caps = {b.id: b.ratings.capacity_wh for b in bats}
    cap = sum(caps.values())
    socs: dict[str, float] = {}
    floors: dict[str, float] = {}
    bases: dict[str, float] = {}
    up = down = 0.0
    live = bool(bats)
    states, reasons = [], []
    for b in bats:
        r = b.ratings
        floor = float(ctl.floor_at(b, [now])[0])
        floors[b.id], bases[b.id] = floor, ctl.base_floor(b)
        snap = _live(s, b.id, now)
        sm = ctl.reserve.get(b.id)
        if snap is None or not math.isfinite(snap.values.get("soc", math.nan)):
            live = False
            continue
        soc, p = float(snap.values["soc"]), float(snap.values.get("power_w", 0.0))
        socs[b.id] = soc
        if sm is not None:
            lim = sm.limits(soc, floor)
            states.append(lim.state.value)
            reasons.append(lim.reason)
        up += max((r.max_discharge_w if soc > floor else 0.0) - p, 0.0)
        down += max(p + (r.max_charge_w if soc < r.soc_max else 0.0), 0.0)
    storm = ctl.storm
    policy = s.reserve_policy
    return {
        "soc_pct": _pct(capacity_weighted(socs, caps)) if live and cap else None,
        "floor_pct": _pct(capacity_weighted(floors, caps)) if cap else None,
        "base_floor_pct": _pct(capacity_weighted(bases, caps)) if cap else None,
        "floor_setting_pct": policy.floor_pct if policy is not None else s.config.reserve.floor_pct,
        "capacity_kwh": round(cap / 1000, 1),
        "reserve_state": (states[0] if len(set(states)) == 1 else ",".join(states)) if states else None,
        "reserve_reason": "; ".join(x for x in reasons if x) or None,
        "storm": {"active": storm.active, "target_pct": round(100 * storm.target, 1),
                  "deadline": iso(storm.deadline), "reason": storm.reason,
                  "set_by": policy.storm_set_by if storm.active and policy is not None else None},
        **autonomy(s, socs if live else {}, now),
        "headroom": {"up_kw": _kw(up) if live else None, "down_kw": _kw(down) if live else None},
        "live": live,
    }


def autonomy(s: Services, socs: dict[str, float], now: datetime) -> dict[str, Any]:
    """Live autonomy (:func:`vpp.control.autonomy.live_autonomy`): ``autonomy_h`` [h] the usable
    energy carries the critical load + inverter standby + the load groups still on
    (``autonomy_load_kw``), ``autonomy_until`` when that runs out (UTC; None without a
    critical load or a SoC), ``critical_autonomy_h`` on the critical load alone, and the load
    groups with their shed state (``loads``: id, critical, priority, nominal_kw, state ``on`` |
    ``shed``, reason; ``shed``: the shed ids in the order shed)."""
    _, ctl = _parts(s)
    shedder = ctl.shedder
    on = shedder.on_groups() if shedder is not None else [g.id for g in s.config.loads]
    a = live_autonomy(s.config, socs, now, on, ctl.reserve_in_force()) if socs else None
    shed = dict(shedder.shed) if shedder is not None else {}
    return {
        "autonomy_h": round(a.hours, 1) if a is not None else None,
        "autonomy_until": iso(a.until) if a is not None else None,
        "autonomy_load_kw": _kw(a.load_w) if a is not None else None,
        "critical_autonomy_h": round(a.critical_hours, 1) if a is not None else None,
        "loads": [{"id": g.id, "critical": g.critical, "priority": g.priority, "nominal_kw": _kw(g.nominal_w),
                   "state": "shed" if g.id in shed else "on", "reason": shed.get(g.id)} for g in s.config.loads],
        "shed": list(shed),
    }


def grid(s: Services, now: datetime | None = None) -> dict[str, Any]:
    """Grid state: ``connected``, ``outage`` (islanded) or ``unknown`` (no grid reading)."""
    now = now or s.now()
    _, ctl = _parts(s)
    meter = s.config.grid_meter()
    snap = _live(s, meter.id, now) if meter is not None else None
    if ctl.outage is None and snap is None and not ctl.grid_down:
        state = "unknown"
    else:  # the controller's debounced state: what the reserve acts on
        state = "outage" if ctl.grid_down else "connected"
    v = snap.values if snap is not None else {}
    return {"state": state, "voltage_v": v.get("voltage_v"), "frequency_hz": v.get("frequency_hz"),
            "import_limit_kw": _kw(s.config.grid.import_limit_w),
            "export_limit_kw": _kw(s.config.grid.export_limit_w)}


def status(s: Services, aggregate_only: bool = False) -> dict[str, Any]:
    """Site-level live status. ``aggregate_only`` (aggregators) leaves out everything per
    device or per household. ``ts`` is the runtime's time (simulated when simulating, then
    also in ``sim_time``); ``newest_reading`` is the newest good reading's time on the same
    clock and ``newest_reading_age_s`` the wall seconds since it arrived (reading-to-screen
    latency)."""
    live, ctl = _parts(s)
    now = s.now()
    fl = flow(s, now)
    if aggregate_only:
        fl = {k: v for k, v in fl.items() if k != "missing"}
    plan = ctl.plan
    pm = live.pipeline_metrics()
    active = ctl.alarms.active()
    lv = live.liveness
    newest = lv.newest
    age = (datetime.now(timezone.utc) - lv.newest_wall).total_seconds() if lv.newest_wall is not None else None
    policy = s.reserve_policy
    out = {
        "site": s.config.site.name, "timezone": s.config.site.timezone, "ts": iso(now),
        "sim_time": iso(now) if live.simulated else None,
        "newest_reading": iso(newest.ts, ms=True) if newest is not None else None,
        "newest_reading_age_s": round(age, 3) if age is not None else None,
        "flow": fl, "battery": battery(s, now), "grid": grid(s, now),
        "store": {"up": bool(pm.get("store_up")), "queued": pm.get("queued", 0),
                  "spool_bytes": pm.get("spool_bytes", 0)},
        "plan": {"made_at": iso(plan.made_at) if plan else None},
        "alarms": {"active": len(active), "unacked": sum(1 for a in active if not live.operator.acked(a))},
        "simulated": live.simulated, "speed": live.time_scale,
        "jma": dict(live.jma.state) if live.jma is not None else None,
        "reserve_restored": dict(policy.restored) if policy is not None and policy.restored is not None else None,
    }
    if aggregate_only:
        # no per-battery reserve state, no people's names or free text an operator wrote
        b = out["battery"]
        for k in ("reserve_state", "reserve_reason"):
            b.pop(k, None)
        b["storm"] = {k: v for k, v in b["storm"].items() if k not in ("set_by", "reason")}
        out["reserve_restored"] = None
    if not aggregate_only:
        out["decisions"] = {k: {"setpoint_kw": _kw(d.setpoint_w), "source": d.source,
                                "reasons": list(d.reasons)} for k, d in ctl.decisions.items()}
        out["overrides"] = {k: {"setpoint_kw": _kw(o.setpoint_w), "expires_at": iso(o.expires_at)}
                            for k, o in ctl.overrides.items() if o.active(now)}
    return out


def devices(s: Services) -> list[dict[str, Any]]:
    """Per device: availability, quality, last good reading and its age [wall s], main values;
    its protocol, and for batteries capacity [kWh], reserve floor in force [%] and reserve state."""
    live, ctl = _parts(s)
    lv = live.liveness
    now = s.now()
    out = []
    for d in s.config.devices:
        good = lv.last_good.get(d.id)
        cur = lv.latest(d.id)
        lost, why = lv.lost(d.id, now)
        v = good.values if good is not None else {}
        extra: dict[str, Any] = {"protocol": d.protocol}
        if d.kind == "battery":
            floor = float(ctl.floor_at(d, [now])[0])
            sm = ctl.reserve.get(d.id)
            soc = v.get("soc") if not lost else None
            extra.update(capacity_kwh=round((d.ratings.capacity_wh or 0) / 1000, 2), floor_pct=_pct(floor),
                         reserve_state=sm.limits(soc, floor).state.value if sm is not None and soc is not None
                         else None)
        out.append({**extra,
            "id": d.id, "kind": d.kind, "home": d.home, "available": not lost, "reason": why,
            "quality": cur.quality.value if cur is not None else None,
            "last_reading": iso(good.ts) if good else None,
            # wall seconds (readings arrive on the wall clock even when simulating)
            "age_s": round((now - good.ts).total_seconds() / live.time_scale, 1) if good else None,
            "power_kw": _kw(v.get("power_w")) if not lost else None,
            "soc_pct": round(100 * v["soc"], 1) if not lost and "soc" in v else None,
        })
    return out


def alarms(s: Services, include_cleared: int = 20) -> list[dict[str, Any]]:
    """Active alarms (newest first) then the last ``include_cleared`` cleared ones."""
    live, ctl = _parts(s)
    op = live.operator

    def row(a) -> dict[str, Any]:
        ack = op.ack_of(a)
        return {"id": a.key, "reason": a.reason, "severity": a.severity, "active": a.active,
                "raised_at": iso(a.raised_at), "updated_at": iso(a.updated_at),
                "cleared_at": iso(a.cleared_at), "clear_reason": a.clear_reason,
                "acked": ack is not None, "acked_by": ack.by if ack else None,
                "acked_at": iso(ack.at) if ack else None}

    active = [row(a) for a in reversed(ctl.alarms.active())]
    cleared = [row(a) for a in reversed(ctl.alarms.history()[-include_cleared:])] if include_cleared else []
    return active + cleared


def ack(s: Services, alarm_id: str, actor: str) -> dict[str, Any]:
    """Acknowledge the active alarm ``alarm_id`` (:class:`~vpp.errors.ServiceError` 404 if not
    active) and return its row. An alarm raised again after it cleared needs a new one."""
    live, _ = _parts(s)
    live.operator.ack(alarm_id, actor)
    return next(r for r in alarms(s, 0) if r["id"] == alarm_id)


def plan(s: Services, aggregate_only: bool = False) -> dict[str, Any]:
    """The current plan (up to 48 h): per slot forecast PV/load, planned battery (> 0
    discharge) and grid [kW], site SoC trajectory, its p10–p90 band over the plan's
    scenarios and floor [%], buy/sell prices; the storm target [%] while storm mode is on;
    ``why``: what the plan does in the current slot and why, in ja and en
    (:func:`vpp.control.plan_explain.why`)."""
    _, ctl = _parts(s)
    p = ctl.plan
    if p is None:
        a = ctl.alarms.get("plan")
        return {"made_at": None, "slots": [], "reason": a.reason if a else "no plan yet"}
    sch, prob = p.schedule, p.problem
    n = min(sch.n, int(PLAN_VIEW.total_seconds() // sch.slot_s))
    caps = {b.id: b.ratings.capacity_wh for b in s.config.devices_of("battery")}

    def site_pct(per: dict[str, np.ndarray]) -> list[float]:
        return [100 * capacity_weighted({b: float(arr[k]) for b, arr in per.items() if b in caps}, caps)
                for k in range(n)]

    bat = sum((np.asarray(v[:n], dtype=float) for v in sch.battery_w.values()), np.zeros(n))
    soc, floor = site_pct(sch.soc), site_pct(sch.floor)
    buy, sell = prob.prices.buy[:n], prob.prices.sell[:n]
    slots = []
    for k in range(n):
        t = sch.start + timedelta(seconds=k * sch.slot_s)
        slots.append({"start": iso(t), "pv_kw": _kw(float(sch.pv_w[k])), "load_kw": _kw(float(sch.load_w[k])),
                      "battery_kw": _kw(float(bat[k])),
                      "grid_kw": _kw(float(sch.grid_import_w[k] - sch.grid_export_w[k])),
                      "soc_pct": round(float(soc[k]), 1), "floor_pct": round(float(floor[k]), 1),
                      "buy_per_kwh": round(float(buy[k]), 2), "sell_per_kwh": round(float(sell[k]), 2)})
    lo, hi = soc_band(sch, caps, n)
    for row, a, b in zip(slots, lo, hi):
        row["soc_p10_pct"], row["soc_p90_pct"] = a, b
    tz = s.config.site.timezone
    k = int((ctl.now() - sch.start).total_seconds() // sch.slot_s)
    w = why(sch, prob, k, tz, ctl.storm.active) if 0 <= k < sch.n else None
    return {"made_at": iso(p.made_at), "slot_s": sch.slot_s, "currency": s.config.tariff.currency,
            "timezone": tz, "price_version": getattr(p, "price_version", ""),
            "slots": slots, "warnings": [] if aggregate_only else list(sch.warnings),
            "scenarios": max(1, max((len(v) for v in sch.soc_scenarios.values()), default=1)),
            "storm_target_pct": round(100 * ctl.storm.target, 1) if ctl.storm.active else None,
            "why": None if w is None else {"slot": w.slot, "start": iso(sch.start + timedelta(seconds=w.slot * sch.slot_s)),
                                           "action": w.action, "reasons": list(w.reasons),
                                           "ja": w.text("ja", tz), "en": w.text("en", tz)}}
