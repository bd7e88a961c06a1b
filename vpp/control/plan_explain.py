"""What the plan does in a slot and why, in one line (ja / en), and its SoC band: pure functions
of a solved plan (schedule + problem), for the dashboard's 48 h view.

:func:`why` classifies the site's planned battery power in slot ``k`` (charging / discharging
/ holding) and names the reasons the plan's inputs give for it, most specific first:

* charging: the floor is out of reach now (recovering) · storm mode raises the floor ahead ·
  an up award ahead needs the energy · PV surplus · a cheap price (below the dearest price
  ahead; "night" between 22:00 and 08:00 site time);
* discharging: a dispatch or an award in this slot · a dear price (above the cheapest ahead) ·
  covering the load;
* holding: at the reserve floor · keeping an award deliverable · full · nothing to gain.

:func:`soc_band` is the p10–p90 of the site SoC over the plan's scenarios (scenario planning,
``optimiser.scenarios`` > 1); with one scenario the band is the plan itself.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np

__all__ = ["Why", "soc_band", "why"]

HOLD_W = 100.0  # [W] below this the battery counts as holding
EPS_SOC = 0.005  # [fraction] "at" the floor / full

_TEXT = {
    "ja": {"charging": "充電", "discharging": "放電", "holding": "待機",
           "recovering": "予備下限まで回復", "storm": "台風・防災に備える", "award_ahead": "アワード {w} に備える",
           "pv_surplus": "太陽光の余剰", "cheap": "安い電気料金", "cheap_night": "安い夜間料金",
           "award_now": "アワード {w}", "dispatch": "出動指令 {w}", "dear": "高い電気料金", "load": "負荷をまかなう",
           "floor": "予備下限", "award_hold": "アワード {w} の余力を確保", "full": "満充電",
           "nothing": "充放電の利点なし", "sep": "、", "colon": ": "},
    "en": {"charging": "charging", "discharging": "discharging", "holding": "holding",
           "recovering": "recovering to the reserve floor", "storm": "storm expected", "award_ahead": "award {w} ahead",
           "pv_surplus": "solar surplus", "cheap": "cheap price", "cheap_night": "cheap night price",
           "award_now": "award {w}", "dispatch": "dispatch {w}", "dear": "expensive price", "load": "covering the load",
           "floor": "floor", "award_hold": "keeping award {w} deliverable", "full": "full",
           "nothing": "nothing to gain", "sep": ", ", "colon": ": "},
}


@dataclass(frozen=True)
class Why:
    """``action`` (charging / discharging / holding) in slot ``slot`` at ``battery_w`` [W]
    (> 0 discharge) and its ``reasons`` (keys of the text table), with the award or dispatch
    ``window`` a reason refers to (UTC start, end)."""

    slot: int
    action: str
    battery_w: float
    reasons: tuple[str, ...] = ()
    window: tuple[datetime, datetime] | None = field(default=None)

    def text(self, lang: str, tz: str) -> str:
        """One line in ``lang`` (``"ja"`` / ``"en"``), times in the site zone ``tz``."""
        t = _TEXT.get(lang, _TEXT["en"])
        w = ""
        if self.window is not None:
            z = ZoneInfo(tz)
            w = f"{self.window[0].astimezone(z):%H:%M}–{self.window[1].astimezone(z):%H:%M}"
        parts = [t[r].format(w=w) for r in self.reasons]
        return t[self.action] + (t["colon"] + t["sep"].join(parts) if parts else "")


def _window(mask: np.ndarray, k: int, start: datetime, slot_s: int, ahead: bool) -> tuple[datetime, datetime] | None:
    """The run of ``mask`` containing slot ``k`` (or, with ``ahead``, the first one after it) as times."""
    idx = np.flatnonzero(mask[k:] if ahead else mask[k:k + 1])
    if idx.size == 0:
        return None
    a = k + int(idx[0])
    b = a
    while b + 1 < mask.size and mask[b + 1]:
        b += 1
    while a > 0 and mask[a - 1]:
        a -= 1
    return start + timedelta(seconds=a * slot_s), start + timedelta(seconds=(b + 1) * slot_s)


def why(schedule, problem, k: int, tz: str, storm_active: bool = False) -> Why:
    """Why the plan charges, discharges or holds in slot ``k`` (see the module docstring).

    ``schedule`` / ``problem``: :class:`optimizer.Schedule` and the :class:`optimizer.Problem` it
    solved; ``tz`` the site zone (night hours); ``storm_active``: storm mode is on."""
    n = schedule.n
    k = int(np.clip(k, 0, n - 1))
    start, slot_s = schedule.start, schedule.slot_s
    b = float(sum(float(v[k]) for v in schedule.battery_w.values()))
    buy = np.asarray(problem.prices.buy, float)
    buy = np.broadcast_to(buy, (n,)) if buy.ndim == 0 else buy[:n]
    cap = {bp.id: bp.capacity_wh for bp in problem.batteries}
    tot = sum(cap.values()) or 1.0

    def site(per: Mapping[str, np.ndarray], t: int) -> float:
        return sum(cap.get(i, 0.0) * float(np.nan_to_num(v[t], nan=0.0)) for i, v in per.items()) / tot

    soc_now, floor_now = site(schedule.soc, k), site(schedule.floor, k)
    prev_soc = site(schedule.soc, k - 1) if k > 0 else sum(cap[bp.id] * bp.soc0 for bp in problem.batteries) / tot
    vpp = problem.vpp
    up = np.zeros(n) if vpp is None else np.broadcast_to(np.asarray(vpp.award_up_w, float), (n,))
    disp = None if vpp is None or vpp.dispatch_w is None else np.asarray(vpp.dispatch_w, float)
    surplus = float(schedule.pv_w[k] - schedule.load_w[k])
    recovering = any(float(r[k]) > 1e-6 for r in schedule.recovery.values())
    reasons: list[str] = []
    window = None
    if b < -HOLD_W:
        action = "charging"
        if recovering or prev_soc < floor_now - EPS_SOC:
            reasons.append("recovering")
        if storm_active and max(site(schedule.floor, t) for t in range(k, n)) > floor_now + EPS_SOC:
            reasons.append("storm")
        w = _window(up > 0, k + 1, start, slot_s, ahead=True) if k + 1 < n else None
        if w is not None:
            reasons.append("award_ahead")
            window = w
        if surplus > HOLD_W:
            reasons.append("pv_surplus")
        if buy[k] < float(buy[k:].max()) - 1e-9:
            hour = (start + timedelta(seconds=k * slot_s)).astimezone(ZoneInfo(tz)).hour
            reasons.append("cheap_night" if hour >= 22 or hour < 8 else "cheap")
    elif b > HOLD_W:
        action = "discharging"
        if disp is not None and np.isfinite(disp[k]):
            reasons.append("dispatch")
            window = _window(np.isfinite(disp), k, start, slot_s, ahead=False)
        elif up[k] > 0:
            reasons.append("award_now")
            window = _window(up > 0, k, start, slot_s, ahead=False)
        if buy[k] > float(buy[k:].min()) + 1e-9:
            reasons.append("dear")
        if surplus < -HOLD_W:
            reasons.append("load")
    else:
        action = "holding"
        if soc_now <= floor_now + EPS_SOC:
            reasons.append("floor")
        elif up[k] > 0:
            reasons.append("award_hold")
            window = _window(up > 0, k, start, slot_s, ahead=False)
        elif problem.batteries and soc_now >= min(bp.soc_max for bp in problem.batteries) - EPS_SOC:
            reasons.append("full")
        else:
            reasons.append("nothing")
    return Why(k, action, b, tuple(reasons), window)


def soc_band(schedule, caps: Mapping[str, float], n: int) -> tuple[list[float], list[float]]:
    """p10 and p90 of the capacity-weighted site SoC [%] over the plan's scenarios, first ``n``
    slots (the plan's own SoC for both without scenarios)."""
    ids = [i for i in schedule.soc if i in caps]
    if not ids:
        return [], []
    tot = sum(caps[i] for i in ids) or 1.0
    if schedule.soc_scenarios and all(i in schedule.soc_scenarios for i in ids):
        site = sum(caps[i] * np.asarray(schedule.soc_scenarios[i], float)[:, :n] for i in ids) / tot
        lo, hi = np.percentile(site, 10, axis=0), np.percentile(site, 90, axis=0)
    else:
        site = sum(caps[i] * np.asarray(schedule.soc[i], float)[:n] for i in ids) / tot
        lo = hi = np.asarray(site, float)
    return [round(100 * float(x), 1) for x in lo], [round(100 * float(x), 1) for x in hi]
