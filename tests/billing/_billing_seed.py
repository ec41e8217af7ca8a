"""Shared seed data of the billing DB tests (a module, not a conftest: conftest.py is the lead's)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import polars as pl
import psycopg

from storage import reading_import as store

TZ = "Europe/Warsaw"


def local(y: int, m: int, d: int, h: int = 0) -> datetime:
    return datetime(y, m, d, h, tzinfo=ZoneInfo(TZ)).astimezone(UTC)


def seed(conn: psycopg.Connection) -> None:
    """Three meters: A steady, B exchanged on 11 March (premise P2 -> C), A also read 1 May for period 2."""
    conn.execute(
        "INSERT INTO meters (meter_id, premise_ref, install_date, install_index_m3, removal_date, removal_index_m3,"
        " register_digits) VALUES ('A', 'P1', NULL, NULL, NULL, NULL, 5),"
        " ('B', 'P2', NULL, NULL, '2024-03-11', 512.0, 5), ('C', 'P2', '2024-03-11', 3.0, NULL, NULL, 5)"
    )
    conn.commit()
    rows = [("A", local(2024, 3, 1), 100.0, 2), ("A", local(2024, 3, 15, 12), 110.0, 3),
            ("A", local(2024, 4, 1), 131.0, 4), ("A", local(2024, 5, 1), 161.0, 5),
            ("B", local(2024, 3, 1), 500.0, 6), ("B", local(2024, 3, 10), 511.0, 7),
            ("C", local(2024, 3, 12), 4.0, 8), ("C", local(2024, 4, 1), 24.0, 9)]
    good = pl.DataFrame(rows, schema={"meter_id": pl.String, "time": pl.Datetime("us", "UTC"),
                                      "total_m3": pl.Float64, "line": pl.Int64}, orient="row")
    st = store.import_readings(conn, good, file="seed.csv")
    assert st.inserted == 8
