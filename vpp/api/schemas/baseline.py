"""``/baseline`` and ``/dispatches/{id}/performance`` (kW at this edge; W in the services)."""
from __future__ import annotations

import math

from pydantic import BaseModel, Field

from vpp.api.schemas.common import ts, ts_text
from vpp.market.baseline import BaselineResult
from vpp.market.settlement_job import PerformanceReport


class BaselineSlot(BaseModel):
    start: str
    baseline_kw: float = Field(description="mean net grid import [kW]")


class BaselineOut(BaseModel):
    method: str
    algorithm_version: str
    days: list[str]
    adjustment_kw: float
    slots: list[BaselineSlot]

    @classmethod
    def from_result(cls, b: BaselineResult, algorithm_version: str) -> "BaselineOut":
        return cls(method=b.method, algorithm_version=algorithm_version, days=[d.isoformat() for d in b.days],
                   adjustment_kw=b.adjustment / 1000,
                   slots=[BaselineSlot(start=ts(t), baseline_kw=float(v) / 1000) for t, v in b.values.items()])


class PerfSlot(BaseModel):
    start: str
    baseline_kw: float
    metered_kw: float | None
    instructed_kw: float
    delivered_kw: float
    delivered_kwh: float
    compliance: float | None


class PerformanceOut(BaseModel):
    dispatch_id: str
    method: str
    direction: str
    delivered_kwh: float
    instructed_kwh: float
    mean_delivered_kw: float
    compliance_ratio: float | None
    missing_slots: list[str]
    slots: list[PerfSlot]
    recorded: bool = Field(description="true once the dispatch is over and the settlement job recorded it "
                                       "in the ledger")
    record_id: str | None
    algorithm_version: str
    tariff_version: str
    co2_version: str

    @classmethod
    def from_report(cls, r: PerformanceReport) -> "PerformanceOut":
        summary = r.performance.as_dict()
        rows = [PerfSlot(start=ts_text(s["start"]), baseline_kw=s["baseline_w"] / 1000,
                         metered_kw=None if s["actual_w"] is None else s["actual_w"] / 1000,
                         instructed_kw=s["instructed_w"] / 1000, delivered_kw=s["delivered_w"] / 1000,
                         delivered_kwh=s["delivered_kwh"], compliance=_finite(s["ratio"]))
                for s in summary["slots"]]
        rec = r.record
        return cls(dispatch_id=r.dispatch.id, method=r.method, direction=r.dispatch.direction,
                   delivered_kwh=r.performance.delivered_kwh, instructed_kwh=r.performance.instructed_kwh,
                   mean_delivered_kw=r.performance.mean_delivered_kw, compliance_ratio=summary["compliance_ratio"],
                   missing_slots=[ts_text(t) for t in summary["missing_slots"]], slots=rows,
                   recorded=rec is not None, record_id=rec.id if rec is not None else None,
                   algorithm_version=r.algorithm_version, tariff_version=r.tariff_version, co2_version=r.co2_version)


def _finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else x
