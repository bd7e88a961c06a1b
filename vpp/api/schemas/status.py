"""``PUT /reserve`` and ``POST /override`` request bodies, with their bounds in the schema.

Not wired yet: :mod:`vpp.api.routes.status` still defines its own (looser) copies; importing
these there replaces the range check done after parsing (``floor_pct`` 0–100) with the
field constraint, so the OpenAPI document states it. The 422 then carries the validation
list (``detail`` mentions "between 0 and 100" inside it, not as the whole string).
"""
from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

from vpp.api.schemas.common import BoundedDatetime, In


def _percent(v: float | None) -> float | None:
    if v is not None and not 0 <= v <= 100:
        raise ValueError(f"must be between 0 and 100 %, got {v}")
    return v


#: a percentage 0–100; the validator's message names the range, the schema states it
Percent = Annotated[float | None, AfterValidator(_percent),
                    Field(json_schema_extra={"minimum": 0, "maximum": 100}, allow_inf_nan=False)]
Reason = Annotated[str, Field(max_length=500)]


class ReserveIn(In):
    """Reserve change; omitted fields stay as they are (at least one of floor_pct, storm)."""

    floor_pct: Percent = Field(None, description="reserve floor [% of capacity], 0–100")
    storm: bool | None = Field(None, description="storm mode on/off")
    storm_target_pct: Percent = Field(None, description="storm floor target [%], 0–100")
    storm_deadline: BoundedDatetime | None = Field(None, description="when the storm is expected")
    reason: Reason = ""


class OverrideIn(In):
    device: Annotated[str | None, Field(max_length=64, description="battery id (default: the only battery)")] = None
    setpoint_kw: Annotated[float, Field(ge=-1_000_000, le=1_000_000, allow_inf_nan=False,
                                        description="battery power [kW], > 0 discharge, < 0 charge "
                                                    "(within the battery's rating)")]
    expires_at: BoundedDatetime = Field(..., description="required: when the override ends")
    reason: Reason = ""
