"""``/costs``: energy cost, CO2 and VPP revenue of a period (kWh, currency, kg)."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class AccountOut(BaseModel):
    bought_kwh: float = Field(description="energy bought from the grid [kWh]")
    sold_kwh: float = Field(description="energy sold to the grid [kWh]")
    cost: float = Field(description="bought × buy price − sold × sell price [currency]")
    co2_kg: float = Field(description="bought × grid emission factor [kg CO2]")


class VppRevenueOut(BaseModel):
    capacity: float = Field(description="capacity payment [currency]")
    energy: float = Field(description="energy payment for settled deliveries [currency]")
    total: float
    delivered_kwh: float
    awarded_kwh: float


class CostsOut(BaseModel):
    period: Literal["today", "month"]
    start: str
    end: str
    timezone: str
    currency: str
    co2_kg_per_kwh: float
    price_version: str = Field("", description="the price data used (vpp.forecast.prices)")
    slots: int = Field(description="30-min slots in the period so far")
    metered_slots: int = Field(description="slots with grid-meter readings")
    actual: AccountOut
    no_battery: AccountOut = Field(description="counterfactual: grid + battery energy, same tariff")
    savings: float = Field(description="cost without battery − cost with [currency]")
    co2_avoided_kg: float
    battery_discharged_kwh: float
    battery_charged_kwh: float
    vpp: VppRevenueOut
