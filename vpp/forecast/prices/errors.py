"""The one error of price files: names the file, the row (1-based line) and the field."""
from __future__ import annotations


class PriceFileError(ValueError):
    """A price file is unreadable or inconsistent; nothing of it is used."""

    def __init__(self, message: str, *, source: str = "", row: int | None = None, field: str | None = None) -> None:
        where = ", ".join(x for x in (source, f"row {row}" if row is not None else "",
                                      f"field {field}" if field else "") if x)
        super().__init__(f"{where}: {message}" if where else message)
        self.source, self.row, self.field = source, row, field
