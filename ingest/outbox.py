"""Durable store-and-forward queue (SQLite, WAL): a frame is written here before it is published and
deleted only after the broker's PUBACK, so a broker outage or a gateway restart loses nothing.

Bounded: when full, the oldest frames are dropped and counted (a gateway must not fill its SD card).
Writes are batched (executemany in one transaction) to keep well above radio and bench rates.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from meterflow.logs import ctx, get_logger

log = get_logger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    kind    TEXT NOT NULL,
    body    TEXT NOT NULL,
    created REAL NOT NULL
)
"""

Row = tuple[int, str, str, float]  # id, kind, body (JSON of one envelope frame), created (unix s)


class Outbox:
    """Frames waiting for a PUBACK, in arrival order. Thread-safe (one connection behind a lock)."""

    def __init__(self, path: str | Path, max_frames: int = 1_000_000, synchronous: str = "NORMAL",
                 label: str = "") -> None:
        self.path = Path(path)
        self.label = label  # the gateway id, for log context
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_frames = max_frames
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL survives a killed process; FULL also survives power loss, at some cost per batch.
        self._db.execute(f"PRAGMA synchronous={'FULL' if synchronous.upper() == 'FULL' else 'NORMAL'}")
        self._db.execute(_SCHEMA)
        self._depth = int(self._db.execute("SELECT count(*) FROM outbox").fetchone()[0])
        self.dropped = 0
        if self._depth:
            log.info("outbox reopened with frames to send",
                     extra=ctx(gateway_id=label, path=str(self.path), depth=self._depth))

    @property
    def depth(self) -> int:
        return self._depth

    def put_many(self, kind: str, bodies: Sequence[str], created: float | None = None) -> int:
        """Store frames in one transaction; returns how many older frames were dropped to make room."""
        if not bodies:
            return 0
        now = time.time() if created is None else created
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany("INSERT INTO outbox(kind, body, created) VALUES (?, ?, ?)",
                               [(kind, b, now) for b in bodies])
                self._depth += len(bodies)
                dropped = 0
                if self._depth > self.max_frames:
                    excess = self._depth - self.max_frames
                    cur = db.execute(
                        "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox ORDER BY id LIMIT ?)", (excess,))
                    dropped = cur.rowcount
                    self._depth -= dropped
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                self._depth = int(db.execute("SELECT count(*) FROM outbox").fetchone()[0])
                raise
        if dropped:
            self.dropped += dropped
            log.warning("outbox full, oldest frames dropped",
                        extra=ctx(gateway_id=self.label, dropped=dropped, max_frames=self.max_frames))
        return dropped

    def fetch_after(self, after_id: int, limit: int) -> list[Row]:
        """The next frames in arrival order after `after_id` (the publisher's cursor)."""
        with self._lock:
            return self._db.execute(
                "SELECT id, kind, body, created FROM outbox WHERE id > ? ORDER BY id LIMIT ?", (after_id, limit)
            ).fetchall()

    def fetch_ids(self, ids: Iterable[int]) -> list[Row]:
        """Frames by id (those a broker refused, to send again); ids already gone are skipped."""
        id_list = list(ids)
        out: list[Row] = []
        with self._lock:
            for start in range(0, len(id_list), 500):
                chunk = id_list[start:start + 500]
                marks = ",".join("?" * len(chunk))
                out += self._db.execute(
                    f"SELECT id, kind, body, created FROM outbox WHERE id IN ({marks}) ORDER BY id", chunk
                ).fetchall()
        return out

    def ack(self, ids: Iterable[int]) -> int:
        """Delete frames the broker has acknowledged; returns how many rows went."""
        ranges = _ranges(ids)
        if not ranges:
            return 0
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                before = db.total_changes
                db.executemany("DELETE FROM outbox WHERE id BETWEEN ? AND ?", ranges)
                removed = db.total_changes - before
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            self._depth -= removed
        return removed

    def close(self) -> None:
        with self._lock:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._db.close()


def _ranges(ids: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted ids as (first, last) runs of consecutive numbers: a batch is one run, one DELETE."""
    out: list[tuple[int, int]] = []
    for i in sorted(set(ids)):
        if out and i == out[-1][1] + 1:
            out[-1] = (out[-1][0], i)
        else:
            out.append((i, i))
    return out
