"""Step 3 of fleet planning: re-check the disaggregated plan on every home and the feeder.

Every home's power, SoC, floor and meter limits and the feeder limits are re-checked
(:func:`check_limits`). Awards are re-checked on the homes (:func:`check_vpp`): summed energy
above the floors ≥ award × duration at the start and end of each award slot, summed power
headroom (:func:`headroom`) ≥ award, the feeder limit leaves room for it, and Σ_h battery
power = dispatch; a miss is a violation. Where the aggregate already reports an award short,
the homes' own shortfall counts (:func:`homes_award_shortfall`, a warning). Offers are
checked as awards (:func:`offers_as_awards`) and cut to what the homes can deliver
(:func:`check_offers`, :func:`check_offers_on_homes`). :func:`plan_warnings` compares the
homes' plan with the aggregate's (tracking error, unserved load, EV energy short).

Per-home arrays are ``(H, n)``; homes by row, slots by column; units W, fraction, Wh.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..inputs import VppCommitments
from ..schedule import Schedule
from .problem import TOL, FleetProblem

__all__ = ["activation_offset", "check_limits", "check_offers", "check_offers_on_homes", "check_vpp", "headroom",
           "homes_award_shortfall", "offers_as_awards", "plan_warnings"]

CUT = "homes cannot deliver the aggregate offer: "


def check_limits(fp, a, bw, soc, grid, imp, exp) -> list[str]:
    """Broken limits in words: home battery power, SoC window, reserve floor (a home below it
    may only recover), home meters and the feeder (empty = all within limits)."""
    out = []
    tol_w = 1.0
    if np.any(bw > a["max_discharge_w"][:, None] + tol_w) or np.any(-bw > a["max_charge_w"][:, None] + tol_w):
        out.append("home battery power limit exceeded")
    if np.any(soc > a["soc_max"][:, None] + TOL) or np.any(soc < np.minimum(a["soc_min"], a["soc0"])[:, None] - TOL):
        out.append("home SoC outside its window")
    # a home below its floor may only be there while recovering: SoC never falls there
    prev = np.concatenate([a["soc0"][:, None], soc[:, :-1]], axis=1)
    below = soc < a["floor"] - TOL
    if np.any(below & (soc < prev - TOL)):
        out.append("home discharged below its reserve floor")
    if np.any(grid > a["home_import_limit_w"][:, None] + tol_w) or np.any(-grid > a["home_export_limit_w"][:, None] + tol_w):
        out.append("home meter limit exceeded")
    if np.any(imp > fp.feeder.import_limit_w + tol_w) or np.any(exp > fp.feeder.export_limit_w + tol_w):
        out.append("feeder limit exceeded")
    return out


def headroom(fp, a, caps, bw, soc) -> dict[str, np.ndarray]:
    """The homes' summed VPP headroom per slot (see :class:`~optimizer.fleet.problem.FleetPlan`):
    energy [Wh] at the smaller of slot start and end, power [W] from the caps and the planned
    battery power (a home below its floor offers no discharge, only less charging)."""
    cap, fl, smax = a["capacity_wh"][:, None], a["floor"], a["soc_max"][:, None]
    prev = np.concatenate([a["soc0"][:, None], soc[:, :-1]], axis=1)

    def up(x):
        return (a["eta_discharge"][:, None] * cap * np.clip(x - fl, 0, None)).sum(axis=0)

    def dn(x):
        return (cap / a["eta_charge"][:, None] * np.clip(smax - x, 0, None)).sum(axis=0)

    below = soc < fl - TOL
    return {
        "up_wh": np.minimum(up(prev), up(soc)),
        "down_wh": np.minimum(dn(prev), dn(soc)),
        "up_w": (np.where(caps["recovering"] | below, 0.0, caps["cap_d"]) - bw).sum(axis=0),
        "down_w": (caps["cap_c"] + bw).sum(axis=0),
    }


def homes_award_shortfall(fp, agg: Schedule, imp, exp, head) -> Schedule:
    """Where the aggregate already reports an award shortfall (award at risk), the homes'
    own shortfall counts: ``A − min(headroom_w, headroom_wh/τ, feeder room)`` [W] if larger
    (the aggregate, pushed to its limits, may plan what the homes cannot track, e.g. homes
    full before the virtual battery). Slots the aggregate keeps in full are left to
    :func:`check_vpp` (a miss there is a violation)."""
    v = fp.vpp
    if v is None or agg.award_shortfall_up_w is None:
        return agg
    n, tau = fp.horizon.n, v.duration_s / 3600.0
    g = exp - imp
    out, grew = {}, []
    for side, award, short, kept in (
        ("up", v.award_up_w, agg.award_shortfall_up_w,
         np.minimum(np.minimum(head["up_w"], head["up_wh"] / tau), fp.feeder.export_limit_w - g)),
        ("down", v.award_down_w, agg.award_shortfall_down_w,
         np.minimum(np.minimum(head["down_w"], head["down_wh"] / tau), fp.feeder.import_limit_w + g)),
    ):
        A = np.nan_to_num(np.broadcast_to(np.asarray(award, float), (n,)), nan=0.0)
        homes = np.clip(A - np.clip(kept, 0.0, None), 0.0, A)
        new = np.where(short > 1.0, np.maximum(short, homes), short)
        if np.any(new > short + 1.0):
            grew.append(f"VPP {side} award at risk: the homes keep up to {(new - short).max() / 1000:.2f} kW less "
                        f"than the aggregate plan")
        out[f"award_shortfall_{side}_w"] = new
    return dataclasses.replace(agg, warnings=list(agg.warnings) + grew, **out)


def check_vpp(fp, agg: Schedule, bw, imp, exp, head) -> list[str]:
    """Awards the disaggregated plan cannot deliver beyond the aggregate's reported award
    shortfall, and dispatches the homes do not follow (as the site model states them,
    :func:`optimizer.model_vpp.add_vpp`)."""
    v = fp.vpp
    if v is None:
        return []
    n = fp.horizon.n
    tau = v.duration_s / 3600.0
    up = np.nan_to_num(np.broadcast_to(np.asarray(v.award_up_w, float), (n,)), nan=0.0)
    dn = np.nan_to_num(np.broadcast_to(np.asarray(v.award_down_w, float), (n,)), nan=0.0)
    # the part the aggregate already reports as not deliverable (its award shortfall, a
    # warning of the aggregate plan) is not the homes' violation
    if agg.award_shortfall_up_w is not None:
        up = np.clip(up - agg.award_shortfall_up_w, 0.0, None)
        dn = np.clip(dn - agg.award_shortfall_down_w, 0.0, None)
    tol_w = 1.0
    out = []

    def slots(mask) -> str:
        idx = np.flatnonzero(mask)
        return ", ".join(str(int(t)) for t in idx[:5]) + (" …" if idx.size > 5 else "")

    bad_up = (up > 0) & ((head["up_wh"] < up * tau - np.maximum(tol_w, 1e-4 * up * tau))
                         | (head["up_w"] < up - tol_w) | (exp - imp + up > fp.feeder.export_limit_w + tol_w))
    if bad_up.any():
        out.append(f"VPP up award not deliverable by the homes in slots {slots(bad_up)}")
    bad_dn = (dn > 0) & ((head["down_wh"] < dn * tau - np.maximum(tol_w, 1e-4 * dn * tau))
                         | (head["down_w"] < dn - tol_w) | (imp - exp + dn > fp.feeder.import_limit_w + tol_w))
    if bad_dn.any():
        out.append(f"VPP down award not deliverable by the homes in slots {slots(bad_dn)}")
    if v.dispatch_w is not None:
        d = np.broadcast_to(np.asarray(v.dispatch_w, float), (n,))
        short = agg.dispatch_shortfall_w if agg.dispatch_shortfall_w is not None else np.zeros(n)
        miss = np.isfinite(d) & (np.abs(bw.sum(axis=0) - d) > np.abs(short) + tol_w)
        if miss.any():
            out.append(f"VPP dispatch not followed by the homes in slots {slots(miss)}")
    return out


def activation_offset(fp: FleetProblem, a: dict[str, np.ndarray], agg: Schedule) -> np.ndarray:
    """SoC offset [fraction] (n,) of the aggregate's expected activation of its offers, as its
    SoC balance carries it (:func:`optimizer.model_vpp.add_offers`):
    ``Σ_{u≤t} α·dt/C·(η_c·dn[u] − up[u]/η_d)``, the same for every home (capacity-weighted
    efficiencies as in :func:`~optimizer.fleet.aggregate.aggregate_problem`)."""
    o, dt = fp.offers, fp.horizon.dt_h
    C = float(a["capacity_wh"].sum())
    w = a["capacity_wh"] / C
    etac, etad = float(w @ a["eta_charge"]), float(w @ a["eta_discharge"])
    step = o.activation_ratio * dt / C * (etac * agg.offer_down_w - agg.offer_up_w / etad)
    return np.cumsum(step)[None, :]


def offers_as_awards(fp: FleetProblem, agg: Schedule) -> FleetProblem:
    """``fp`` with the offered ΔkW (``agg.offer_up_w`` / ``offer_down_w``, per plan slot)
    added to the awards the aggregate keeps (award − its shortfall), for
    ``offers.duration_s``: an offer is checked as an award would be (:func:`check_vpp`)."""
    n = fp.horizon.n
    v = fp.vpp or VppCommitments()
    up = np.nan_to_num(np.broadcast_to(np.asarray(v.award_up_w if v.award_up_w is not None else 0.0, float), (n,)))
    dn = np.nan_to_num(np.broadcast_to(np.asarray(v.award_down_w if v.award_down_w is not None else 0.0, float), (n,)))
    if agg.award_shortfall_up_w is not None:
        up = np.clip(up - agg.award_shortfall_up_w, 0.0, None)
        dn = np.clip(dn - agg.award_shortfall_down_w, 0.0, None)
    return dataclasses.replace(fp, vpp=dataclasses.replace(
        v, award_up_w=up + agg.offer_up_w, award_down_w=dn + agg.offer_down_w,
        duration_s=fp.offers.duration_s, dispatch_w=None))


def check_offers(fp: FleetProblem, agg: Schedule, imp, exp, head) -> Schedule:
    """Cut the aggregate's offers to what the homes can deliver (as :func:`check_vpp`
    checks an award): in every plan slot ``t`` of offer slot ``j``, up ≤
    ``min(headroom_up_w, headroom_up_wh/τ, E − (export − import)) − award_up`` and down ≤
    ``min(headroom_down_w, headroom_down_wh/τ, I − (import − export)) − award_down`` [W]
    (``τ = offers.duration_s``; headroom energy counts only each home's energy above its
    own floor, so a delivered offer never takes a home below its floor). A cut offer keeps
    what is left with a reason; revenue, the per-slot offer arrays and the expected
    activation are recomputed."""
    o = fp.offers
    n, k = fp.horizon.n, o.steps(fp.horizon.slot_s)
    tau = o.duration_s / 3600.0
    v = fp.vpp
    g = exp - imp

    def award(x) -> np.ndarray:
        return np.zeros(n) if v is None or x is None else np.nan_to_num(np.broadcast_to(np.asarray(x, float), (n,)))

    room = {}
    for side, hw, hwh, feed, aw in (
        ("up", head["up_w"], head["up_wh"], fp.feeder.export_limit_w - g, award(v and v.award_up_w)),
        ("down", head["down_w"], head["down_wh"], fp.feeder.import_limit_w + g, award(v and v.award_down_w)),
    ):
        parts = np.vstack([hw, hwh / tau, feed]) - aw
        room[side] = (np.clip(parts.min(axis=0), 0.0, None), parts.argmin(axis=0))
    why = {"up": ("power headroom", f"energy above their floors for {o.duration_s / 3600:.2g} h", "feeder limit"),
           "down": ("power headroom", f"room below soc_max for {o.duration_s / 3600:.2g} h", "feeder limit")}
    a, h = o.activation_ratio, o.slot_s / 3600.0
    offers, cut = [], 0
    up_w, dn_w = agg.offer_up_w.copy(), agg.offer_down_w.copy()
    for j, of in enumerate(agg.offers):
        sl = slice(j * k, min(n, (j + 1) * k))
        new, notes = {}, []
        for side, val in (("up", of.up_w), ("down", of.down_w)):
            r, arg = room[side]
            i = sl.start + int(np.argmin(r[sl])) if r[sl].size else sl.start
            keep = float(r[i]) if r[sl].size else 0.0
            if val > keep + 1.0:
                new[side] = max(np.floor(keep), 0.0)
                notes.append(f"{side} {val / 1000:.1f} → {new[side] / 1000:.1f} kW ({why[side][int(arg[i])]})")
            else:
                new[side] = val
        if not notes:
            offers.append(of)
            continue
        cut += 1
        u, d = new["up"], new["down"]
        up_w[sl], dn_w[sl] = u, d
        cu, cd = np.nan_to_num(of.capacity_price_up), np.nan_to_num(of.capacity_price_down)
        eu, ed = np.nan_to_num(of.energy_price_up), np.nan_to_num(of.energy_price_down)
        rev = (cu * u + cd * d) / 1000.0 + a * h * (eu * u + ed * d) / 1000.0
        offers.append(dataclasses.replace(of, up_w=u, down_w=d, expected_revenue=float(rev),
                                          reason=(of.reason + "; " if of.reason.startswith(CUT) else CUT)
                                          + "; ".join(notes)))
    if not cut:
        return agg
    cut = sum(x.reason.startswith(CUT) for x in offers)
    risk = sum(a * h * (np.nan_to_num(x.energy_price_up) * x.up_w + np.nan_to_num(x.energy_price_down) * x.down_w)
               / 1000.0 for x in offers)
    act = {b: a * (up_w - dn_w) for b in agg.expected_activation_w}
    return dataclasses.replace(
        agg, offers=offers, offer_up_w=up_w, offer_down_w=dn_w, expected_activation_w=act,
        expected_revenue=float(sum(x.expected_revenue for x in offers)), revenue_at_risk=float(risk),
        warnings=[w for w in agg.warnings if not w.startswith("offers cut")]
        + [f"offers cut to what the homes can deliver in {cut} offer slots"])


def check_offers_on_homes(fp: FleetProblem, a: dict[str, np.ndarray], caps: dict[str, np.ndarray], agg: Schedule,
                          bw: np.ndarray, soc: np.ndarray, imp: np.ndarray, exp: np.ndarray
                          ) -> tuple[Schedule, list[str]]:
    """The aggregate's offers cut to what the homes deliver (:func:`check_offers`), and the
    offers the homes still miss, as violations.

    Offers are sized on the expected trajectory (the aggregate SoC carries the expected
    activation), so the homes' energy is checked on it too; power as planned.
    """
    if fp.offers is None or not agg.offers:
        return agg, []
    for _ in range(3):  # cuts change the expected activation: re-check until none
        head_o = headroom(fp, a, caps, bw, soc + activation_offset(fp, a, agg))
        before = agg
        agg = check_offers(fp, agg, imp, exp, head_o)
        if agg is before:
            break
    viol = [v.replace("award", "offer") for v in check_vpp(offers_as_awards(fp, agg), dataclasses.replace(
        agg, award_shortfall_up_w=None, award_shortfall_down_w=None), bw, imp, exp, head_o)]
    return agg, viol


def plan_warnings(fp: FleetProblem, caps: dict[str, np.ndarray], agg: Schedule, bw: np.ndarray, ev: np.ndarray,
                  unserved: np.ndarray) -> tuple[np.ndarray, float, list[str]]:
    """``(ev_unmet_wh (S,), tracking_error_w, warnings)``: each EV session's energy short at
    departure [Wh], the largest |Σ_h battery + recovery − aggregate battery| [W], and the
    aggregate's warnings plus the homes' (unserved load, tracking, EVs shorter than the
    aggregate plan)."""
    dt = fp.horizon.dt_h
    need = np.array([max(float(s.energy_wh), 0.0) for s in fp.evs])
    ev_unmet = np.clip(need - ev.sum(axis=1) * dt, 0, None) if len(fp.evs) else np.zeros(0)
    recovery_w = caps["r"].sum(axis=0)
    track = float(np.abs(bw.sum(axis=0) + recovery_w - agg.battery_w["fleet"]).max())
    warn = list(agg.warnings)
    if unserved.max() > 1.0:
        warn.append(f"{int((unserved.max(axis=1) > 1).sum())} homes cannot serve their load within their meter limit")
    if track > 1.0:
        warn.append(f"homes track the aggregate battery plan within {track:.0f} W")
    agg_unmet = sum(agg.ev_unmet_wh.values())
    if ev_unmet.sum() > agg_unmet + 1.0:
        warn.append(f"{int((ev_unmet > 1.0).sum())} EV sessions short by {(ev_unmet.sum() - agg_unmet) / 1000:.1f} kWh "
                    "more than the aggregate plan")
    return ev_unmet, track, warn
