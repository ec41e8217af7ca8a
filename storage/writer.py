"""The decoder's write path: one transaction per batch, idempotent, fast.

A batch of frames goes by binary COPY into a temporary staging table, then three statements move it:
  raw_frames   INSERT .. ON CONFLICT (digest): a frame seen before is not a new telegram, unless it had
               failed to decode before (decoded = false) and decodes now;
  readings     INSERT .. ON CONFLICT (meter_id, time) DO NOTHING, only for frames new to raw_frames, so a
               telegram received twice (two gateways, a resend after reconnect) is one reading even when
               the meter carries no clock and the two receive times differ; a reading of a day already
               packed (storage/packing.py) is checked against the pack instead;
  dead_letters one row per undecodable frame (digest unique; a repeat bumps `attempts`), resolved when
               the same frame later decodes.
The caller acknowledges the MQTT messages only after `write` returns: then nothing is lost, and a
redelivery is harmless.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from operator import attrgetter
from typing import Any

import orjson
import psycopg
from psycopg.types.json import Jsonb, set_json_dumps

from meterflow.periods import month_start, next_month
from storage.flavor import ensure_partitions

# The staging table's columns, in COPY order; StagedFrame below has exactly these fields.
STAGE_COLUMNS = (
    ("digest", "bytea"),
    ("kind", "text"),
    ("meter_id", "text"),
    ("gateway_id", "text"),
    ("received_at", "timestamptz"),
    ("rssi", "int2"),
    ("frame", "bytea"),
    ("decoded", "bool"),
    ("time", "timestamptz"),
    ("total_m3", "float8"),
    ("target_m3", "float8"),
    ("target_date", "date"),
    ("flow_m3h", "float8"),
    ("status", "text"),
    ("alarms", "text[]"),
    ("source", "text"),
    ("fields", "jsonb"),
)
STAGE_TYPES = [t for _, t in STAGE_COLUMNS]


@dataclass(slots=True)
class StagedFrame:
    """One received frame as it is staged: always a raw_frames row, and a readings row when `decoded`.

    `fields` is already-encoded JSON (bytes): encoding happens per frame in the decoder, so a value that
    cannot be encoded fails that frame alone, never a batch's COPY."""

    digest: bytes
    kind: str
    meter_id: str | None
    gateway_id: str | None
    received_at: datetime
    rssi: int | None
    frame: bytes
    decoded: bool
    time: datetime | None = None
    total_m3: float | None = None
    target_m3: float | None = None
    target_date: date | None = None
    flow_m3h: float | None = None
    status: str | None = None
    alarms: list[str] | None = None
    source: str | None = None
    fields: bytes | None = None


_STAGE_NAMES = tuple(name for name, _ in STAGE_COLUMNS)
assert tuple(StagedFrame.__slots__) == _STAGE_NAMES, "StagedFrame fields must follow STAGE_COLUMNS"
_stage_values = attrgetter(*_STAGE_NAMES)
#: bytes of a dead letter's payload that are stored; the rest is counted in payload_bytes
DEAD_LETTER_PAYLOAD_MAX = 16_384


def _pre_encoded(data: bytes) -> bytes:
    return data


def _copy_row(row: StagedFrame) -> tuple[Any, ...]:
    values = _stage_values(row)
    if row.fields is None:
        return values
    return (*values[:-1], Jsonb(row.fields, dumps=_pre_encoded))


DEAD_LETTER_SQL = """
INSERT INTO dead_letters (digest, kind, error_code, detail, meter_id, manufacturer, gateway_id, received_at, payload,
                          payload_bytes)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (digest) DO UPDATE SET attempts = dead_letters.attempts + 1, last_attempt_at = now(),
    error_code = excluded.error_code, detail = excluded.detail
"""

MOVE_SQL = """
WITH s AS (
    SELECT DISTINCT ON (digest) * FROM stage_frames ORDER BY digest, decoded DESC, received_at
), rf AS (
    INSERT INTO raw_frames AS r (digest, kind, meter_id, gateway_id, received_at, rssi, frame, decoded)
    SELECT digest, kind, meter_id, gateway_id, received_at, rssi, frame, decoded FROM s
    ON CONFLICT (digest) DO UPDATE SET decoded = true WHERE NOT r.decoded AND excluded.decoded
    RETURNING digest, decoded, (xmax::text <> '0') AS was_update
), ins AS (
    INSERT INTO readings (meter_id, time, total_m3, target_m3, target_date, flow_m3h, status, alarms, source,
                          gateway_id, received_at, fields)
    SELECT DISTINCT ON (s.meter_id, s.time) s.meter_id, s.time, s.total_m3, s.target_m3, s.target_date,
           s.flow_m3h, s.status, s.alarms, s.source, s.gateway_id, s.received_at, s.fields
    FROM s JOIN rf ON rf.digest = s.digest AND rf.decoded
    WHERE ((s.time AT TIME ZONE 'UTC')::date > (SELECT max(day) FROM readings_packed)) IS NOT FALSE
       OR NOT EXISTS (SELECT 1 FROM readings_packed p CROSS JOIN LATERAL readings_unpacked(p) u
                      WHERE p.meter_id = s.meter_id AND p.day = (s.time AT TIME ZONE 'UTC')::date AND u.time = s.time)
    ORDER BY s.meter_id, s.time, s.received_at
    ON CONFLICT DO NOTHING
    RETURNING 1
), res AS (
    UPDATE dead_letters d SET resolved_at = now() FROM rf
    WHERE rf.was_update AND rf.decoded AND d.digest = rf.digest AND d.resolved_at IS NULL
    RETURNING 1
)
SELECT (SELECT count(*) FROM rf WHERE decoded), (SELECT count(*) FROM ins), (SELECT count(*) FROM res)
"""

