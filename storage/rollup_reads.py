"""Read rollups into polars frames (the same query on both storage flavours)."""

from __future__ import annotations

from datetime import datetime

import polars as pl
import psycopg

# the frame analytics.consumption.bucket_consumption reads
ROLLUP_SCHEMA: dict[str, pl.DataType] = {"meter_id": pl.String(), "bucket": pl.Datetime("us", "UTC"),
                                         "first_m3": pl.Float64(), "last_m3": pl.Float64()}


def read_rollup(conn: psycopg.Connection, table: str, start: datetime, end: datetime,
                meter_ids: list[str] | None = None) -> pl.DataFrame:
    """Rows of consumption_hourly or consumption_daily with bucket in [start, end)."""
    if table not in ("consumption_hourly", "consumption_daily"):
        raise ValueError(f"not a rollup: {table}")
    query = f"SELECT meter_id, bucket, first_m3, last_m3 FROM {table} WHERE bucket >= %s AND bucket < %s"
    params: list[object] = [start, end]
    if meter_ids is not None:
        query += " AND meter_id = ANY(%s)"
        params.append(meter_ids)
    with conn.cursor() as cur:
        cur.execute(query + " ORDER BY meter_id, bucket", params)
        rows = cur.fetchall()
    return pl.DataFrame(rows, schema=ROLLUP_SCHEMA, orient="row")
