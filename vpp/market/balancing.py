"""計画値同時同量: the balancing group's 48-コマ demand/supply plan per day, made from the
schedule, revisable until gate closure (1 h before each コマ) and frozen after; actual vs plan
per コマ and the imbalance settled at the imbalance price.

Plan rows: ``demand_kwh`` (planned import) and ``supply_kwh`` (planned export) per コマ 1..48
of a local day. Records: each submission is one ledger ``audit`` record (action
``balancing_plan``, ref ``balancing:<group>:<day>``) holding the コマ it set and a revision
number; the plan in force is the last value recorded for each コマ. A refused edit is
recorded too (action ``balancing_plan_refused`` with the reason), and nothing of it applies.

Rules (:meth:`BalancingPlans.submit`):

* a コマ is open until ``start − 1 h`` (gate closure); after that it is frozen;
* a revision from the schedule (``strict=False``) changes only open コマ and leaves frozen
  ones as they were (the schedule moves on, the plan does not);
* an edit (``strict=True``, an operator's) that touches a frozen コマ is refused as a whole
  with :class:`PlanFrozen` naming the first such コマ and its gate closure;
* values must be finite and ≥ 0, コマ 1..48.

Imbalance per コマ (:func:`imbalance`): net position ``supply − demand`` planned vs
``export − import`` metered; ``imbalance_kwh = actual − plan`` (> 0 long: paid the surplus
price 余剰; < 0 short: pays the shortage price 不足); ``imbalance_yen`` > 0 received.
"""
from __future__ import annotations

import io
import math
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from vpp.slots import SLOT, SLOT_S

__all__ = ["GATE_BEFORE", "PlanFrozen", "PlanError", "koma_starts", "plan_from_schedule", "BalancingPlans",
           "imbalance", "imbalance_kpis", "plan_file"]

#: Gate closure of 計画値同時同量: 1 h before the コマ starts.
GATE_BEFORE = timedelta(hours=1)


