"""`meterflow reprocess --dead-letters`: retry undecodable frames, e.g. after their keys arrive.

Each dead letter is run through the same FrameProcessor and BatchWriter as live traffic, so a frame that
decodes now becomes a reading (once: raw_frames flips decoded=false -> true) and its dead letter is marked
resolved; one that still fails has its `attempts` bumped.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from services.processor import FrameProcessor
from storage import raw_archive
from storage.registry import load_keys
from storage.writer import BatchWriter, DeadLetter, StagedFrame

CHUNK = 2000
NEVER_DECODES = ("not_hex",)


def reprocess_dead_letters(dsn: str, timezone: str = "UTC", since: datetime | None = None,
                           codes: tuple[str, ...] | None = None,
                           progress: Callable[[int, int], None] | None = None) -> dict[str, int]:
    conditions = ["resolved_at IS NULL", "NOT (error_code = ANY(%s))"]
    params: list[Any] = [list(NEVER_DECODES)]
    if since is not None:
        conditions.append("received_at >= %s")
        params.append(since)
    if codes:
        conditions.append("error_code = ANY(%s)")
        params.append(list(codes))
    where = " AND ".join(conditions)
    query = (f"SELECT id, kind, error_code, gateway_id, received_at, payload FROM dead_letters"
             f" WHERE {where} AND id > %s ORDER BY id LIMIT %s")
    with psycopg.connect(dsn) as conn:
        keys = load_keys(conn)
        row = conn.execute(f"SELECT count(*) FROM dead_letters WHERE {where}", params).fetchone()
        total = int(row[0]) if row else 0
    processor = FrameProcessor(keys, timezone)
    writer = BatchWriter(dsn, "meterflow-reprocess")
    out = {"tried": 0, "resolved": 0, "readings": 0, "still_failing": 0}
    last_id = 0
    try:
        while True:
            conn = writer.connect()
            chunk = conn.execute(query, [*params, last_id, CHUNK]).fetchall()
            conn.commit()
            if not chunk:
                break
            last_id = chunk[-1][0]
            rows: list[StagedFrame] = []
            dead: list[DeadLetter] = []
            decoded_ids: list[int] = []
            for ident, kind, code, gw, received, payload in chunk:
                r, d = processor.retry(kind, code, gw, received.astimezone(UTC), bytes(payload)).split()
                if r and all(row.decoded for row in r) and not d:
                    decoded_ids.append(ident)
                rows.extend(r)
                dead.extend(d)
            result = writer.write(rows, dead)
            conn = writer.connect()
            if decoded_ids:
                conn.execute("UPDATE dead_letters SET resolved_at = now(), attempts = attempts + 1,"
                             " last_attempt_at = now() WHERE id = ANY(%s) AND resolved_at IS NULL", (decoded_ids,))
                conn.commit()
            out["tried"] += len(chunk)
            out["resolved"] += len(decoded_ids)
            out["readings"] += result.readings
            out["still_failing"] += len(chunk) - len(decoded_ids)
            if progress:
                progress(out["tried"], max(total, out["tried"]))
    finally:
        writer.close()
    return out


def reprocess_archive(dsn: str, paths: list[Path], timezone: str = "UTC") -> dict[str, int]:
    """Decode archived raw frames (storage/raw_archive) again and store what decodes: readings already stored
    stay as they are (the writer's dedup), new ones (e.g. a key that arrived late) are added."""
    with psycopg.connect(dsn) as conn:
        keys = load_keys(conn)
    processor = FrameProcessor(keys, timezone)
    writer = BatchWriter(dsn, "meterflow-reprocess")
    out = {"frames": 0, "readings": 0, "dead_letters": 0}
    try:
        for path in paths:
            rows: list[StagedFrame] = []
            dead: list[DeadLetter] = []
            for f in raw_archive.read(path):
                r, d = processor.retry(f.kind, "", f.gateway_id, f.received_at, f.data).split()
                rows.extend(r)
                dead.extend(d)
                out["frames"] += 1
                if len(rows) + len(dead) >= CHUNK:
                    out["readings"] += writer.write(rows, dead).readings
                    out["dead_letters"] += len(dead)
                    rows, dead = [], []
            result = writer.write(rows, dead)
            out["readings"] += result.readings
            out["dead_letters"] += len(dead)
    finally:
        writer.close()
    return out
