"""Two more readers that see hot and packed readings alike (beside those of 0190), so no query outside the
migrations needs to know the packed layout:
  reading_span() / reading_span(meter)         first and last reading time (of the meter), from the packs'
                                               first_time / last_time without unpacking them
  index_reads_count(meters, lo, hi)            reads with an index, lo <= time <= hi, counted from the packs'
                                               index arrays where a packed day lies wholly inside
"""

from __future__ import annotations

import psycopg

from storage.flavor import Flavor

FUNCTIONS = """
CREATE OR REPLACE FUNCTION reading_span(OUT first_time timestamptz, OUT last_time timestamptz)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT least((SELECT min(time) FROM readings), (SELECT min(p.first_time) FROM readings_packed p)),
           greatest((SELECT max(time) FROM readings), (SELECT max(p.last_time) FROM readings_packed p))
$$;

CREATE OR REPLACE FUNCTION reading_span(m text, OUT first_time timestamptz, OUT last_time timestamptz)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT least((SELECT min(time) FROM readings WHERE meter_id = m),
                 (SELECT min(p.first_time) FROM readings_packed p WHERE p.meter_id = m)),
           greatest((SELECT max(time) FROM readings WHERE meter_id = m),
                    (SELECT max(p.last_time) FROM readings_packed p WHERE p.meter_id = m))
$$;

CREATE OR REPLACE FUNCTION index_reads_count(m text[], lo timestamptz, hi timestamptz) RETURNS bigint
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT (SELECT count(*) FROM readings r WHERE r.meter_id = ANY(m) AND r.total_m3 IS NOT NULL
              AND r.time >= lo AND r.time <= hi)
         + (SELECT coalesce(sum(CASE WHEN p.first_time >= lo AND p.last_time <= hi
                                     THEN cardinality(array_remove(p.total_m3, NULL))
                                     ELSE (SELECT count(*) FROM readings_unpacked(p) u
                                           WHERE u.total_m3 IS NOT NULL AND u.time >= lo AND u.time <= hi) END), 0)
            FROM readings_packed p WHERE p.meter_id = ANY(m)
              AND p.day >= (lo AT TIME ZONE 'UTC')::date AND p.day <= (hi AT TIME ZONE 'UTC')::date)
$$;
"""


def upgrade(conn: psycopg.Connection, flavor: Flavor, timezone: str) -> None:
    conn.execute(FUNCTIONS)
