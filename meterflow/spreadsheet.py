"""CSV cells that a spreadsheet would run as a formula (=, +, -, @, tab, CR first) get a leading apostrophe.

Meter ids, notes and customer references come from outside (imports, the API): written raw into a CSV export
a cell like `=HYPERLINK(...)` would execute in the billing clerk's spreadsheet. Numbers stay numbers.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import polars as pl


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """One cell: text that starts like a formula is prefixed with an apostrophe; other values pass."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def safe_frame(df: pl.DataFrame) -> pl.DataFrame:
    """Every text column of a frame made safe (vectorised)."""
    import polars as pl

    pattern = "^[=+\\-@\\t\\r]"
    return df.with_columns(
        pl.when(pl.col(c).str.contains(pattern)).then(pl.lit("'") + pl.col(c)).otherwise(pl.col(c)).alias(c)
        for c, dtype in df.schema.items() if dtype == pl.String
    )


class SafeWriter:
    """csv.writer whose rows are made safe cell by cell: a drop-in for every CSV export."""

    def __init__(self, fh: Any, **kwargs: Any) -> None:
        self._writer = csv.writer(fh, **kwargs)

    def writerow(self, row: Iterable[Any]) -> Any:
        return self._writer.writerow([safe_cell(v) for v in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


def safe_writer(fh: Any, **kwargs: Any) -> SafeWriter:
    return SafeWriter(fh, **kwargs)
