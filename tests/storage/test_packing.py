"""Packed months (plain PostgreSQL) answer every query exactly as the hot table did, and late readings merge in."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from polars.testing import assert_frame_equal

from cli.main import cli
from meterflow.periods import add_months
from storage import customer_queries, flavor, maintenance, packing
from storage.billing import load_readings
from storage.writer import BatchWriter, StagedFrame

METERS = ("p001", "p002", "p003")


@pytest.fixture
def plain(clean_db: psycopg.Connection) -> psycopg.Connection:
    if flavor.current(clean_db) != "postgres":
        pytest.skip("packing is the plain flavour's compression (TimescaleDB compresses chunks)")
    for name, _ in maintenance._partitions(clean_db):
        flavor.drop_partition(clean_db, name)
    return clean_db


def _month() -> date:
    today = datetime.now(UTC).date()
    return add_months(date(today.year, today.month, 1), -3)


def _seed(conn: psycopg.Connection, month: date) -> None:
    """Three meters over the month's first four days, every column used: clock times with and without
    microseconds, alarms, targets, a missing index, manual and imported reads."""
    start = datetime(month.year, month.month, 1, tzinfo=UTC)
    rows: list[tuple[Any, ...]] = []
    for i, meter in enumerate(METERS):
        t, index = start + timedelta(minutes=7 * i), 100.0 * (i + 1)
        for k in range(4 * 96):
            t += timedelta(minutes=15, microseconds=(k % 7) * 1001 if i == 1 else 0)
            index += 0.001 * (k % 5)
            alarms = ["leak", "backflow"] if k % 97 == 5 else []
            total = None if k == 40 else round(index, 3)
            source = "manual" if k == 100 else "import" if k == 200 else "wmbus"
            fields = f'{{"line": {k}, "notation": "comma"}}' if source == "import" else (
                '{"error_flags": 0}' if k % 2 else None)
            rows.append((meter, t, total, 99.5 if k > 50 else None, date(month.year, month.month, 1) if k > 50
                         else None, 0.012 * (k % 3) if k % 4 else None, "OK" if k % 50 else "LOW_BATTERY", alarms,
                         source, None if source != "wmbus" else f"gw-{i}",
                         t + timedelta(seconds=3, microseconds=137 * k) if k % 11 else None, fields))
    flavor.ensure_partitions(conn, rows[0][1], rows[-1][1])
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO readings (meter_id, time, total_m3, target_m3, target_date, flow_m3h, status, alarms,"
            " source, gateway_id, received_at, fields) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            rows)
    conn.commit()


def _everything(conn: psycopg.Connection) -> list[tuple[Any, ...]]:
    return conn.execute("SELECT r.* FROM readings_between('-infinity', 'infinity') r ORDER BY meter_id, time"
                        ).fetchall()


def _nearest(conn: psycopg.Connection, month: date) -> list[Any]:
    out = []
    start = datetime(month.year, month.month, 1, tzinfo=UTC)
    for meter in METERS:
        for t in (start, start + timedelta(hours=10, minutes=15), start + timedelta(days=2, minutes=3),
                  start + timedelta(days=9)):
            for fn in ("last_index_before", "first_index_after"):
                for inclusive in (False, True):
                    out.append(conn.execute(f"SELECT time, total_m3 FROM {fn}(%s, %s, %s)",
                                            (meter, t, inclusive)).fetchall())
    return out


def test_a_packed_month_answers_every_query_as_the_hot_one(plain: psycopg.Connection, database_url: str) -> None:
    month = _month()
    _seed(plain, month)
    lo = datetime(month.year, month.month, 1, tzinfo=UTC)
    before = _everything(plain)
    nearest = _nearest(plain, month)
    billing = load_readings(plain, lo + timedelta(days=1), lo + timedelta(days=3))
    page, total = customer_queries.readings_page(plain, ["p002"], lo + timedelta(days=30), 50, 20, "Europe/Warsaw")
    assert len(before) == 3 * 4 * 96 and billing.height > 500 and total == 4 * 96 - 1
    assert maintenance.status(plain).due["months to pack"] == 1
    spans = [plain.execute(q).fetchone() for q in ("SELECT * FROM reading_span()",
                                                   "SELECT * FROM reading_span('p002')")]

    report = maintenance.maintain(plain)
    assert report.packed_months == [f"{month:%Y-%m}"]
    assert plain.execute("SELECT count(*) FROM readings").fetchone() == (0,)
    assert plain.execute("SELECT to_regclass(%s)", (packing.partition_name(month),)).fetchone() == (None,)
    assert plain.execute("SELECT count(*), sum(n) FROM readings_packed").fetchone() == (3 * 5, 3 * 4 * 96)
    # every column of every reading comes back exactly (times to the microsecond, NULLs, alarm lists, JSON)
    assert _everything(plain) == before
    assert _nearest(plain, month) == nearest
    assert [plain.execute(q).fetchone() for q in ("SELECT * FROM reading_span()",
                                                  "SELECT * FROM reading_span('p002')")] == spans
    assert_frame_equal(load_readings(plain, lo + timedelta(days=1), lo + timedelta(days=3)), billing)
    again, again_total = customer_queries.readings_page(plain, ["p002"], lo + timedelta(days=30), 50, 20,
                                                        "Europe/Warsaw")
    assert_frame_equal(again, page)
    assert again_total == total
    assert maintenance.maintain(plain).packed_months == []  # once
    status = CliRunner().invoke(cli, ["db", "status"], env={"METERFLOW_DATABASE_URL": database_url})
    assert status.exit_code == 0, status.output
    assert f"readings         {3 * 4 * 96} ({3 * 4 * 96} in packed months)" in status.output
    assert "months to pack 0" in status.output


def _staged(meter: str, t: datetime, total: float, n: int) -> StagedFrame:
    received = t + timedelta(seconds=2)
    return StagedFrame(hashlib.sha256(f"late-{n}".encode()).digest(), "wmbus", meter, "gw-late", received, -80,
                       bytes([n]) * 20, True, t, total, None, None, None, "OK", [], "wmbus", None)


def test_late_readings_of_a_packed_month_are_deduplicated_and_merged(plain: psycopg.Connection,
                                                                    database_url: str) -> None:
    month = _month()
    _seed(plain, month)
    hot = _everything(plain)
    # a packing interrupted after its first day: readers see that day packed and the rest hot, nothing twice
    lo = datetime(month.year, month.month, 1, tzinfo=UTC)
    assert packing._pack_day(plain, lo, lo + timedelta(days=1)) == 3 * 96 - 3
    assert _everything(plain) == hot
    assert packing.pack_month(plain, month) == len(hot) - (3 * 96 - 3)  # the next run goes on
    count = len(_everything(plain))
    assert count == len(hot)
    packed_time, packed_total = plain.execute(
        "SELECT time, total_m3 FROM last_index_before('p001', %s)",
        (datetime(month.year, month.month, 2, 12, tzinfo=UTC),)).fetchone()
    new_time = packed_time + timedelta(minutes=1)
    plain.commit()
    writer = BatchWriter(database_url)
    try:
        # a gateway's outbox replays a packed reading (its frame long archived) and brings one never seen
        result = writer.write([_staged("p001", packed_time, packed_total, 1), _staged("p001", new_time, 5.0, 2)])
    finally:
        writer.close()
    assert (result.new_frames, result.readings) == (2, 1)
    assert plain.execute("SELECT meter_id, time, total_m3 FROM readings").fetchall() == [("p001", new_time, 5.0)]
    assert len(_everything(plain)) == count + 1
    assert maintenance.status(plain).due["months to pack"] == 1
    plain.commit()
    assert packing.pack_month(plain, month) == 1  # merged into the meter's packed day
    assert plain.execute("SELECT count(*) FROM readings").fetchone() == (0,)
    merged = _everything(plain)
    assert len(merged) == count + 1
    assert [r[:3] for r in merged if r[0] == "p001" and r[1] == new_time] == [("p001", new_time, 5.0)]
    assert plain.execute("SELECT sum(n), count(*) FROM readings_packed").fetchone() == (count + 1, 3 * 5)


def test_the_readings_page_reads_a_window_yet_equals_the_whole_history(plain: psycopg.Connection) -> None:
    """Pages of a customer with several meters, half packed, half hot, against the whole history in Python."""
    month = _month()
    _seed(plain, month)
    packing.pack_month(plain, month)
    _seed(plain, add_months(month, 1))  # the next month stays hot
    meters = ["p001", "p003"]
    until = datetime(month.year, month.month, 1, tzinfo=UTC) + timedelta(days=45)
    rows = sorted((r[1], r[0], r[2]) for r in _everything(plain) if r[0] in meters and r[2] is not None)
    previous: dict[str, float] = {}
    expected = []
    for t, meter, index in rows:
        expected.append((meter, t, index, None if meter not in previous else index - previous[meter]))
        previous[meter] = index
    expected.sort(key=lambda e: (-e[1].timestamp(), e[0]))
    for offset, limit in ((0, 50), (50, 50), (700, 100), (2200, 100), (len(expected) - 10, 50)):
        page, total = customer_queries.readings_page(plain, meters, until, limit, offset, "UTC")
        assert total == len(expected)
        got = [(r["meter_id"], r["time"], r["index_m3"], r["consumption_m3"]) for r in page.iter_rows(named=True)]
        want = expected[offset:offset + limit]
        assert [g[:3] for g in got] == [w[:3] for w in want]
        def rounded(values: list[Any]) -> list[Any]:
            return [None if v is None else round(v, 9) for v in values]

        assert rounded([g[3] for g in got]) == rounded([w[3] for w in want])  # consumption since the meter's last


def test_db_maintain_packs_one_month_a_run_or_all_when_asked(plain: psycopg.Connection, database_url: str) -> None:
    month = _month()
    for m in (add_months(month, -2), add_months(month, -1), month):
        _seed(plain, m)

    def maintain(*args: str) -> str:
        out = CliRunner().invoke(cli, ["db", "maintain", *args], env={"METERFLOW_DATABASE_URL": database_url})
        assert out.exit_code == 0, out.output
        return out.output

    assert f"packed 1 month(s) ({add_months(month, -2):%Y-%m})" in maintain()
    assert f"packed 2 month(s) ({add_months(month, -1):%Y-%m}, {month:%Y-%m})" in maintain("--pack-months", "all")
    assert plain.execute("SELECT count(*) FROM readings").fetchone() == (0,)
    assert plain.execute("SELECT sum(n) FROM readings_packed").fetchone() == (3 * 3 * 4 * 96,)
    refused = CliRunner().invoke(cli, ["db", "maintain", "--pack-months", "0"],
                                 env={"METERFLOW_DATABASE_URL": database_url})
    assert refused.exit_code == 2 and "give a number of months" in refused.output


def test_a_reading_committed_while_its_day_is_packed_is_not_lost(plain: psycopg.Connection,
                                                                 database_url: str) -> None:
    month = _month()
    _seed(plain, month)
    day = datetime(month.year, month.month, 1, tzinfo=UTC)
    late = day + timedelta(hours=5, seconds=1)
    real = plain.execute

    def execute(query: Any, params: Any = None, **kw: Any) -> Any:
        cur = real(query, params, **kw)
        if isinstance(query, str) and query.startswith("CREATE TEMP TABLE pack_rows"):
            with psycopg.connect(database_url) as decoder:  # the decoder commits a reading of that day meanwhile
                decoder.execute("INSERT INTO readings (meter_id, time, total_m3) VALUES ('p009', %s, 1.5)", (late,))
        return cur

    plain.execute = execute  # type: ignore[method-assign]
    try:
        moved = packing._pack_day(plain, day, day + timedelta(days=1))
    finally:
        del plain.execute
    assert moved == 3 * 96 - 3
    # not packed (it came after the packing's snapshot), and not deleted with the packed rows: still hot
    assert plain.execute("SELECT meter_id, time FROM readings WHERE meter_id = 'p009'").fetchall() == [("p009", late)]
    assert plain.execute("SELECT count(*) FROM readings_packed WHERE meter_id = 'p009'").fetchone() == (0,)


def test_the_packed_layout_follows_the_readings_table(db: psycopg.Connection) -> None:
    """A column added to readings must be added to the packs and the unpacking functions (migration 0190):
    this fails first, instead of readings_between failing at run time with a row-type mismatch."""
    table = [r[0] for r in db.execute("SELECT column_name FROM information_schema.columns WHERE table_schema ="
                                      " 'public' AND table_name = 'readings' ORDER BY ordinal_position")]
    assert table == [c.strip() for c in packing.READING_COLUMNS.split(",")]
    cur = db.execute("SELECT * FROM readings_between(now(), now())")
    assert [c.name for c in cur.description or []] == table
