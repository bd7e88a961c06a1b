"""``/ledger/export``: the settlement records of a period (the record kinds are the ledger's)."""
from __future__ import annotations

from typing import Literal

from vpp.market.ledger import KINDS

RecordKind = Literal[KINDS]  # type: ignore[valid-type]
ExportFormat = Literal["json", "csv"]
