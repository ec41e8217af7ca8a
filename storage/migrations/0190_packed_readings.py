"""A leaner reading, and closed months packed one row per meter and day.

readings loses `rssi` and `frame_digest`: both are the frame's, kept once in raw_frames (and the raw archive),
and the digest alone (32 random bytes) made a third of a compressed TimescaleDB reading.

readings_packed holds the readings of closed months on plain PostgreSQL (storage/packing.py moves them there),
one row per meter and UTC day: each column an array in time order, times as microsecond steps from the
first, receive times as microsecond lags behind the reading's time; lz4 (pglz where the server lacks lz4)
compresses them from a row of about 90 bytes per reading to about 20. On TimescaleDB the table stays empty:
compressed chunks do the same there.

Every reader goes through three SQL functions that see both tables, so a packed month answers the same
queries as a hot one:
  readings_between(lo, hi)                 readings with lo <= time < hi (inlined: outer quals reach both arms)
  last_index_before(meter, t, inclusive)   the meter's latest reading with an index before t (or at t)
  first_index_after(meter, t, inclusive)   its earliest reading with an index after t (or at t)
"""

from __future__ import annotations

import psycopg

from storage.flavor import Flavor

PACKED_ARRAYS = ("time_steps", "total_m3", "target_m3", "target_date", "flow_m3h", "status", "alarms", "source",
                 "gateway_id", "received_lag", "fields")

# columns of readings, in table order, as the packed arm rebuilds them from one unnested row `u`
UNPACK = """
CREATE OR REPLACE FUNCTION readings_unpacked(p readings_packed) RETURNS SETOF readings
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT p.meter_id, t.time, t.total_m3, t.target_m3, t.target_date, t.flow_m3h, t.status,
           CASE WHEN t.alarms = '' THEN '{}'::text[] ELSE string_to_array(t.alarms, E'\\x1f') END,
           t.source, t.gateway_id, t.time + t.received_lag * interval '1 microsecond', t.fields
    FROM (SELECT p.first_time + sum(u.step) OVER (ORDER BY u.n) * interval '1 microsecond' AS time, u.*
          FROM unnest(p.time_steps, p.total_m3, p.target_m3, p.target_date, p.flow_m3h, p.status, p.alarms,
                      p.source, p.gateway_id, p.received_lag, p.fields)
               WITH ORDINALITY AS u(step, total_m3, target_m3, target_date, flow_m3h, status, alarms, source,
                                    gateway_id, received_lag, fields, n)) t
$$;
"""

BETWEEN = """
CREATE OR REPLACE FUNCTION readings_between(lo timestamptz, hi timestamptz) RETURNS SETOF readings
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT r.* FROM readings r WHERE r.time >= lo AND r.time < hi
    UNION ALL
    SELECT u.* FROM readings_packed p CROSS JOIN LATERAL readings_unpacked(p) u
    WHERE p.day >= (lo AT TIME ZONE 'UTC')::date AND p.day <= (hi AT TIME ZONE 'UTC')::date
      AND p.last_time >= lo AND p.first_time < hi AND u.time >= lo AND u.time < hi
$$;
"""

# `inclusive` chooses <= / >= over < / >; the packed arm walks the meter's days from t outwards (an
# incremental sort over the (meter_id, day) key stops at the first day with a match)
NEAREST = """
CREATE OR REPLACE FUNCTION last_index_before(m text, t timestamptz, inclusive boolean DEFAULT false)
RETURNS SETOF readings LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT * FROM (
        (SELECT r.* FROM readings r WHERE r.meter_id = m AND r.total_m3 IS NOT NULL
           AND (r.time < t OR (inclusive AND r.time = t)) ORDER BY r.time DESC LIMIT 1)
        UNION ALL
        (SELECT u.* FROM readings_packed p CROSS JOIN LATERAL readings_unpacked(p) u
         WHERE p.meter_id = m AND p.day <= (t AT TIME ZONE 'UTC')::date AND u.total_m3 IS NOT NULL
           AND (u.time < t OR (inclusive AND u.time = t))
         ORDER BY p.day DESC, u.time DESC LIMIT 1)
    ) x ORDER BY x.time DESC LIMIT 1
$$;

CREATE OR REPLACE FUNCTION first_index_after(m text, t timestamptz, inclusive boolean DEFAULT false)
RETURNS SETOF readings LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT * FROM (
        (SELECT r.* FROM readings r WHERE r.meter_id = m AND r.total_m3 IS NOT NULL
           AND (r.time > t OR (inclusive AND r.time = t)) ORDER BY r.time LIMIT 1)
        UNION ALL
        (SELECT u.* FROM readings_packed p CROSS JOIN LATERAL readings_unpacked(p) u
         WHERE p.meter_id = m AND p.day >= (t AT TIME ZONE 'UTC')::date AND u.total_m3 IS NOT NULL
           AND (u.time > t OR (inclusive AND u.time = t))
         ORDER BY p.day, u.time LIMIT 1)
    ) x ORDER BY x.time LIMIT 1
$$;
"""


def lz4_available(conn: psycopg.Connection) -> bool:
    """Whether the server was built with lz4 (faster and smaller than pglz on these arrays)."""
    try:
        with conn.transaction():
            conn.execute("CREATE TEMP TABLE meterflow_lz4_probe (a text COMPRESSION lz4) ON COMMIT DROP")
        return True
    except psycopg.errors.FeatureNotSupported:
        return False


def upgrade(conn: psycopg.Connection, flavor: Flavor, timezone: str) -> None:
    conn.execute("ALTER TABLE readings DROP COLUMN IF EXISTS rssi, DROP COLUMN IF EXISTS frame_digest")
    conn.execute("""
        CREATE TABLE IF NOT EXISTS readings_packed (
            meter_id      text NOT NULL,
            day           date NOT NULL,              -- UTC day of every reading in the row
            first_time    timestamptz NOT NULL,
            last_time     timestamptz NOT NULL,
            n             integer NOT NULL,
            time_steps    bigint[] NOT NULL,          -- microseconds since the previous reading (0 first)
            total_m3      double precision[],
            target_m3     double precision[],
            target_date   date[],
            flow_m3h      double precision[],
            status        text[],
            alarms        text[],                     -- a reading's alarm words joined by U+001F
            source        text[],
            gateway_id    text[],
            received_lag  bigint[],                   -- microseconds from time to received_at
            fields        jsonb[],
            PRIMARY KEY (meter_id, day)
        ) WITH (toast_tuple_target = 128)""")
    conn.execute("CREATE INDEX IF NOT EXISTS readings_packed_day_idx ON readings_packed (day)")
    method = "lz4" if lz4_available(conn) else "pglz"
    for column in PACKED_ARRAYS:
        conn.execute(f"ALTER TABLE readings_packed ALTER COLUMN {column} SET COMPRESSION {method}")
    conn.execute(UNPACK)
    conn.execute(BETWEEN)
    conn.execute(NEAREST)
