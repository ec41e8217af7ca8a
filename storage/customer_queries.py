"""Reads behind a customer's page: the customer's meters with their registry facts, day buckets per meter,
a page of readings with their type, and the customer's incidents. Plain queries; no computation."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

import polars as pl
import psycopg

from storage.chart_queries import _frame, _local_midnight

METER_COLUMNS = ("meter_id", "role", "parent_meter_id", "premise_ref", "install_date", "install_index_m3",
                 "removal_date", "removal_index_m3", "tariff_group", "verification_expiry", "register_digits",
                 "manufacturer", "model")

#: readings.source -> the read type a customer sees; anything else came over the radio or a bus
READ_TYPES = {"manual": "self_read", "import": "imported", "estimate": "estimated", "estimated": "estimated"}


def customer_meters(conn: psycopg.Connection, customer_ref: str) -> list[dict[str, Any]]:
    """The customer's meters, oldest installation first, with the registry columns of METER_COLUMNS."""
    cur = conn.execute(
        f"SELECT {', '.join(METER_COLUMNS)} FROM meters WHERE customer_ref = %s"
        " ORDER BY install_date NULLS FIRST, meter_id", (customer_ref,))
    return [dict(zip(METER_COLUMNS, row, strict=True)) for row in cur.fetchall()]


def meter_days(conn: psycopg.Connection, meter_ids: Sequence[str], start: date, end: date, tz: str) -> pl.DataFrame:
    """Day buckets of the meters in [start, end) (local days): first and last index of the day and the last
    index of the meter's previous bucket, however far back (null before its first bucket)."""
    rows = conn.execute(
        """SELECT b.meter_id, (b.bucket AT TIME ZONE %(tz)s)::date, b.first_m3, b.last_m3,
                  coalesce(lag(b.last_m3) OVER (PARTITION BY b.meter_id ORDER BY b.bucket),
                           (SELECT p.last_m3 FROM consumption_daily p WHERE p.meter_id = b.meter_id
                              AND p.bucket < (%(lo)s::timestamp AT TIME ZONE %(tz)s)
                            ORDER BY p.bucket DESC LIMIT 1))
           FROM consumption_daily b
           WHERE b.meter_id = ANY(%(m)s) AND b.bucket >= (%(lo)s::timestamp AT TIME ZONE %(tz)s)
             AND b.bucket < (%(hi)s::timestamp AT TIME ZONE %(tz)s)
           ORDER BY b.meter_id, b.bucket""",
        {"m": list(meter_ids), "lo": _local_midnight(start), "hi": _local_midnight(end), "tz": tz},
    ).fetchall()
    return _frame(rows, {"meter_id": pl.Utf8, "day": pl.Date, "first_m3": pl.Float64, "last_m3": pl.Float64,
                         "prev_m3": pl.Float64})


def months_with_data(conn: psycopg.Connection, meter_ids: Sequence[str], start: date, end: date,
                     tz: str) -> list[tuple[str, date]]:
    """(meter, first day of month) for the local months in [start, end) in which the meter has a day bucket."""
    rows = conn.execute(
        """SELECT DISTINCT meter_id, date_trunc('month', bucket AT TIME ZONE %(tz)s)::date FROM consumption_daily
           WHERE meter_id = ANY(%(m)s) AND bucket >= (%(lo)s::timestamp AT TIME ZONE %(tz)s)
             AND bucket < (%(hi)s::timestamp AT TIME ZONE %(tz)s) ORDER BY 1, 2""",
        {"m": list(meter_ids), "lo": _local_midnight(start), "hi": _local_midnight(end), "tz": tz},
    ).fetchall()
    return [(str(m), d) for m, d in rows]


# the customer's billing periods that ended on an estimate, as an estimated read at the period end
_ESTIMATED = """SELECT DISTINCT ON (r.meter_id, r.period_start) r.meter_id,
                       (r.period_end::timestamp AT TIME ZONE %(tz)s) AS time, r.end_index_m3 AS total_m3,
                       'estimated' AS source
                FROM billing_results r JOIN billing_runs b USING (run_id)
                WHERE r.meter_id = ANY(%(m)s) AND b.status = 'finished' AND r.quality = 'ESTIMATED'
                  AND r.end_index_m3 IS NOT NULL
                ORDER BY r.meter_id, r.period_start, r.run_id DESC"""

