"""The one place where plain PostgreSQL and TimescaleDB differ.

Both flavours expose the same relations with the same columns, so every query works on either:
  readings                    (meter_id, time) primary key; one row per distinct meter reading
  consumption_hourly / _daily  per meter and bucket: first/last time and index, min/max index, max flow, count

PostgreSQL: readings is natively range-partitioned by month (plus a DEFAULT partition as a safety net),
and the rollups are ordinary tables that `refresh_rollups` (called by the flows) upserts.
TimescaleDB: readings is a hypertable with compression and retention policies, and the rollups are
continuous aggregates with refresh and compression policies; `refresh_rollups` forces a refresh of a window.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal

import psycopg
from psycopg import sql

from meterflow.periods import month_start, next_month

Flavor = Literal["postgres", "timescale"]

# TimescaleDB policies (documented in README "Storage").
CHUNK_INTERVAL = "7 days"
COMPRESS_AFTER = "30 days"
RETAIN_FOR = "10 years"  # billing disputes and legal retention outlive a meter

READINGS_COLUMNS = """
    meter_id      text NOT NULL,
    time          timestamptz NOT NULL,           -- meter clock when the telegram carries it, else receive time
    total_m3      double precision,
    target_m3     double precision,
    target_date   date,
    flow_m3h      double precision,
    status        text NOT NULL DEFAULT 'OK',
    alarms        text[] NOT NULL DEFAULT '{}',
    source        text NOT NULL DEFAULT 'wmbus',  -- wmbus | modbus | wmbusmeters | manual | import
    gateway_id    text,
    received_at   timestamptz,
    fields        jsonb
