"""Aggregator-facing VPP domain (pure logic + the ledger service; no HTTP here).

* :mod:`~vpp.market.baseline` — ERAB High 4 of 5 / High 2 of 3, same-day adjustment, plan baseline.
* :mod:`~vpp.market.performance` — delivered kWh/kW and compliance per dispatch.
* :mod:`~vpp.market.flexibility` — per-slot flexibility above the disaster-reserve floor
  (``FlexSlot``: the one flexibility record, W/Wh/s).
* :mod:`~vpp.market.flex_service` — flexibility from the controller's plan (``PlanFlexibility``)
  and what the API shows (``flexibility_view``: slot rounding, storm slots emptied).
* :mod:`~vpp.market.offers` — offer/award rules, idempotency, deliverability; ``OfferSlot``,
  the one offer record.
* :mod:`~vpp.market.bid_inputs` — a day-ahead bid from the running services (SoC, storm,
  JMA document) and the price precedence (posted → services → config).
* :mod:`~vpp.market.dispatch` — dispatch rules (REST and OpenADR), the PATCH merge
  (``merge_request``), the ``DispatchBook`` the control loop reads, ledger records.
* :mod:`~vpp.market.site` — resources, usable batteries, floor and storm state for the API.
* :mod:`~vpp.market.metering` — metered / planned net import per slot, baselines, versions.
* :mod:`~vpp.market.settlement` — award → versioned ``performance`` record.
* :mod:`~vpp.market.settlement_job` — dispatch performance (read-only) and the settlement job
  ``settle_due`` that records it once per dispatch when its slots are over.
* :mod:`~vpp.market.ledger` — append-only settlement ledger service and exports.
* :mod:`~vpp.market.jma` — JMA warnings as the storm trigger for the reserve.
"""
