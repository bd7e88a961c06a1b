"""Aggregator-facing VPP domain (pure logic + the ledger service; no HTTP here).

* :mod:`~vpp.market.baseline` — ERAB High 4 of 5 / High 2 of 3, same-day adjustment, plan baseline.
* :mod:`~vpp.market.performance` — delivered kWh/kW and compliance per dispatch.
* :mod:`~vpp.market.flexibility` — per-slot flexibility above the disaster-reserve floor.
* :mod:`~vpp.market.flex_service` — flexibility from the controller's plan (``PlanFlexibility``).
* :mod:`~vpp.market.offers` — offer/award rules, idempotency, deliverability.
* :mod:`~vpp.market.dispatch` — dispatch rules (REST and OpenADR), the ``DispatchBook`` the
  control loop reads, ledger records.
* :mod:`~vpp.market.site` — resources, usable batteries, floor and storm state for the API.
* :mod:`~vpp.market.metering` — metered / planned net import per slot, baselines, versions.
* :mod:`~vpp.market.settlement` — award → versioned ``performance`` record.
* :mod:`~vpp.market.ledger` — append-only settlement ledger service and exports.
* :mod:`~vpp.market.jma` — JMA warnings as the storm trigger for the reserve.
"""
