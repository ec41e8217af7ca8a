"""Closed months of readings packed one row per meter and UTC day (plain PostgreSQL's compression).

A reading row costs about 240 bytes with its indexes; packed, a meter's day is one row of arrays that lz4
shrinks to about 25 bytes per reading (migration 0190 describes the layout). `pack_month` moves a month a day
per transaction: the day's rows (monthly partition and DEFAULT partition) and any packs of the same meters
and day (late readings that arrived after an earlier packing) are merged, deduplicated on (meter_id, time)
and packed; the emptied partition is dropped at the end. Readers never notice: readings_between and the
nearest-index functions read both tables, and a transaction sees a day either hot or packed, never both.
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta

import psycopg
from psycopg import sql

from meterflow.logs import ctx, get_logger
from meterflow.periods import month_start, next_month
from storage.flavor import forget_partition

# a month is packed this long after it ends (Settings.storage.pack_after_days): last month's billing runs and
# late readings (a gateway's outbox after an outage) find it hot
PACK_AFTER = timedelta(days=35)
log = get_logger(__name__)

READING_COLUMNS = ("meter_id, time, total_m3, target_m3, target_date, flow_m3h, status, alarms, source,"
                   " gateway_id, received_at, fields")

PACK_SQL = f"""
INSERT INTO readings_packed (meter_id, day, first_time, last_time, n, time_steps, total_m3, target_m3, target_date,
                             flow_m3h, status, alarms, source, gateway_id, received_lag, fields)
SELECT meter_id, day, min(time), max(time), count(*)::integer,
       array_agg(step ORDER BY time), array_agg(total_m3 ORDER BY time), array_agg(target_m3 ORDER BY time),
       array_agg(target_date ORDER BY time), array_agg(flow_m3h ORDER BY time), array_agg(status ORDER BY time),
       array_agg(array_to_string(alarms, E'\\x1f') ORDER BY time), array_agg(source ORDER BY time),
       array_agg(gateway_id ORDER BY time),
       array_agg((extract(epoch FROM received_at - time) * 1000000)::bigint ORDER BY time),
       array_agg(fields ORDER BY time)
FROM (SELECT *, (extract(epoch FROM time - coalesce(lag(time) OVER w, time)) * 1000000)::bigint AS step
      FROM (SELECT DISTINCT ON (meter_id, time) {READING_COLUMNS}, (time AT TIME ZONE 'UTC')::date AS day
            FROM pack_rows ORDER BY meter_id, time, was_packed DESC) d
      WINDOW w AS (PARTITION BY meter_id, day ORDER BY time)) s
