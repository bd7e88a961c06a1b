"""Request and response bodies of the HTTP API, one module per resource (kW at this edge; W
inside). Bounds are ``Field`` constraints so the OpenAPI document states what validation
enforces; rules that need state or the clock live in the services (:mod:`vpp.market`).

The names of the former single ``vpp.api.schemas`` module are re-exported here.
"""
from vpp.api.schemas.awards import AwardIn, AwardOut, AwardSlotOut
from vpp.api.schemas.common import MAX_SLOTS, Kw, Window
from vpp.api.schemas.health import Health
from vpp.api.schemas.offers import OfferIn, OfferOut, OfferSlotOut, SlotIn

__all__ = ["MAX_SLOTS", "AwardIn", "AwardOut", "AwardSlotOut", "Health", "Kw", "OfferIn", "OfferOut", "OfferSlotOut",
           "SlotIn", "Window"]
