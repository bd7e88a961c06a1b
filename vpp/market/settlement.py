"""Settle one award: baseline vs metered demand → a ``performance`` record in the ledger.

The instructed amount per slot is what the site *accepted* in the award (not what was
awarded): a shortfall the site declared at award time because of the disaster reserve is
not counted against it. Settling the same award again with the same inputs returns the
original record; different inputs are an :class:`~vpp.storage.ledger.IdempotencyConflict`
(corrections must be explicit, new records with their own key).
"""
from __future__ import annotations

import pandas as pd

from vpp.market.baseline import BaselineResult
from vpp.market.ledger import Ledger, LedgerRecord
from vpp.market.performance import DispatchPerformance, evaluate_dispatch


def instructed_from_award(award: LedgerRecord) -> pd.Series:
    """Accepted power per slot [W] of an award record, indexed by UTC slot start."""
    slots = award.payload["slots"]
    idx = pd.DatetimeIndex([pd.Timestamp(s["start"]) for s in slots]).tz_convert("UTC")
    return pd.Series([float(s["accepted_w"]) for s in slots], index=idx, name="instructed_w")


def settle_award(
    ledger: Ledger,
    award: LedgerRecord,
    baseline: BaselineResult,
    actual_w: pd.Series,
    *,
    actor: str = "settlement",
    tariff_version: str | None = None,
    co2_version: str | None = None,
    idempotency_key: str | None = None,
) -> tuple[LedgerRecord, DispatchPerformance]:
    """Evaluate an award against ``baseline`` (mean W per slot) and record the result.

    Parameters
    ----------
    ledger : Ledger
    award : LedgerRecord
        An ``award`` record (from :class:`~vpp.market.offers.MarketService`).
    baseline : BaselineResult
        Baseline over exactly the award's slots [W].
    actual_w : pandas.Series
        Metered mean net import per slot [W], UTC slot starts.
    idempotency_key : str, optional
        Defaults to ``performance:<award id>``.

    Returns
    -------
    (record, performance)
    """
    if award.kind != "award":
        raise ValueError(f"record {award.id} is a {award.kind}, not an award")
    instructed = instructed_from_award(award)
    if not baseline.values.index.equals(instructed.index):
        raise ValueError("baseline slots differ from the award's slots")
    perf = evaluate_dispatch(baseline.values, actual_w, instructed, direction=award.payload["direction"])
    payload = {
        "award_id": award.id,
        "offer_id": award.payload["offer_id"],
        "baseline": {
            "method": baseline.method,
            "days": [d.isoformat() for d in baseline.days],
            "skipped_low": [d.isoformat() for d in baseline.skipped_low],
            "adjustment_w": baseline.adjustment,
        },
        "performance": perf.as_dict(),
    }
    rec, _ = ledger.record(
        "performance", actor, payload, ref=award.id,
        idempotency_key=idempotency_key or f"performance:{award.id}",
        algorithm_version=baseline.algorithm_version, tariff_version=tariff_version, co2_version=co2_version,
    )
    return rec, perf
