"""Old raw frames leave the hot table for xz files that `reprocess --archive` (and `decode`) still read."""

from __future__ import annotations

import gzip
import lzma
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from click.testing import CliRunner

from cli.main import cli
from fixtures import telegrams as omsgen
from ingest.frame_lines import FrameLine, parse_frame_line
from meterflow.envelope import FrameBatch, encode_batch
from services.decoder import FrameProcessor
from storage import raw_archive
from storage.registry import import_keys
from storage.writer import BatchWriter

METERS = 6


def _store(dsn: str, received: datetime, tels: list[omsgen.Telegram], gw: str) -> None:
    frames: list[dict[str, object]] = [{"t": received.timestamp() + k, "hex": t.frame.hex(), "rssi": -70 - k % 9}
                                       for k, t in enumerate(tels)]
    rows, dead = FrameProcessor({omsgen.meter_id(i): omsgen.meter_key(omsgen.meter_id(i)) for i in range(METERS)}
                                ).process(f"p/v1/{gw}/wmbus", encode_batch(FrameBatch(gw, "wmbus", frames))).split()
    assert dead == []
    writer = BatchWriter(dsn)
    try:
        assert writer.write(rows).readings == len(tels)
    finally:
        writer.close()


def _cli(dsn: str, archive: Path, *args: str) -> str:
    result = CliRunner().invoke(cli, list(args), env={"METERFLOW_DATABASE_URL": dsn,
                                                      "METERFLOW_STORAGE__RAW_ARCHIVE_DIR": str(archive),
                                                      "METERFLOW_STORAGE__RAW_HOT_DAYS": "35"})
    assert result.exit_code == 0, result.output
    return result.stdout


def test_old_frames_are_archived_and_reprocess_reads_them_back(clean_db: psycopg.Connection, database_url: str,
                                                               tmp_path: Path) -> None:
    now = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    old_at = now - timedelta(days=40)
    import_keys(clean_db, [{"meter_id": omsgen.meter_id(i), "key": omsgen.meter_key(omsgen.meter_id(i))}
                           for i in range(METERS)])
    clean_db.commit()
    tels = list(omsgen.fleet_telegrams(METERS, 60, start=old_at - timedelta(days=1)))
    _store(database_url, old_at, tels[:48], "gw-old")
    _store(database_url, now, tels[48:], "gw-new")
    readings = clean_db.execute("SELECT meter_id, time, total_m3 FROM readings ORDER BY 1, 2").fetchall()
    assert len(readings) == 60
    clean_db.commit()  # no open snapshot: maintenance may need to detach a partition
    archive = tmp_path / "raw"
    assert "raw frames to archive 48" in _cli(database_url, archive, "db", "status")

    out = _cli(database_url, archive, "db", "maintain")
    assert "archived 48 raw frame(s) in 1 file(s)" in out
    (path,) = raw_archive.files(archive)
    assert path.relative_to(archive).as_posix() == f"{old_at:%Y/%m}/raw-{old_at:%Y-%m-%d}.0.frames.xz"
    assert clean_db.execute("SELECT count(*), min(gateway_id) FROM raw_frames").fetchone() == (12, "gw-new")
    # the frames, their receive times, RSSI and gateway survive; each line is an ordinary frame line
    got = list(raw_archive.read(path))
    assert [f.data for f in got] == [t.frame for t in tels[:48]]
    assert got[5].received_at == old_at + timedelta(seconds=5) and got[5].rssi == -75
    assert {(f.kind, f.gateway_id) for f in got} == {("wmbus", "gw-old")}
    with lzma.open(path, "rt") as lines:
        first = parse_frame_line(next(lines))
    assert isinstance(first, FrameLine) and first.data == tels[0].frame
    assert path.stat().st_size / 48 < 120  # a table row with its indexes costs about 200 bytes
    assert "archived 0 raw frame(s) in 0 file(s)" in _cli(database_url, archive, "db", "maintain")

    # readings lost (say, a bad restore): reprocess --archive brings them back, identical; nothing doubles
    clean_db.execute("DELETE FROM readings r WHERE NOT EXISTS (SELECT FROM raw_frames f"
                     " WHERE f.meter_id = r.meter_id AND f.received_at = r.received_at)")
    clean_db.commit()
    out = _cli(database_url, archive, "reprocess", "--archive", str(archive))
    assert "reprocess: 48 archived frames, 48 readings added, 0 dead letters" in out
    assert clean_db.execute("SELECT meter_id, time, total_m3 FROM readings ORDER BY 1, 2").fetchall() == readings
    again = _cli(database_url, archive, "reprocess", "--archive", str(path))
    assert "reprocess: 48 archived frames, 0 readings added" in again


def test_gzip_archives_of_earlier_releases_are_still_read(tmp_path: Path) -> None:
    day = datetime(2026, 3, 4, tzinfo=UTC)
    folder = tmp_path / "2026" / "03"
    folder.mkdir(parents=True)
    tel = next(iter(omsgen.fleet_telegrams(1, 1, start=day)))
    with gzip.open(folder / "raw-2026-03-04.0.frames.gz", "wt", encoding="ascii") as out:
        out.write(f"{day.timestamp() + 1.5:.6f} -71 {tel.frame.hex().upper()} wmbus gw-1 {tel.meter_id}\n")
    (old,) = raw_archive.files(tmp_path)
    (frame,) = raw_archive.read(old)
    assert (frame.data, frame.rssi, frame.gateway_id, frame.received_at) == (
        tel.frame, -71, "gw-1", day + timedelta(seconds=1.5))
    # a new archive of the same day takes the next number, in xz
    assert raw_archive._free_path(tmp_path, day) == folder / "raw-2026-03-04.1.frames.xz"
