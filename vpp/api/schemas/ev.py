"""EV session needs: what a driver (or the operator) says the car needs (SI units, bounds as Field constraints)."""
from __future__ import annotations

from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator


class EvNeedsIn(BaseModel):
    """Energy to add [Wh] — or a target state of charge with the car's ``soc`` now and its
    ``capacity_wh`` — and/or the departure time (RFC 3339 with offset, or ``departure_local``
    ``HH:MM`` in the site's zone: the next such time)."""

    model_config = ConfigDict(extra="forbid")

    departure: AwareDatetime | None = None
    departure_local: Annotated[str | None, Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$",
                                                 description="HH:MM site time, the next one from now")] = None
    energy_wh: Annotated[float | None, Field(gt=0, le=200_000, description="energy to add [Wh]")] = None
    target_soc: Annotated[float | None, Field(gt=0, le=1, description="target state of charge [fraction]")] = None
    soc: Annotated[float | None, Field(ge=0, lt=1, description="state of charge now [fraction]")] = None
    capacity_wh: Annotated[float | None, Field(gt=0, le=200_000, description="battery capacity [Wh]")] = None

    @model_validator(mode="after")
    def _one_energy(self) -> "EvNeedsIn":
        if self.energy_wh is not None and self.target_soc is not None:
            raise ValueError("give energy_wh or target_soc, not both")
        if self.target_soc is not None and (self.soc is None or self.capacity_wh is None):
            raise ValueError("target_soc needs soc and capacity_wh")
        if self.target_soc is not None and self.soc is not None and self.target_soc <= self.soc:
            raise ValueError("target_soc must be above soc")
        if self.departure is not None and self.departure_local is not None:
            raise ValueError("give departure or departure_local, not both")
        if self.departure is None and self.departure_local is None and self.energy_wh is None \
                and self.target_soc is None:
            raise ValueError("give departure, departure_local, energy_wh or target_soc")
        return self
