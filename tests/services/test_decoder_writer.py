"""The write path against a real PostgreSQL (and TimescaleDB when METERFLOW_TIMESCALE_URL is set)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from fixtures import telegrams as omsgen
from meterflow.envelope import FrameBatch, encode_batch
from services.processor import FrameProcessor
from services.reprocess import reprocess_dead_letters
from storage.db import with_database
from storage.migrate import upgrade
from storage.registry import import_keys
from storage.writer import BatchWriter

TABLES = "readings, readings_packed, raw_frames, dead_letters, meters"


@pytest.fixture(params=["postgres", pytest.param("timescale", marks=pytest.mark.timescale)])
def store(request: pytest.FixtureRequest) -> Iterator[str]:
    """An empty, migrated database of each flavour."""
    if request.param == "postgres":
        dsn: str = request.getfixturevalue("database_url")
        with psycopg.connect(dsn) as conn:
            conn.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")
        yield dsn
        return
    server = os.environ.get("METERFLOW_TIMESCALE_URL")
    if not server:
        pytest.skip("METERFLOW_TIMESCALE_URL is not set (TimescaleDB is not installable here)")
    name = f"meterflow_ts_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    dsn = with_database(server, name)
    with psycopg.connect(dsn) as conn:
        upgrade(conn, "Europe/Warsaw")
        assert conn.execute("SELECT value FROM meterflow_meta WHERE key = 'flavor'").fetchone() == ("timescale",)
    yield dsn
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _keys(n: int) -> dict[str, bytes]:
    return {omsgen.meter_id(i): omsgen.meter_key(omsgen.meter_id(i)) for i in range(n)}


def _msg(frames: list[dict[str, object]], gw: str) -> tuple[str, bytes]:
    return f"p/v1/{gw}/wmbus", encode_batch(FrameBatch(gw, "wmbus", frames, f"{gw}:1:1", 0.0))


def _one(dsn: str, query: str) -> object:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(query).fetchone()
        return row[0] if row else None


def test_a_batch_written_twice_is_stored_once(store: str) -> None:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    tels = list(omsgen.fleet_telegrams(50, 200, start=now - timedelta(days=40)))  # spans two months
    processor = FrameProcessor(_keys(50))
    frames: list[dict[str, object]] = [{"t": now.timestamp(), "hex": t.frame.hex()} for t in tels]
    rows, dead = processor.process(*_msg(frames, "gw-1")).split()
    assert dead == []
    writer = BatchWriter(store)
    first = writer.write(rows)
    again = writer.write(rows + rows)
    assert (first.readings, first.duplicates) == (200, 0)
    assert (again.readings, again.duplicates) == (0, 400)
    assert _one(store, "SELECT count(*) FROM readings") == 200
    assert _one(store, "SELECT count(*) FROM raw_frames WHERE decoded") == 200
    # the frame's own facts (digest, RSSI) stay in raw_frames; a reading keeps its gateway and receive time
    assert _one(store, "SELECT count(*) FROM readings WHERE gateway_id = 'gw-1' AND received_at IS NOT NULL") == 200
    got = _one(store, f"SELECT total_m3 FROM readings WHERE meter_id = '{tels[7].meter_id}' AND time = "
                      f"'{tels[7].time.isoformat()}'")
    assert got == pytest.approx(tels[7].total_m3)
    writer.close()


def test_a_frame_without_meter_clock_heard_by_two_gateways_is_one_reading(store: str) -> None:
    meter = omsgen.meter_id(1)
    frame = omsgen.encode_telegram(meter, omsgen.meter_key(meter), 5, 1234, None)
    processor = FrameProcessor(_keys(2))
    t = datetime.now(UTC).timestamp()
    a, _ = processor.process(*_msg([{"t": t, "hex": frame.hex()}], "gw-a")).split()
    b, _ = processor.process(*_msg([{"t": t + 2.5, "hex": frame.hex()}], "gw-b")).split()
    writer = BatchWriter(store)
    writer.write(a)
    writer.write(b)
    writer.write(a + b)
    assert _one(store, "SELECT count(*) FROM readings") == 1
    assert _one(store, "SELECT gateway_id FROM readings") == "gw-a"  # time = receive time of the first one
    writer.close()


def test_no_key_dead_letter_is_resolved_by_reprocess_after_the_key_arrives(store: str) -> None:
    tels = list(omsgen.fleet_telegrams(4, 8, start=datetime.now(UTC) - timedelta(hours=3)))
    processor = FrameProcessor(_keys(2))  # meters 2 and 3 unknown
    now = datetime.now(UTC).timestamp()
    frames: list[dict[str, object]] = [{"t": now, "hex": t.frame.hex()} for t in tels]
    frames.append({"t": now, "hex": "00ff"})
    rows, dead = processor.process(*_msg(frames, "gw-1")).split()
    writer = BatchWriter(store)
    result = writer.write(rows, dead)
    writer.write(rows, dead)  # a resend bumps attempts, adds nothing
    codes = result.dead_by_code
    # DME has well-known default keys: without the meter's own key the decoder says wrong_key, not no_key
    assert result.readings == 4 and codes.get("no_key", 0) + codes.get("wrong_key", 0) == 4
    assert codes["bad_length"] == 1
    assert _one(store, "SELECT count(*) FROM dead_letters") == 5
    assert _one(store, "SELECT max(attempts) FROM dead_letters") == 2
    with psycopg.connect(store) as conn:
        import_keys(conn, [{"meter_id": m, "key": k} for m, k in _keys(4).items()])
    assert reprocess_dead_letters(store, since=datetime(2030, 1, 1, tzinfo=UTC))["tried"] == 0
    assert reprocess_dead_letters(store, codes=("bad_length",))["resolved"] == 0
    out = reprocess_dead_letters(store)
    assert out == {"tried": 5, "resolved": 4, "readings": 4, "still_failing": 1}  # 00ff never decodes
    assert _one(store, "SELECT count(*) FROM readings") == 8
    assert _one(store, "SELECT count(*) FROM dead_letters WHERE resolved_at IS NULL") == 1
    assert _one(store, "SELECT count(*) FROM raw_frames WHERE NOT decoded") == 0
    assert reprocess_dead_letters(store)["resolved"] == 0
    writer.close()


def test_a_resend_that_decodes_now_resolves_its_dead_letter(store: str) -> None:
    tel = next(omsgen.fleet_telegrams(1, 1, start=datetime.now(UTC) - timedelta(hours=1)))
    keys: dict[str, bytes] = {}
    processor = FrameProcessor(keys)
    msg = _msg([{"t": datetime.now(UTC).timestamp(), "hex": tel.frame.hex()}], "gw-1")
    writer = BatchWriter(store)
    writer.write(*processor.process(*msg).split())
    keys.update(_keys(1))  # the service updates the decoder's key dict in place
    result = writer.write(*processor.process(*msg).split())
    assert (result.readings, result.resolved) == (1, 1)
    assert _one(store, "SELECT count(*) FROM dead_letters WHERE resolved_at IS NOT NULL") == 1
    writer.close()