# the rows of the union below in [lo, until]: counted without unpacking (migration 0192)
_COUNT = f"""SELECT index_reads_count(%(m)s, %(lo)s, %(until)s)
                  + (SELECT count(*) FROM ({_ESTIMATED}) e WHERE e.time >= %(lo)s AND e.time <= %(until)s)"""


def readings_page(conn: psycopg.Connection, meter_ids: Sequence[str], until: datetime, limit: int,
                  offset: int, tz: str, since: date | None = None) -> tuple[pl.DataFrame, int]:
    """Readings of the meters up to `until` (and from `since`, the customer's move-in), newest first, with the
    consumption since the meter's previous read and the source; billing periods that ended on an estimate appear
    as an estimated read at the period end. Returns the page and the number of rows of all pages.

    Years of 15-minute reads are tens of thousands of rows a meter, mostly in packed months: the total is
    counted from the packs' index arrays, and the page reads only the newest window that holds it (widened
    fourfold until it does), plus each meter's read before that window for the first consumption."""
    start = since or date(1900, 1, 1)
    params: dict[str, Any] = {"m": list(meter_ids), "until": until, "tz": tz}
    row = conn.execute("SELECT (%s::timestamp AT TIME ZONE %s)", (datetime(start.year, start.month, start.day),
                                                                  tz)).fetchone()
    assert row is not None
    since_at: datetime = row[0]
    total_row = conn.execute(_COUNT, {**params, "lo": since_at}).fetchone()
    total = int(total_row[0]) if total_row else 0
    need, lo, span = offset + limit + 1, since_at, timedelta(days=8)
    while until - span > since_at:
        lo = until - span
        got = conn.execute(_COUNT, {**params, "lo": lo}).fetchone()
        if got and int(got[0]) >= need:
            break
        span *= 4
    else:
        lo = since_at
    if lo > since_at:  # each meter's read before the window gives its first row in the window a consumption
        before = conn.execute("SELECT min(b.time) FROM unnest(%(m)s::text[]) m(id)"
                              " CROSS JOIN LATERAL last_index_before(m.id, %(lo)s) b", {**params, "lo": lo}).fetchone()
        lo = max(since_at, before[0]) if before and before[0] is not None else since_at
    union = f"""SELECT meter_id, time, total_m3, coalesce(source, 'remote') AS source
                FROM readings_between(%(lo)s, %(until)s::timestamptz + interval '1 microsecond')
                WHERE meter_id = ANY(%(m)s) AND total_m3 IS NOT NULL
                UNION ALL
                ({_ESTIMATED})"""
    rows = conn.execute(
        f"""SELECT meter_id, time, total_m3,
                   total_m3 - lag(total_m3) OVER (PARTITION BY meter_id ORDER BY time), source
            FROM ({union}) u WHERE time >= %(since)s AND time <= %(until)s
            ORDER BY time DESC, meter_id LIMIT %(limit)s OFFSET %(offset)s""",
        {**params, "lo": lo, "since": since_at, "limit": limit, "offset": offset},
    ).fetchall()
    df = _frame(rows, {"meter_id": pl.Utf8, "time": pl.Datetime("us", "UTC"), "index_m3": pl.Float64,
                       "consumption_m3": pl.Float64, "source": pl.Utf8})
    df = df.with_columns(pl.col("source").replace_strict(READ_TYPES, default="remote").alias("read_type"))
    return df, total


def last_read(conn: psycopg.Connection, meter_id: str, before: datetime) -> tuple[datetime, float] | None:
    """The meter's latest stored index at or before `before`."""
    row = conn.execute("SELECT time, total_m3 FROM last_index_before(%s, %s, true)", (meter_id, before)).fetchone()
    return (row[0], float(row[1])) if row else None


def reads_fingerprint(conn: psycopg.Connection, meter_id: str, lo: datetime, hi: datetime) -> tuple[Any, ...]:
    """What a billing computation of the meter over [lo, hi) depends on, in one cheap row: its reads there
    (count, last time, last arrival), its registry row and the latest finished billing run."""
    row = conn.execute(
        """SELECT count(*), max(time), max(received_at), sum(total_m3),
                  (SELECT updated_at FROM meters WHERE meter_id = %(m)s),
                  (SELECT max(run_id) FROM billing_runs WHERE status = 'finished')
           FROM readings_between(%(lo)s, %(hi)s) WHERE meter_id = %(m)s""",
        {"m": meter_id, "lo": lo, "hi": hi}).fetchone()
    return tuple(row) if row else ()

