"""Config sections for market prices and the bill (re-exported by :mod:`vpp.config`), and where
the data files they name are found. Same rules as :mod:`vpp.config`: frozen, extra fields
forbidden, invalid input names the field."""
from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:
    from vpp.config import SiteConfig


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


#: JEPX price areas (the spot file's エリアプライス columns, the imbalance file's areas).
JEPX_AREAS = ("北海道", "東北", "東京", "中部", "北陸", "関西", "中国", "四国", "九州")


class DatedPrice(_Model):
    """A per-kWh amount valid from ``since`` (local date) until the next version's ``since``."""

    since: date
    per_kwh: Annotated[float, Field(ge=-100, le=1000, description="[currency/kWh]")]


class Prices(_Model):
    """Where energy prices come from (:mod:`vpp.forecast.prices`). ``tou``: the tariff's
    periods; ``jepx``: the JEPX spot file's area price + ``buy_adder_per_kwh`` (a
    market-linked supply contract). Files are read relative to the config file's folder.
    Days the spot file lacks are forecast from the latest published same weekday (stated)."""

    source: Literal["tou", "jepx"] = "tou"
    area: Literal[JEPX_AREAS] = "東北"  # type: ignore[valid-type]
    spot_csv: str | None = None
    imbalance_csv: str | None = None
    buy_adder_per_kwh: Annotated[float, Field(ge=0, le=200, description="over spot [currency/kWh]")] = 0.0

    @model_validator(mode="after")
    def _files(self) -> "Prices":
        if self.source == "jepx" and not self.spot_csv:
            raise ValueError("prices.spot_csv is required when prices.source is jepx")
        return self


class DemandCharge(_Model):
    """高圧 basic charge: ``contract kW × unit price × (185 − power factor %) / 100`` per month;
    below 500 kW the contract kW is the highest 30-min average import of the last 12 months
    (``contract_kw`` fixes it instead)."""

    unit_price_per_kw: Annotated[float, Field(ge=0, description="[currency/kW per month]")]
    power_factor_pct: Annotated[float, Field(ge=50, le=100)] = 100.0
    contract_kw: Annotated[float | None, Field(gt=0)] = None
    #: the optimiser's price for raising the month's peak [currency/kW]; None: the monthly charge
    shaving_price_per_kw: Annotated[float | None, Field(ge=0)] = None


class Bill(_Model):
    """Bill parts besides energy: 燃料費調整額 and 再エネ発電賦課金 per kWh bought (dated
    versions), the sell side (``fixed``: ``tariff.sell_per_kwh``; ``fit``: the dated FIT
    price; ``fip``: the spot area price + the dated premium) and the 高圧 demand charge."""

    fuel_adjustment: list[DatedPrice] = Field(default_factory=list)
    renewable_levy: list[DatedPrice] = Field(default_factory=list)
    sell_scheme: Literal["fixed", "fit", "fip"] = "fixed"
    sell_versions: list[DatedPrice] = Field(default_factory=list)
    demand: DemandCharge | None = None

    @model_validator(mode="after")
    def _sell(self) -> "Bill":
        if self.sell_scheme != "fixed" and not self.sell_versions:
            raise ValueError(f"bill.sell_versions is required for sell_scheme {self.sell_scheme}")
        for name in ("fuel_adjustment", "renewable_levy", "sell_versions"):
            days = [v.since for v in getattr(self, name)]
            if days != sorted(set(days)):
                raise ValueError(f"bill.{name}: versions must have increasing, distinct 'since' dates")
        return self


#: shipped sample data (the examples' price files), the second place a relative file name is looked up
EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "deploy" / "examples"


def data_file(name: str, folder: Path = Path(".")) -> Path:
    """Where a data file named in a config is: as given if absolute, else beside ``folder``
    (the config file's), else in the shipped examples, else ``folder / name`` (missing)."""
    p = Path(name)
    if p.is_absolute():
        return p
    here = folder / p
    return here if here.exists() or not (EXAMPLES_DIR / p).exists() else EXAMPLES_DIR / p


def files_beside(config: "SiteConfig", folder: Path) -> "SiteConfig":
    """Price files named relative to the config file are read from its folder; a name not
    found there is looked up in the shipped examples (:data:`EXAMPLES_DIR`), so a copy of an
    example config keeps its sample prices."""
    pr = config.prices
    paths = {}
    for k in ("spot_csv", "imbalance_csv"):
        v = getattr(pr, k)
        if v and not Path(v).is_absolute():
            paths[k] = str(data_file(v, folder))
    return config.model_copy(update={"prices": pr.model_copy(update=paths)}) if paths else config
