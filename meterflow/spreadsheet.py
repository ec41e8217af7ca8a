"""CSV cells that a spreadsheet would run as a formula (=, +, -, @, tab, CR first) get a leading apostrophe.

Meter ids, notes and customer references come from outside (imports, the API): written raw into a CSV export
a cell like `=HYPERLINK(...)` would execute in the billing clerk's spreadsheet. Numbers stay numbers.
"""

from __future__ import annotations

from typing import Any

import polars as pl

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """One cell: text that starts like a formula is prefixed with an apostrophe; other values pass."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def safe_frame(df: pl.DataFrame) -> pl.DataFrame:
    """Every text column of a frame made safe (vectorised)."""
    pattern = "^[=+\\-@\\t\\r]"
    return df.with_columns(
        pl.when(pl.col(c).str.contains(pattern)).then(pl.lit("'") + pl.col(c)).otherwise(pl.col(c)).alias(c)
        for c, dtype in df.schema.items() if dtype == pl.String
    )
