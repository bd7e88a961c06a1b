"""Step 2 of fleet planning: split the aggregate plan over the homes.

Battery (:func:`disaggregate`, vectorised over homes, one pass over slots): recovering homes
follow ``r`` and homes that a rising (storm) floor would leave behind charge just enough to
stay on it; the aggregate battery power of slot ``t`` is water-filled (:func:`waterfill`)
over the other homes in proportion to their energy above the floor (discharge) or room
below ``soc_max`` (charge), each capped by its power limit, meter headroom and what its SoC
allows in one slot. Each home's SoC is then stepped with its own efficiencies, so per-home
floors and windows hold by construction. Splitting discharge by energy above the floor keeps
every home's share of an up award (and charging by room below ``soc_max`` its share of a
down award).

EVs (:func:`disaggregate_evs`): each EV group's power is split over its sessions, least
laxity first, then longest remaining charging time.
"""

from __future__ import annotations

import numpy as np

from .aggregate import home_caps
from .problem import FleetProblem

__all__ = ["disaggregate", "disaggregate_evs", "waterfill"]


def waterfill(target: float, weight: np.ndarray, cap: np.ndarray, iters: int = 30) -> np.ndarray:
    """Split ``target`` ≥ 0 over homes ∝ ``weight``, each ≤ ``cap``; returns the shares."""
    out = np.zeros_like(cap)
    if target <= 0:
        return out
    if cap.sum() <= target:
        return cap.copy()
    free = cap > 0
    rest = target
    for _ in range(iters):
        wsum = weight[free].sum()
        if rest <= 1e-9 or not free.any():
            break
        if wsum <= 0:
            share = np.where(free, cap - out, 0.0)
            share *= rest / share.sum()
        else:
            share = np.where(free, rest * weight / wsum, 0.0)
        new = np.minimum(out + share, cap)
        rest -= (new - out).sum()
        out = new
        free = out < cap - 1e-9
    return out


def disaggregate(fp: FleetProblem, agg_battery_w: np.ndarray, a: dict[str, np.ndarray] | None = None,
                 caps: dict[str, np.ndarray] | None = None):
    """Step 2: per-home battery power ``(H, n)`` [W] and SoC following the aggregate power
    ``agg_battery_w`` (n,) [W, > 0 discharge]; returns ``(battery_w, soc)``."""
    a = a or fp.arrays()
    caps = caps or home_caps(fp, a)
    H, n = fp.n_homes, fp.horizon.n
    dt = fp.horizon.dt_h
    cap, etac, etad, smax = a["capacity_wh"], a["eta_charge"], a["eta_discharge"], a["soc_max"]
    floor = a["floor"]
    cap_c, cap_d, r = caps["cap_c"], caps["cap_d"], caps["r"]
    bw = np.zeros((H, n))
    soc = np.zeros((H, n))
    s = a["soc0"].copy()
    for t in range(n):
        fl = floor[:, t]
        # what each home can do this slot without leaving its window / crossing its floor
        c_max = np.minimum(cap_c[:, t], np.clip((smax - s) * cap / (etac * dt), 0, None))
        d_max = np.minimum(cap_d[:, t], np.clip((s - fl) * cap * etad / dt, 0, None))
        # recovery first (a fixed load in the aggregate plan, so not part of its battery
        # power), then any home a rising (storm) floor would leave behind
        need = np.clip((fl - s) * cap / (etac * dt), 0, None)
        forced = np.minimum(np.maximum(r[:, t], need), c_max)
        # > 0: fleet discharge wanted from the others
        target = float(agg_battery_w[t]) + float((forced - np.minimum(r[:, t], c_max)).sum())
        p = -forced
        if target > 0:
            p = p + waterfill(target, np.clip(s - fl, 0, None) * cap, d_max)
        elif target < 0:
            room = c_max - forced
            p = p - waterfill(-target, np.clip(smax - s, 0, None) * cap, room)
        s = s + dt / cap * (np.where(p < 0, -p * etac, 0.0) - np.where(p > 0, p / etad, 0.0))
        bw[:, t] = p
        soc[:, t] = s
    return bw, soc


def disaggregate_evs(fp: FleetProblem, group_w: np.ndarray, group_of: np.ndarray,
                     ev_cap: np.ndarray) -> np.ndarray:
    """Split each aggregate EV group's power ``group_w`` ``(G, n)`` [W] over its sessions:
    ``(S, n)`` [W].

    Per slot, each session first gets what it can no longer postpone (its remaining need
    minus what its caps allow in its later slots: least laxity first), then the rest of the
    group's power goes to the sessions with the longest remaining charging time
    (remaining need / cap) first; every session stays within ``ev_cap`` and never gets more
    than its need. Sessions of one group share a
    departure, so this is earliest-deadline-first within the group.
    """
    S, n = ev_cap.shape
    dt = fp.horizon.dt_h
    out = np.zeros((S, n))
    if S == 0:
        return out
    rem = np.array([max(float(s.energy_wh), 0.0) for s in fp.evs])
    # energy each session can still take after slot t [Wh]
    later = np.concatenate([np.cumsum(ev_cap[:, ::-1], axis=1)[:, ::-1][:, 1:], np.zeros((S, 1))], axis=1) * dt
    for g in range(group_w.shape[0]):
        idx = np.flatnonzero(group_of == g)
        if idx.size == 0:
            continue
        lo = min(int(fp.evs[k].arrival_slot) for k in idx)
        hi = max(int(fp.evs[k].departure_slot) for k in idx)
        r_g = rem[idx].copy()
        for t in range(max(lo, 0), min(hi, n)):
            p_t = max(float(group_w[g, t]), 0.0)
            if p_t <= 1e-9:
                continue
            c = np.minimum(ev_cap[idx, t], r_g / dt)
            must = np.minimum(np.clip(r_g - later[idx, t], 0, None) / dt, c)
            must *= min(1.0, p_t / must.sum()) if must.sum() > 0 else 1.0
            # the rest: longest remaining charging time first (keeps the group splittable)
            x = must.copy()
            left = p_t - must.sum()
            t_left = np.divide(r_g - must * dt, ev_cap[idx, t], out=np.zeros(idx.size), where=ev_cap[idx, t] > 0)
            for j in np.argsort(-t_left, kind="stable"):
                if left <= 1e-9:
                    break
                add = min(c[j] - x[j], left)
                x[j] += add
                left -= add
            out[idx, t] = x
            r_g = np.clip(r_g - x * dt, 0, None)
    return out
