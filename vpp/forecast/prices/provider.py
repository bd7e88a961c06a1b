"""Price providers: one interface, the source chosen by the config's ``prices`` section.

:meth:`PriceProvider.energy` returns, per slot of any tz-aware index (15- or 30-min), the
frame :func:`vpp.forecast.tariff.expand_tariff` returns — ``buy_per_kwh`` and
``sell_per_kwh`` (what import costs and export earns per kWh, every bill part per kWh
included), ``co2_kg_per_kwh``, ``co2_cost_per_kwh``, ``period`` — plus ``spot_per_kwh``
(NaN for TOU), the parts of ``buy_per_kwh`` (``energy_per_kwh``, ``fuel_adjustment_per_kwh``,
``renewable_levy_per_kwh``) and ``price_source`` (``tou``, ``jepx`` or ``forecast <day>``).
``attrs["version"]`` names the price data used (recorded with the plan).

Bill parts per kWh bought: energy (TOU period price, or spot area price +
``prices.buy_adder_per_kwh``) + 燃料費調整額 + 再エネ発電賦課金 (``bill``, dated versions).
Sold: ``tariff.sell_per_kwh`` (fixed), the dated FIT price, or FIP = spot + dated premium.

Days the spot file has not published are forecast from the nearest earlier published day
of the same weekday (else the nearest later one): ``price_source`` says ``forecast <day>``.
"""
from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

from vpp.config import DatedPrice, SiteConfig, data_file
from vpp.forecast.prices.errors import PriceFileError
from vpp.forecast.prices.jepx import read_jepx_spot
from vpp.forecast.tariff import expand_tariff
from vpp.slots import SLOT_S

__all__ = ["PriceProvider", "TouProvider", "JepxProvider", "price_provider", "dated", "file_digest"]


class PriceProvider(Protocol):
    """Per-slot energy prices (module docstring)."""

    version: str

    def energy(self, index: pd.DatetimeIndex) -> pd.DataFrame: ...


def dated(versions: list[DatedPrice], local_days: np.ndarray, default: float = 0.0) -> np.ndarray:
    """The version in force on each local day (``datetime64[D]``): the last with ``since`` ≤ day."""
    out = np.full(len(local_days), float(default))
    for v in versions:  # sorted by since (config check)
        out[local_days >= np.datetime64(v.since)] = v.per_kwh
    return out


def file_digest(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]


def _local_days(index: pd.DatetimeIndex, tz: str) -> np.ndarray:
    return index.tz_convert(tz).tz_localize(None).normalize().to_numpy().astype("datetime64[D]")


class _Base:
    def __init__(self, config: SiteConfig) -> None:
        self.config = config
        self.tz = config.site.timezone

    def _finish(self, frame: pd.DataFrame, energy: np.ndarray, spot: np.ndarray) -> pd.DataFrame:
        b, t = self.config.bill, self.config.tariff
        days = _local_days(frame.index, self.tz)
        fuel, levy = dated(b.fuel_adjustment, days), dated(b.renewable_levy, days)
        frame["energy_per_kwh"], frame["fuel_adjustment_per_kwh"], frame["renewable_levy_per_kwh"] = energy, fuel, levy
        frame["buy_per_kwh"] = energy + fuel + levy
        if b.sell_scheme == "fit":
            frame["sell_per_kwh"] = dated(b.sell_versions, days)
        elif b.sell_scheme == "fip":
            frame["sell_per_kwh"] = spot + dated(b.sell_versions, days)
        else:
            frame["sell_per_kwh"] = float(t.sell_per_kwh)
        frame["spot_per_kwh"] = spot
        frame.attrs["version"] = self.version
        return frame


class TouProvider(_Base):
    """The tariff's time-of-use periods."""

    def __init__(self, config: SiteConfig) -> None:
        super().__init__(config)
        self.version = f"tou:{config.tariff.version}"

    def energy(self, index: pd.DatetimeIndex) -> pd.DataFrame:
        frame = expand_tariff(self.config.tariff, index, self.tz)
        frame["price_source"] = "tou"
        return self._finish(frame, frame["buy_per_kwh"].to_numpy(float), np.full(len(frame), np.nan))


class JepxProvider(_Base):
    """Spot area price of ``prices.area`` from ``prices.spot_csv`` (read and checked once)."""

    def __init__(self, config: SiteConfig, spot: pd.DataFrame | None = None) -> None:
        super().__init__(config)
        p = config.prices
        self.spot = spot if spot is not None else read_jepx_spot(p.spot_csv, p.area, self.tz)
        name = Path(p.spot_csv).name if p.spot_csv else "<frame>"
        digest = file_digest(p.spot_csv) if spot is None else "frame"
        self.version = f"jepx:{p.area}:{name}:{digest}"
        loc = self.spot.index.tz_convert(self.tz)
        self.published = sorted({d for d in loc.date})

    def source_day(self, day: date) -> date:
        """The published day whose prices stand for ``day`` (itself if published)."""
        if day in self.published:
            return day
        same = [d for d in self.published if d.weekday() == day.weekday()]
        if not same:
            raise PriceFileError(f"no published {day.strftime('%A')} in the spot file to forecast {day} from",
                                 source=str(self.config.prices.spot_csv))
        earlier = [d for d in same if d < day]
        return earlier[-1] if earlier else same[0]

    def energy(self, index: pd.DatetimeIndex) -> pd.DataFrame:
        index = pd.DatetimeIndex(index)
        tou = expand_tariff(self.config.tariff, index, self.tz)  # CO2 columns; period names replaced
        koma = index.floor(f"{SLOT_S}s")
        loc = koma.tz_convert(self.tz)
        spot = np.empty(len(index))
        src = np.empty(len(index), dtype=object)
        cache: dict[date, date] = {}
        for i, (k, lt) in enumerate(zip(koma, loc)):
            d = lt.date()
            s = cache.setdefault(d, self.source_day(d))
            key = k if s == d else (pd.Timestamp(lt) - pd.Timedelta(days=(d - s).days)).tz_convert("UTC")
            spot[i] = self.spot.at[key, "area"]
            src[i] = "jepx" if s == d else f"forecast {s.isoformat()}"
        frame = tou.copy()
        frame["period"] = "spot"
        frame["price_source"] = src
        return self._finish(frame, spot + self.config.prices.buy_adder_per_kwh, spot)


_SPOT_CACHE: dict[tuple, tuple[pd.DataFrame, str]] = {}


def price_provider(config: SiteConfig) -> PriceProvider:
    """The provider the config's ``prices.source`` names (files read and checked now:
    :class:`PriceFileError` names the file, row and field). A spot file is parsed once per
    (path, area, size, mtime): the planner asks every few minutes."""
    p = config.prices
    if p.source != "jepx":
        return TouProvider(config)
    path = data_file(p.spot_csv)  # a config parsed without its file: CWD, then the shipped examples
    try:
        st = path.stat()
    except OSError as e:
        raise PriceFileError(f"cannot read: {e.strerror}", source=str(p.spot_csv)) from None
    key = (str(path), p.area, config.site.timezone, st.st_size, st.st_mtime_ns)
    hit = _SPOT_CACHE.get(key)
    if hit is None:
        hit = read_jepx_spot(path, p.area, config.site.timezone), file_digest(str(path))
        _SPOT_CACHE.clear()  # one file in use at a time
        _SPOT_CACHE[key] = hit
    prov = JepxProvider(config, hit[0])
    prov.version = f"jepx:{p.area}:{path.name}:{hit[1]}"
    return prov