"""

ROLLUPS = {"consumption_hourly": "1 hour", "consumption_daily": "1 day"}


@dataclass(frozen=True)
class Choice:
    """The flavour a server gets, and why (printed by `db upgrade`, kept in meterflow_meta)."""

    flavor: Flavor
    reason: str
    warning: bool = False


def preloaded(setting: str) -> bool:
    """Whether a shared_preload_libraries value loads TimescaleDB ('timescaledb', '$libdir/timescaledb-2.x')."""
    names = (part.strip().strip('"').rsplit("/", 1)[-1] for part in setting.split(","))
    return any(name.startswith("timescaledb") for name in names)


def choose(available: str | None, installed: str | None, preload: str) -> Choice:
    """Decide from what the server says: never try CREATE EXTENSION where it would be FATAL."""
    if installed:
        return Choice("timescale", f"TimescaleDB {installed} is already installed in this database")
    if available is None:
        return Choice("postgres", "the TimescaleDB package is not installed on this server")
    if not preloaded(preload):
        return Choice("postgres", f"the TimescaleDB {available} package is installed but not in"
                      f" shared_preload_libraries ({preload or 'empty'}); add it there and restart the server to"
                      " use TimescaleDB", warning=True)
    return Choice("timescale", f"TimescaleDB {available} is installed and preloaded")


def detect_choice(conn: psycopg.Connection) -> Choice:
    """Ask the server (pg_available_extensions, shared_preload_libraries), then create the extension if it can.

    `CREATE EXTENSION timescaledb` on a server that has the package but does not preload it is FATAL (the
    connection closes), so it is only tried once the server says the library is loaded."""
    row = conn.execute(
        "SELECT default_version, installed_version FROM pg_available_extensions WHERE name = 'timescaledb'"
    ).fetchone()
    preload = conn.execute("SELECT setting FROM pg_settings WHERE name = 'shared_preload_libraries'").fetchone()
    choice = choose(row[0] if row else None, row[1] if row else None, preload[0] if preload else "")
    if choice.flavor == "timescale" and not (row and row[1]):
        try:
            with conn.transaction():
                conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        except psycopg.Error as exc:
            return Choice("postgres", f"CREATE EXTENSION timescaledb failed: {exc}".strip(), warning=True)
    return choice


def create_readings(conn: psycopg.Connection, flavor: Flavor) -> None:
    if flavor == "timescale":
        conn.execute(f"CREATE TABLE IF NOT EXISTS readings ({READINGS_COLUMNS}, PRIMARY KEY (meter_id, time))")
        conn.execute(
            "SELECT create_hypertable('readings', by_range('time', %s::interval), if_not_exists => true)",
            (CHUNK_INTERVAL,),
        )
        conn.execute(
            "ALTER TABLE readings SET (timescaledb.compress, timescaledb.compress_segmentby = 'meter_id',"
            " timescaledb.compress_orderby = 'time')"
        )
        policy = "SELECT {}('readings', %s::interval, if_not_exists => true)"
        conn.execute(policy.format("add_compression_policy"), (COMPRESS_AFTER,))
        conn.execute(policy.format("add_retention_policy"), (RETAIN_FOR,))
    else:
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS readings ({READINGS_COLUMNS}, PRIMARY KEY (meter_id, time))"
            " PARTITION BY RANGE (time)"
        )
        conn.execute("CREATE TABLE IF NOT EXISTS readings_default PARTITION OF readings DEFAULT")
    conn.execute("CREATE INDEX IF NOT EXISTS readings_time_idx ON readings (time)")


def _rollup_select(bucket_expr: str) -> str:
    return f"""
        SELECT meter_id, {bucket_expr} AS bucket,
               min(time) AS first_time, max(time) AS last_time,
               {{first}} AS first_m3, {{last}} AS last_m3,
               min(total_m3) AS min_m3, max(total_m3) AS max_m3,
               max(flow_m3h) AS max_flow_m3h, count(*)::integer AS n_readings
        FROM {{source}} WHERE total_m3 IS NOT NULL
        GROUP BY meter_id, bucket"""


def create_rollups(conn: psycopg.Connection, flavor: Flavor, timezone: str) -> None:
    for name, width in ROLLUPS.items():
        if flavor == "timescale":
            tz = f", '{timezone}'" if width == "1 day" else ""
            select = _rollup_select(f"time_bucket(INTERVAL '{width}', time{tz})").format(
                first="first(total_m3, time)", last="last(total_m3, time)", source="readings"
            )
            conn.execute(f"CREATE MATERIALIZED VIEW IF NOT EXISTS {name} WITH (timescaledb.continuous) AS {select}"
                         " WITH NO DATA")
            conn.execute(
                "SELECT add_continuous_aggregate_policy(%s, start_offset => INTERVAL '7 days',"
                " end_offset => INTERVAL '1 hour', schedule_interval => INTERVAL '30 minutes', if_not_exists => true)",
                (name,),
            )
            compress_rollup(conn, name)
        else:
            conn.execute(
                f"""CREATE TABLE IF NOT EXISTS {name} (
                    meter_id text NOT NULL, bucket timestamptz NOT NULL,
                    first_time timestamptz NOT NULL, last_time timestamptz NOT NULL,
                    first_m3 double precision, last_m3 double precision,
                    min_m3 double precision, max_m3 double precision,
                    max_flow_m3h double precision, n_readings integer NOT NULL,
                    PRIMARY KEY (meter_id, bucket))"""
            )
        conn.execute(f"CREATE INDEX IF NOT EXISTS {name}_bucket_idx ON {name} (bucket)")
    conn.execute(
        "INSERT INTO meterflow_meta (key, value) VALUES ('rollup_timezone', %s)"
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (timezone,),
    )


def compress_rollup(conn: psycopg.Connection, name: str) -> None:
    """Compress a continuous aggregate like readings (by meter, after COMPRESS_AFTER): uncompressed, the hourly
    one costs more than the compressed readings themselves (55 against 13 bytes per reading; 9 compressed)."""
    conn.execute(f"ALTER MATERIALIZED VIEW {name} SET (timescaledb.compress = true,"
                 " timescaledb.compress_segmentby = 'meter_id', timescaledb.compress_orderby = 'bucket')")
    conn.execute("SELECT add_compression_policy(%s, compress_after => %s::interval, if_not_exists => true)",
                 (name, COMPRESS_AFTER))


def current(conn: psycopg.Connection) -> Flavor:
    row = conn.execute("SELECT value FROM meterflow_meta WHERE key = 'flavor'").fetchone()
    return "timescale" if row and row[0] == "timescale" else "postgres"


def refresh_rollups(conn: psycopg.Connection, start: datetime, end: datetime) -> None:
    """Bring the hourly and daily rollups up to date for readings in [start, end).

    Runs in autocommit on TimescaleDB (refresh_continuous_aggregate refuses a transaction)."""
    flavor = current(conn)
    tz_row = conn.execute("SELECT value FROM meterflow_meta WHERE key = 'rollup_timezone'").fetchone()
    timezone = tz_row[0] if tz_row else "UTC"
    # widen to whole local days so both buckets are recomputed completely
    lo = start - timedelta(days=1)
    hi = end + timedelta(days=1)
    if flavor == "timescale":
        conn.commit()
        autocommit = conn.autocommit
        conn.autocommit = True
        try:
            for name in ROLLUPS:
                conn.execute("CALL refresh_continuous_aggregate(%s, %s, %s)", (name, lo, hi))
        finally:
            conn.autocommit = autocommit
        return
    for name, width in ROLLUPS.items():
        bucket = "date_trunc('hour', time)" if width == "1 hour" else f"date_trunc('day', time, '{timezone}')"
        select = _rollup_select(bucket).format(
            first="(array_agg(total_m3 ORDER BY time))[1]",
            last="(array_agg(total_m3 ORDER BY time DESC))[1]",
            source="readings_between(%(lo)s, %(hi)s)",  # packed months too
        )
        lo_bucket = f"date_trunc('{'hour' if width == '1 hour' else 'day'}', %(lo)s::timestamptz"
        lo_bucket += ")" if width == "1 hour" else f", '{timezone}')"
        conn.execute(
            sql.SQL(
                "DELETE FROM {t} WHERE bucket >= " + lo_bucket + " AND bucket < %(hi)s"
            ).format(t=sql.Identifier(name)),
            {"lo": lo, "hi": hi},
        )
        conn.execute(
            sql.SQL(
                "INSERT INTO {t} SELECT * FROM (" + select + ") s WHERE bucket >= " + lo_bucket
            ).format(t=sql.Identifier(name)),
            {"lo": lo, "hi": hi},
        )


_known_partitions: set[tuple[str, date]] = set()


def ensure_partitions(conn: psycopg.Connection, start: datetime, end: datetime) -> None:
    """Create the monthly partitions that rows in [start, end] need (PostgreSQL flavour; no-op on TimescaleDB).

    Rows that already landed in the DEFAULT partition for such a month are moved into the new one."""
    dbname = conn.info.dbname
    month = month_start(start.astimezone(UTC).date())
    last = month_start(end.astimezone(UTC).date())
    months = []
    while month <= last:
        if (dbname, month) not in _known_partitions:
            months.append(month)
        month = next_month(month)
    if not months or current(conn) == "timescale":
        _known_partitions.update((dbname, m) for m in months)
        return
    for m in months:
        name = f"readings_y{m.year:04d}m{m.month:02d}"
        lo = datetime(m.year, m.month, 1, tzinfo=UTC)
        nm = next_month(m)
        hi = datetime(nm.year, nm.month, 1, tzinfo=UTC)
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('meterflow.partitions'))")
            exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()
            if not (exists and exists[0]):
                ident = sql.Identifier(name)
                conn.execute(sql.SQL("CREATE TABLE {} (LIKE readings INCLUDING DEFAULTS)").format(ident))
                conn.execute(
                    sql.SQL("WITH moved AS (DELETE FROM readings_default WHERE time >= %s AND time < %s RETURNING *)"
                            " INSERT INTO {} SELECT * FROM moved").format(ident),
                    (lo, hi),
                )
                conn.execute(
                    sql.SQL("ALTER TABLE readings ATTACH PARTITION {} FOR VALUES FROM ({}) TO ({})").format(
                        ident, sql.Literal(lo.isoformat()), sql.Literal(hi.isoformat())
                    )
                )
        _known_partitions.add((dbname, m))


def forget_partition(conn: psycopg.Connection, month: date) -> None:
    """A monthly partition was dropped (retention, packing): the next write for that month makes it again."""
    _known_partitions.discard((conn.info.dbname, month))


def drop_partition(conn: psycopg.Connection, name: str) -> None:
    """Detach and drop one monthly partition of readings (retention, PostgreSQL flavour), in one transaction."""
    m = datetime.strptime(name, "readings_y%Ym%m").date()
    with conn.transaction():
        conn.execute("SET LOCAL lock_timeout = '60s'")  # a long reader makes maintenance fail, not hang
        conn.execute(sql.SQL("ALTER TABLE readings DETACH PARTITION {}").format(sql.Identifier(name)))
        conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(name)))
    forget_partition(conn, m)