class PlanError(ValueError):
    """A plan submission with bad values (``field`` names it)."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


class PlanFrozen(PlanError):
    """An edit of a コマ past its gate closure."""


def koma_starts(day: date, tz: str) -> list[datetime]:
    """UTC starts of コマ 1..48 of local ``day``."""
    a = datetime.combine(day, time(0), tzinfo=ZoneInfo(tz)).astimezone(ZoneInfo("UTC"))
    return [a + SLOT * k for k in range(48)]


def plan_from_schedule(grid_import_w: np.ndarray, grid_export_w: np.ndarray, start: datetime, slot_s: int,
                       day: date, tz: str) -> dict[int, tuple[float, float]]:
    """``{コマ: (demand_kwh, supply_kwh)}`` of ``day`` from a schedule's import/export [W] per
    slot of ``slot_s`` from ``start``; コマ the schedule does not fully cover are left out."""
    out = {}
    t0 = start.timestamp()
    imp, exp = np.asarray(grid_import_w, float), np.asarray(grid_export_w, float)
    per = SLOT_S // slot_s
    for k, s in enumerate(koma_starts(day, tz), start=1):
        i = (s.timestamp() - t0) / slot_s
        if i < 0 or i != int(i) or int(i) + per > len(imp):
            continue
        i = int(i)
        out[k] = (float(imp[i:i + per].sum() * slot_s / 3.6e6), float(exp[i:i + per].sum() * slot_s / 3.6e6))
    return out


class BalancingPlans:
    """The plans of one balancing group in the ledger (module docstring)."""

    def __init__(self, ledger: Any, group: str, tz: str) -> None:
        self.ledger, self.group, self.tz = ledger, group, tz

    def _ref(self, day: date) -> str:
        return f"balancing:{self.group}:{day.isoformat()}"

    def records(self, day: date) -> list[Any]:
        return [r for r in self.ledger.query(kinds=["audit"], ref=self._ref(day))
                if r.payload.get("action") == "balancing_plan"]

    def current(self, day: date, now: datetime | None = None) -> pd.DataFrame:
        """The plan in force: 48 rows (index コマ) ``start``, ``demand_kwh``, ``supply_kwh``
        (NaN = never planned), ``revision`` (of the last change), ``frozen`` (at ``now``)."""
        starts = koma_starts(day, self.tz)
        df = pd.DataFrame({"start": starts, "demand_kwh": np.nan, "supply_kwh": np.nan, "revision": 0},
                          index=pd.RangeIndex(1, 49, name="koma"))
        for r in self.records(day):
            for row in r.payload["koma"]:
                df.loc[row["koma"], ["demand_kwh", "supply_kwh", "revision"]] = (
                    row["demand_kwh"], row["supply_kwh"], r.payload["revision"])
        df["frozen"] = [now is not None and now >= s - GATE_BEFORE for s in starts]
        return df

    def submit(self, actor: str, day: date, rows: Mapping[int, tuple[float, float]], now: datetime, *,
               strict: bool, reason: str = "") -> tuple[Any | None, list[int]]:
        """Record a revision; returns ``(record or None if nothing changed, コマ changed)``.
        Raises :class:`PlanError` / :class:`PlanFrozen` (module docstring); a refused edit is
        recorded as such and nothing of it applies."""
        for k, (d, s) in rows.items():
            if not isinstance(k, int) or not 1 <= k <= 48:
                raise PlanError(f"コマ {k!r} outside 1..48", "koma")
            for name, v in (("demand_kwh", d), ("supply_kwh", s)):
                if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                    raise PlanError(f"コマ {k}: {name} must be a finite number ≥ 0, got {v!r}", name)
        cur = self.current(day, now)
        frozen = [k for k in sorted(rows) if cur.at[k, "frozen"]]
        if frozen and strict:
            k = frozen[0]
            gate = (cur.at[k, "start"] - GATE_BEFORE).astimezone(ZoneInfo(self.tz))
            why = (f"コマ {k} of {day.isoformat()} is frozen: its gate closed at {gate.isoformat()} "
                   f"(1 h before the コマ); {len(frozen)} frozen コマ in the edit")
            self.ledger.record("audit", actor, {"action": "balancing_plan_refused", "group": self.group,
                                                "day": day.isoformat(), "koma": frozen, "reason": why,
                                                "edit_reason": reason}, ref=self._ref(day))
            raise PlanFrozen(why, "koma")
        changed = []
        for k in sorted(rows):
            if k in frozen:
                continue
            d, s = rows[k]
            if not (np.isclose(cur.at[k, "demand_kwh"], d) and np.isclose(cur.at[k, "supply_kwh"], s)):
                changed.append(k)
        if not changed:
            return None, []
        rev = int(cur["revision"].max()) + 1
        payload = {"action": "balancing_plan", "group": self.group, "day": day.isoformat(), "revision": rev,
                   "reason": reason, "koma": [{"koma": k, "demand_kwh": float(rows[k][0]),
                                               "supply_kwh": float(rows[k][1])} for k in changed]}
        rec, _ = self.ledger.record("audit", actor, payload, ref=self._ref(day))
        return rec, changed


def imbalance(plan: pd.DataFrame, import_kwh: np.ndarray, export_kwh: np.ndarray, prices: Any) -> pd.DataFrame:
    """Actual vs plan per コマ (module docstring). ``plan`` as :meth:`BalancingPlans.current`
    (NaN plans count as 0), metered ``import_kwh``/``export_kwh`` per コマ, ``prices`` an
    :class:`~vpp.forecast.prices.ImbalancePrices` (None: kWh only, yen NaN)."""
    pl = plan[["demand_kwh", "supply_kwh"]].fillna(0.0)
    out = pd.DataFrame({"start": plan["start"], "plan_demand_kwh": pl["demand_kwh"], "plan_supply_kwh": pl["supply_kwh"],
                        "import_kwh": np.asarray(import_kwh, float), "export_kwh": np.asarray(export_kwh, float)},
                       index=plan.index)
    out["imbalance_kwh"] = (out["export_kwh"] - out["import_kwh"]) - (out["plan_supply_kwh"] - out["plan_demand_kwh"])
    if prices is None:
        out["imbalance_yen"] = np.nan
    else:
        idx = pd.DatetimeIndex(pd.to_datetime(out["start"], utc=True))
        out["imbalance_yen"] = prices.settle(out["imbalance_kwh"].to_numpy(), idx)
    return out


def imbalance_kpis(table: pd.DataFrame) -> dict[str, float]:
    """Day KPIs: ``surplus_kwh`` (long), ``shortage_kwh`` (short), ``abs_kwh``, ``yen`` (> 0
    received), ``koma_within_3pct`` (コマ whose |imbalance| ≤ 3 % of the planned energy or 0.1 kWh)."""
    e = table["imbalance_kwh"].to_numpy(float)
    planned = (table["plan_demand_kwh"] + table["plan_supply_kwh"]).to_numpy(float)
    ok = np.abs(e) <= np.maximum(0.03 * planned, 0.1)
    return {"surplus_kwh": float(np.clip(e, 0, None).sum()), "shortage_kwh": float(np.clip(-e, 0, None).sum()),
            "abs_kwh": float(np.abs(e).sum()), "yen": float(np.nansum(table["imbalance_yen"].to_numpy(float))),
            "koma_within_3pct": int(ok.sum())}


def plan_file(plan: pd.DataFrame, group: str, day: date, tz: str) -> bytes:
    """The day's plan as a CSV file (cp932, one row per コマ): 対象日, コマ, 開始/終了時刻,
    需要計画(kWh), 供給計画(kWh), 版, 状態 (確定 = frozen / 未確定)."""
    z = ZoneInfo(tz)
    buf = io.StringIO()
    buf.write(f"# 計画値同時同量 需要・供給計画,{group},{day.strftime('%Y/%m/%d')}\r\n")
    buf.write("対象日,コマ,開始時刻,終了時刻,需要計画(kWh),供給計画(kWh),版,状態\r\n")
    for k, r in plan.iterrows():
        a = r["start"].astimezone(z)
        e = a + SLOT
        num = lambda v: "" if pd.isna(v) else f"{v:.3f}"  # noqa: E731
        buf.write(f"{day.strftime('%Y/%m/%d')},{k},{a:%H:%M},{'24:00' if e.date() != a.date() else f'{e:%H:%M}'},"
                  f"{num(r['demand_kwh'])},{num(r['supply_kwh'])},{int(r['revision'])},"
                  f"{'確定' if r['frozen'] else '未確定'}\r\n")
    return buf.getvalue().encode("cp932")