# Partitions are created for months in this window around now; rows outside it (a meter whose clock
# is years off) land in readings_default until a partition for their month exists.
PARTITION_PAST = timedelta(days=3 * 366)
PARTITION_FUTURE = timedelta(days=62)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    digest: bytes
    kind: str
    error_code: str
    detail: str
    meter_id: str | None
    manufacturer: str | None
    gateway_id: str | None
    received_at: datetime
    payload: bytes


@dataclass(slots=True)
class WriteResult:
    frames: int = 0  # frames staged (decoded or not)
    decoded: int = 0  # frames that decoded to a reading
    new_frames: int = 0  # decoded frames not seen before
    readings: int = 0  # rows inserted into readings
    resolved: int = 0  # dead letters resolved by a frame that now decodes
    dead_letters: int = 0
    seconds: float = 0.0
    dead_by_code: dict[str, int] = field(default_factory=dict)

    @property
    def duplicates(self) -> int:
        """Decoded frames that did not become a new reading (seen before, or same meter and time)."""
        return self.decoded - self.readings


def _dumps(obj: Any) -> bytes:
    return orjson.dumps(obj, default=str)


class BatchWriter:
    """One connection, one staging table; `write` commits a whole batch or raises (nothing half-done)."""

    def __init__(self, dsn: str, application_name: str = "meterflow-decoder") -> None:
        self.dsn = dsn
        self.application_name = application_name
        self.conn: psycopg.Connection | None = None

    def connect(self) -> psycopg.Connection:
        if self.conn is not None and not self.conn.closed and not self.conn.broken:
            return self.conn
        self.close()
        conn = psycopg.connect(self.dsn, application_name=self.application_name, connect_timeout=5)
        set_json_dumps(_dumps, context=conn)
        conn.execute(
            "CREATE TEMP TABLE IF NOT EXISTS stage_frames ("
            + ", ".join(f"{name} {typ}" for name, typ in STAGE_COLUMNS)
            + ") ON COMMIT DELETE ROWS"
        )
        conn.execute("SET synchronous_commit = on")
        conn.commit()
        self.conn = conn
        return conn

    def close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(psycopg.Error):
                self.conn.close()
            self.conn = None

    def _ensure_partitions(self, conn: psycopg.Connection, rows: Sequence[StagedFrame]) -> None:
        now = datetime.now(UTC)
        lo, hi = now - PARTITION_PAST, now + PARTITION_FUTURE
        months: set[date] = set()
        last: date | None = None
        for row in rows:
            t = row.time
            if t is None or not (lo <= t <= hi):
                continue
            m = date(t.year, t.month, 1)
            if m != last:
                months.add(m)
                last = m
        for m in sorted(months):
            start = datetime(m.year, m.month, 1, tzinfo=UTC)
            nm = next_month(month_start(m))
            ensure_partitions(conn, start, datetime(nm.year, nm.month, 1, tzinfo=UTC) - timedelta(microseconds=1))
        conn.commit()

    def write(self, rows: Sequence[StagedFrame], dead: Sequence[DeadLetter] = ()) -> WriteResult:
        """Store a batch in one transaction; raises psycopg.Error (rolled back) when the database fails."""
        started = time.perf_counter()
        conn = self.connect()
        result = WriteResult(frames=len(rows) + len(dead))
        try:
            if rows:
                self._ensure_partitions(conn, rows)
                with conn.cursor() as cur:
                    with cur.copy("COPY stage_frames FROM STDIN (FORMAT BINARY)") as copy:
                        copy.set_types(STAGE_TYPES)
                        for row in rows:
                            copy.write_row(_copy_row(row))
                    out = cur.execute(MOVE_SQL).fetchone()
                    assert out is not None
                    result.new_frames, result.readings, result.resolved = int(out[0]), int(out[1]), int(out[2])
                result.decoded = sum(1 for r in rows if r.decoded)
            if dead:
                with conn.cursor() as cur:
                    cur.executemany(
                        DEAD_LETTER_SQL,
                        [(d.digest, d.kind, d.error_code, d.detail[:1000], d.meter_id, d.manufacturer,
                          d.gateway_id, d.received_at, d.payload[:DEAD_LETTER_PAYLOAD_MAX], len(d.payload))
                         for d in dead],
                    )
                for d in dead:
                    result.dead_by_code[d.error_code] = result.dead_by_code.get(d.error_code, 0) + 1
                result.dead_letters = len(dead)
            conn.commit()
        except BaseException:
            try:
                conn.rollback()
            except psycopg.Error:
                self.close()
            raise
        result.seconds = time.perf_counter() - started
        return result
