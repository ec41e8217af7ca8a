"""`db maintain` expires and refreshes by itself, and `db status` says what is due and how the jobs run."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from cli.main import cli
from storage import flavor, maintenance


@pytest.fixture(autouse=True)
def _no_earlier_maintenance(clean_db: psycopg.Connection) -> None:
    """Other tests of the session run the hourly flow, which maintains, and import 2016 readings, whose empty
    monthly partitions stay: start from a database never maintained, with no partition of readings."""
    if flavor.current(clean_db) == "postgres":
        for name, _ in maintenance._partitions(clean_db):
            flavor.drop_partition(clean_db, name)
    clean_db.execute("DELETE FROM meterflow_meta WHERE key = %s", (maintenance.LAST_RUN_KEY,))
    clean_db.commit()


def _run(dsn: str, *args: str) -> str:
    with tempfile.TemporaryDirectory() as tmp:  # raw frames would be archived there
        result = CliRunner().invoke(cli, list(args), env={"METERFLOW_DATABASE_URL": dsn, "METERFLOW_DATA_DIR": tmp})
    assert result.exit_code == 0, result.output
    return result.stdout


def _insert(conn: psycopg.Connection, meter: str, start: datetime, hours: int, index: float = 100.0) -> None:
    rows = [(meter, start + timedelta(hours=h), index + 0.01 * h) for h in range(hours)]
    flavor.ensure_partitions(conn, rows[0][1], rows[-1][1])
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO readings (meter_id, time, total_m3) VALUES (%s, %s, %s)", rows)
    conn.commit()


def test_plain_maintain_drops_partitions_past_retention_and_refreshes(clean_db: psycopg.Connection,
                                                                      database_url: str) -> None:
    if flavor.current(clean_db) != "postgres":
        pytest.skip("partitions are the plain flavour's")
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    _insert(clean_db, "old", datetime(2014, 3, 10, tzinfo=UTC), 48)  # past the 10-year retention
    _insert(clean_db, "new", now - timedelta(days=2), 36)
    assert ("maintenance: due partitions past retention 1, months to pack 0, raw frames to archive 0; last run never"
            in _run(database_url, "db", "status"))

    out = _run(database_url, "db", "maintain")
    assert "maintenance (postgres): dropped 1 partition(s) (readings_y2014m03), packed 0 month(s)," in out
    assert ", archived 0 raw frame(s) in 0 file(s), refreshed rollups" in out
    assert clean_db.execute("SELECT to_regclass('readings_y2014m03')").fetchone() == (None,)
    assert clean_db.execute("SELECT meter_id, count(*) FROM readings GROUP BY 1").fetchall() == [("new", 36)]
    # the rollups were brought up to date by maintenance alone
    assert clean_db.execute("SELECT sum(n_readings) FROM consumption_hourly WHERE meter_id = 'new'"
                            ).fetchone() == (36,)
    state = maintenance.status(clean_db)
    assert state.due == {"partitions past retention": 0, "months to pack": 0} and state.jobs == []
    policy = maintenance.Policy(maintenance.RawArchive(Path("unused"), timedelta(days=1)))
    assert maintenance.status(clean_db, policy=policy).due == {
        "partitions past retention": 0, "months to pack": 0, "raw frames to archive": 0}
    assert state.last_run is not None and state.last_run["dropped_partitions"] == ["readings_y2014m03"]
    status = _run(database_url, "db", "status")
    assert f"maintenance: due partitions past retention 0, months to pack 0, raw frames to archive 0; last run" \
        f" {state.last_run['at']}" \
        in status
    # the month can be written again: its partition is recreated
    _insert(clean_db, "old", datetime(2014, 3, 12, tzinfo=UTC), 2)
    assert clean_db.execute("SELECT count(*) FROM readings_y2014m03").fetchone() == (2,)
    # which the next run expires again, and then nothing is left to drop
    assert maintenance.maintain(clean_db).dropped_partitions == ["readings_y2014m03"]
    assert maintenance.maintain(clean_db).dropped_partitions == []


@pytest.mark.timescale
def test_timescale_maintain_compresses_and_expires_whatever_the_jobs_did(clean_db: psycopg.Connection,
                                                                         database_url: str) -> None:
    if flavor.current(clean_db) != "timescale":
        pytest.skip("needs METERFLOW_TIMESCALE_URL (the timescale variant of this test)")
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    _insert(clean_db, "old", now - timedelta(days=11 * 366), 24)
    _insert(clean_db, "m1", now - timedelta(days=60), 60 * 24)
    before = clean_db.execute("SELECT count(*), sum(total_m3) FROM readings WHERE meter_id = 'm1'").fetchone()
    state = maintenance.status(clean_db)
    assert state.due["chunks to compress"] >= 3 and state.due["chunks past retention"] == 1
    assert {(j.proc, j.relation) for j in state.jobs} >= {("policy_compression", "readings"),
                                                          ("policy_retention", "readings")}
    status = _run(database_url, "db", "status")
    for job in state.jobs:
        assert f"job {job.job_id} {job.proc} {job.relation}: {'FAILING' if job.failing else 'ok'}" in status

    report = maintenance.maintain(clean_db)
    assert report.dropped_chunks == 1 and report.compressed_chunks == state.due["chunks to compress"]
    assert maintenance.status(clean_db).due == {"chunks to compress": 0, "chunks past retention": 0}
    assert clean_db.execute("SELECT count(*) FROM readings WHERE meter_id = 'old'").fetchone() == (0,)
    after = clean_db.execute("SELECT count(*), sum(total_m3) FROM readings WHERE meter_id = 'm1'").fetchone()
    assert after == before
    assert clean_db.execute("SELECT sum(n_readings) FROM consumption_hourly WHERE meter_id = 'm1'"
                            " AND bucket >= %s", (now - timedelta(days=6),)).fetchone()[0] == 6 * 24
