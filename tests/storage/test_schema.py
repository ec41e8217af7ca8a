"""Schema: migrations are ordered and idempotent; partitions and rollups answer the shared queries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from storage import flavor
from storage.migrate import discover, upgrade


def test_upgrade_twice_applies_nothing_the_second_time(db: psycopg.Connection) -> None:
    assert upgrade(db, "Europe/Warsaw") == []
    versions = [r[0] for r in db.execute("SELECT version FROM schema_migrations ORDER BY version")]
    assert versions == [m.version for m in discover()]


def test_plain_postgres_flavour_partitions_readings_by_month(clean_db: psycopg.Connection) -> None:
    if flavor.current(clean_db) != "postgres":
        pytest.skip("partitions are the plain flavour's (TimescaleDB: chunks)")
    t0 = datetime(2026, 3, 31, 23, 0, tzinfo=UTC)
    # lands in DEFAULT first, then moves when the partitions are created
    clean_db.execute("INSERT INTO readings (meter_id, time, total_m3) VALUES ('m1', %s, 1.0)", (t0,))
    flavor.ensure_partitions(clean_db, t0, t0 + timedelta(hours=2))
    clean_db.execute("INSERT INTO readings (meter_id, time, total_m3) VALUES ('m1', %s, 1.25)",
                     (t0 + timedelta(hours=2),))
    clean_db.commit()
    rows = clean_db.execute(
        "SELECT tableoid::regclass::text, count(*) FROM readings GROUP BY 1 ORDER BY 1").fetchall()
    assert rows == [("readings_y2026m03", 1), ("readings_y2026m04", 1)]


def test_rollups_hold_first_and_last_index_per_local_day(clean_db: psycopg.Connection) -> None:
    t0 = datetime(2026, 5, 1, 21, 30, tzinfo=UTC)  # 23:30 in Warsaw (UTC+2): still 1 May locally
    values = [(t0, 10.0), (t0 + timedelta(hours=1), 10.5), (t0 + timedelta(hours=2), 10.75)]
    flavor.ensure_partitions(clean_db, t0, t0 + timedelta(hours=2))
    with clean_db.cursor() as cur:
        cur.executemany("INSERT INTO readings (meter_id, time, total_m3) VALUES ('m2', %s, %s)", values)
    flavor.refresh_rollups(clean_db, t0, t0 + timedelta(hours=3))
    clean_db.commit()
    daily = clean_db.execute(
        "SELECT bucket, first_m3, last_m3, n_readings FROM consumption_daily WHERE meter_id = 'm2' ORDER BY bucket"
    ).fetchall()
    assert [(r[1], r[2], r[3]) for r in daily] == [(10.0, 10.0, 1), (10.5, 10.75, 2)]
    assert daily[0][0] == datetime(2026, 4, 30, 22, 0, tzinfo=UTC)
    hourly = clean_db.execute("SELECT count(*) FROM consumption_hourly WHERE meter_id = 'm2'").fetchone()
    assert hourly == (3,)


def test_raw_frames_keeps_only_the_indexes_it_uses(db: psycopg.Connection) -> None:
    rows = db.execute("SELECT c.relname, am.amname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
                      " JOIN pg_am am ON am.oid = c.relam WHERE i.indrelid = 'raw_frames'::regclass ORDER BY 1")
    assert rows.fetchall() == [("raw_frames_pkey", "btree"), ("raw_frames_received_brin", "brin")]