GROUP BY meter_id, day
"""


def _bounds(month: date) -> tuple[datetime, datetime]:
    nm = next_month(month)
    return datetime(month.year, month.month, 1, tzinfo=UTC), datetime(nm.year, nm.month, 1, tzinfo=UTC)


def partition_name(month: date) -> str:
    return f"readings_y{month.year:04d}m{month.month:02d}"


def months_to_pack(conn: psycopg.Connection, now: datetime, after: timedelta = PACK_AFTER) -> list[date]:
    """Months ended `after` ago that still have readings in the hot table (a monthly or the DEFAULT partition)."""
    cutoff = now - after
    rows = conn.execute(
        """SELECT to_date(substr(c.relname, 11, 4) || substr(c.relname, 16, 2), 'YYYYMM')
           FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
           WHERE i.inhparent = 'readings'::regclass AND c.relname ~ '^readings_y[0-9]{4}m[0-9]{2}$'
           UNION
           SELECT (date_trunc('month', time AT TIME ZONE 'UTC'))::date FROM readings_default WHERE time < %s""",
        (cutoff,),
    ).fetchall()
    return sorted(m for (m,) in rows if _bounds(m)[1] <= cutoff)


def _pack_day(conn: psycopg.Connection, lo: datetime, hi: datetime) -> int:
    """Move the hot readings of [lo, hi) (one UTC day) into packs, in one transaction; returns how many.

    REPEATABLE READ: the final DELETE must see exactly the rows that were packed. Under READ COMMITTED it
    would take a fresh snapshot and also delete a reading the decoder committed meanwhile, never packed."""
    conn.commit()  # its own transaction, not a savepoint of the caller's
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        conn.execute("SET LOCAL lock_timeout = '60s'")  # a long reader makes packing fail, not hang
        conn.execute("SET LOCAL work_mem = '256MB'")
        conn.execute(f"CREATE TEMP TABLE pack_rows ON COMMIT DROP AS SELECT {READING_COLUMNS}, false AS was_packed"
                     " FROM readings WHERE time >= %s AND time < %s", (lo, hi))
        row = conn.execute("SELECT count(*) FROM pack_rows").fetchone()
        moved = int(row[0]) if row else 0
        if moved:
            # late readings of a day packed before: unpack the meter's day and pack it again with them
            conn.execute(
                """WITH gone AS (
                        DELETE FROM readings_packed p USING (SELECT DISTINCT meter_id FROM pack_rows) k
                        WHERE p.meter_id = k.meter_id AND p.day = (%s::timestamptz AT TIME ZONE 'UTC')::date
                        RETURNING p)
                    INSERT INTO pack_rows SELECT u.*, true FROM gone CROSS JOIN LATERAL readings_unpacked(gone.p) u""",
                (lo,))
            conn.execute(PACK_SQL)
            conn.execute("DELETE FROM readings WHERE time >= %s AND time < %s", (lo, hi))
    return moved


def pack_month(conn: psycopg.Connection, month: date) -> int:
    """Pack the readings of one UTC month a day per transaction (a large fleet's month is hundreds of millions
    of rows; a reader sees each day hot or packed, never both), then drop the emptied partition. Interrupted,
    the next run goes on where this one stopped. Returns how many readings were moved."""
    month = month_start(month)
    lo, hi = _bounds(month)
    conn.commit()
    started = time.perf_counter()
    moved = 0
    day = lo
    while day < hi:
        moved += _pack_day(conn, day, day + timedelta(days=1))
        day += timedelta(days=1)
    name = partition_name(month)
    dropped = False
    with conn.transaction():
        conn.execute("SET LOCAL lock_timeout = '60s'")
        if conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone() == (True,):
            ident = sql.Identifier(name)
            conn.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(ident))
            # a reading that arrived meanwhile keeps the partition for the next run
            if conn.execute(sql.SQL("SELECT NOT EXISTS (SELECT FROM {})").format(ident)).fetchone() == (True,):
                conn.execute(sql.SQL("ALTER TABLE readings DETACH PARTITION {}").format(ident))
                conn.execute(sql.SQL("DROP TABLE {}").format(ident))
                dropped = True
    if dropped:
        forget_partition(conn, month)
    log.info("month packed", extra=ctx(month=f"{month:%Y-%m}", readings=moved, partition_dropped=dropped,
                                       seconds=round(time.perf_counter() - started, 1)))
    return moved


def pack_closed_months(conn: psycopg.Connection, now: datetime, after: timedelta = PACK_AFTER,
                       limit: int | None = 1) -> list[str]:
    """Pack up to `limit` months ended `after` ago (oldest first; the hourly flow catches up a month per run)."""
    packed = []
    for month in months_to_pack(conn, now, after)[:limit]:
        pack_month(conn, month)
        packed.append(f"{month:%Y-%m}")
    if packed:
        conn.execute("ANALYZE readings_packed")
        conn.commit()
    return packed


def expire_packed(conn: psycopg.Connection, cutoff: datetime) -> int:
    """Delete packed days wholly before `cutoff` (retention); the caller commits."""
    cur = conn.execute("DELETE FROM readings_packed WHERE day < (%s::timestamptz AT TIME ZONE 'UTC')::date",
                       (cutoff,))
    return cur.rowcount


def packed_size(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT pg_total_relation_size('readings_packed')").fetchone()
    return int(row[0] or 0) if row else 0


