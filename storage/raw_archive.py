"""The raw-frame archive: raw_frames older than a configurable age leave the database for xz files.

raw_frames serves the writer's dedup (a resend of a recent frame is not a new telegram); after a few weeks a
frame is only kept for reprocessing and audits, which a compressed file serves at a fraction of a table row's
cost. One file per UTC day and run, `<dir>/YYYY/MM/raw-YYYY-MM-DD.<n>.frames.xz`, in the one frame-line
format (ingest/frame_lines.py: `<unix_time> <rssi> <HEX>`), followed by the words `kind gateway meter`, so
`xzcat FILE | meterflow decode` reads it too (a frame heard without RSSI has `-` there). Frames are deleted
with RETURNING and written before the commit: a crash leaves a frame in the table (archived again next
time), never lost. xz, not gzip: the frames are mostly ciphertext, and on hex lines xz gets within 20% of the
binary frames (48 against 60 bytes a frame with gzip); files of earlier releases (`.frames.gz`) are still read."""

from __future__ import annotations

import gzip
import lzma
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

NO_VALUE = "-"
SUFFIX = ".xz"


@dataclass(frozen=True)
class ArchivedFrame:
    data: bytes
    received_at: datetime
    rssi: int | None
    kind: str
    gateway_id: str | None
    meter_id: str | None


def _line(kind: str, meter: str | None, gateway: str | None, received: datetime, rssi: int | None,
          frame: bytes) -> str:
    # ingest/frame_lines.py's `<unix_time> <rssi> <HEX>` (storage does not import ingest), then the words
    rssi_text = NO_VALUE if rssi is None else str(rssi)
    return (f"{received.timestamp():.6f} {rssi_text} {frame.hex().upper()} {kind} {gateway or NO_VALUE}"
            f" {meter or NO_VALUE}\n")


def _free_path(directory: Path, day: datetime) -> Path:
    folder = directory / f"{day:%Y}" / f"{day:%m}"
    folder.mkdir(parents=True, exist_ok=True)
    n = 0
    while list(folder.glob(f"raw-{day:%Y-%m-%d}.{n}.frames.*")):  # numbers of earlier .gz files are taken too
        n += 1
    return folder / f"raw-{day:%Y-%m-%d}.{n}.frames{SUFFIX}"


def archive(conn: psycopg.Connection, directory: Path, before: datetime) -> tuple[int, list[Path]]:
    """Move raw frames received before `before` into day files; returns (frames moved, files written)."""
    conn.commit()
    row = conn.execute("SELECT min(received_at) FROM raw_frames WHERE received_at < %s", (before,)).fetchone()
    if not row or row[0] is None:
        return 0, []
    day = row[0].astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    moved, files = 0, []
    while day < before:
        end = min(day + timedelta(days=1), before)
        with conn.transaction():
            rows = conn.execute(
                "DELETE FROM raw_frames WHERE received_at >= %s AND received_at < %s"
                " RETURNING kind, meter_id, gateway_id, received_at, rssi, frame", (day, end)).fetchall()
            if rows:
                rows.sort(key=lambda r: r[3])
                path = _free_path(directory, day)
                tmp = path.with_suffix(".tmp")
                with lzma.open(tmp, "wt", encoding="ascii", preset=6) as out:
                    out.writelines(_line(k, m, g, t, r, bytes(f)) for k, m, g, t, r, f in rows)
                with open(tmp, "rb") as fh:
                    os.fsync(fh.fileno())
                tmp.rename(path)
                moved += len(rows)
                files.append(path)
        day = end
    return moved, files


def read(path: Path) -> Iterator[ArchivedFrame]:
    """The frames of one archive file, in receive-time order."""
    opener = gzip.open if path.name.endswith(".gz") else lzma.open
    with opener(path, "rt", encoding="ascii") as lines:
        for number, text in enumerate(lines, 1):
            words = text.split()
            if len(words) != 6:
                raise ValueError(f"{path}:{number}: not an archive line: {text[:80]!r}")
            t, rssi, frame, kind, gateway, meter = words
            yield ArchivedFrame(bytes.fromhex(frame), datetime.fromtimestamp(float(t), UTC),
                                None if rssi == NO_VALUE else int(rssi), kind,
                                None if gateway == NO_VALUE else gateway, None if meter == NO_VALUE else meter)


def files(directory: Path) -> list[Path]:
    return sorted([*directory.rglob("raw-*.frames.gz"), *directory.rglob(f"raw-*.frames{SUFFIX}")])
