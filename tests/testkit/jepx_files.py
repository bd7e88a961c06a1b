"""Price files in the real JEPX / imbalance layouts (cp932), for fixtures and bad-input tests.

Values are synthetic (a deterministic daily shape with noise), never real market data.
"""
from __future__ import annotations

from datetime import date, timedelta

import numpy as np

AREAS = ("北海道", "東北", "東京", "中部", "北陸", "関西", "中国", "四国", "九州")
EXTRA = ("スポット・時間前平均価格(円/kWh)", "α上限値×スポット・時間前平均価格(円/kWh)",
         "α下限値×スポット・時間前平均価格(円/kWh)", "回避可能原価全国値(円/kWh)", "FIP参照価格東北(円/kWh)")


def daily_shape(day: date, seed: int = 0) -> np.ndarray:
    """48 synthetic area prices [円/kWh]: cheap night, solar dip at noon, evening peak."""
    h = np.arange(48) / 2.0
    base = 9.0 + 5.0 * np.exp(-((h - 8.5) / 1.5) ** 2) - 3.5 * np.exp(-((h - 12.5) / 2.0) ** 2) \
        + 12.0 * np.exp(-((h - 18.0) / 1.8) ** 2)
    if day.weekday() >= 5:
        base = base * 0.85
    rng = np.random.default_rng(seed + day.toordinal())
    return np.round(np.clip(base + rng.normal(0, 0.6, 48), 0.01, None), 2)


def spot_csv(first: date, days: int, header: str = "受渡日", seed: int = 0, area_prices=None) -> bytes:
    """A JEPX spot file (cp932) for ``days`` days from ``first``; 東北 = ``area_prices[d]``
    if given, else :func:`daily_shape`; the other areas are offsets of it."""
    head = [header, "時刻コード", "売り入札量(kWh)", "買い入札量(kWh)", "約定総量(kWh)", "システムプライス(円/kWh)",
            *[f"エリアプライス{a}(円/kWh)" for a in AREAS], "", "", *EXTRA]
    lines = [",".join(head)]
    for i in range(days):
        d = first + timedelta(days=i)
        tohoku = daily_shape(d, seed) if area_prices is None else np.asarray(area_prices[i], float)
        for k in range(48):
            t = float(tohoku[k])
            areas = [t + 0.8, t, t + 1.5, t + 1.2, t + 0.3, t + 0.9, t + 0.7, t + 0.6, t - 0.4]
            row = [d.strftime("%Y/%m/%d"), str(k + 1), "1234567000", "1200456000", "1100222000",
                   f"{t + 1.0:.2f}", *[f"{max(a, 0.01):.2f}" for a in areas], "", "",
                   f"{t + 1.1:.2f}", f"{2.2 * t:.2f}", f"{0.5 * t:.2f}", f"{t + 0.2:.2f}", f"{t:.2f}"]
            lines.append(",".join(row))
    return ("\r\n".join(lines) + "\r\n").encode("cp932")


def imbalance_csv(first: date, days: int, surplus=None, shortage=None) -> bytes:
    """An imbalance price file (H/T/D rows, cp932); 東北 余剰/不足 per コマ from the arrays
    (``[day][コマ-1]``) if given, else synthetic."""
    title = ["T", "対象日", "コマ", "開始時刻", "終了時刻"]
    for a in AREAS:
        title += [f"{a}エリア余剰インバランス料金単価(円/kWh)", f"{a}エリア不足インバランス料金単価(円/kWh)",
                  f"{a}エリア変更S"]
    lines = [f"H,インバランス料金単価,{first.year}年{first.month:02d}月分,公表日,{first.isoformat()}",
             ",".join(title)]
    for i in range(days):
        d = first + timedelta(days=i)
        base = daily_shape(d, 7)
        for k in range(48):
            s = base[k] - 1.0 if surplus is None else surplus[i][k]
            b = base[k] + 2.0 if shortage is None else shortage[i][k]
            t0 = f"{k // 2}:{30 * (k % 2):02d}"
            t1 = f"{(k + 1) // 2}:{30 * ((k + 1) % 2):02d}"
            row = ["D", d.strftime("%Y/%m/%d"), str(k + 1), t0, t1]
            for a in AREAS:
                off = 0.0 if a == "東北" else 0.5
                row += [f"{max(s + off, 0.01):.2f}", f"{max(b + off, 0.01):.2f}", "0"]
            lines.append(",".join(row))
    return ("\r\n".join(lines) + "\r\n").encode("cp932")
