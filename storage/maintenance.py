"""Storage maintenance that does not depend on the server's background jobs: compress, expire, refresh.

TimescaleDB runs compression, retention and continuous-aggregate refresh as background jobs, but those jobs
can fail for good (on PostgreSQL 15.20 with TimescaleDB 2.28.3 every one fails with `cannot drop portal ""
while it is being set up`), and then nothing is ever compressed or expired. `maintain` does the same work
from an ordinary connection, idempotently, so running it hourly next to healthy jobs costs little:
  TimescaleDB  compress the chunks older than COMPRESS_AFTER, drop chunks past RETAIN_FOR (of readings and of
               the continuous aggregates), refresh the continuous aggregates over the last REFRESH_WINDOW (only
               invalidated ranges are recomputed);
  PostgreSQL   detach and drop the monthly partitions wholly past RETAIN_FOR (and expire packed days), pack
               the oldest month closed for Settings.storage.pack_after_days (storage/packing), refresh the
               rollup tables;
  both         move raw frames older than Settings.storage.raw_hot_days into archive files (storage/raw_archive).
`status` reports failing jobs and what is still due, on both flavours; the last run is kept in meterflow_meta.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from psycopg import sql

from meterflow.config import Settings
from storage import flavor as flavors
from storage import packing, raw_archive
from storage.refresh import refresh_derived

REFRESH_WINDOW = timedelta(days=7)  # as the continuous-aggregate policies' start_offset
LAST_RUN_KEY = "maintenance_last_run"
PARTITION_NAME = re.compile(r"^readings_y(\d{4})m(\d{2})$")


def _interval(text: str) -> timedelta:
    """'30 days' / '10 years' (the policy constants) as a timedelta (a year counted as 365.25 days)."""
    n, unit = text.split()
    days = {"day": 1.0, "days": 1.0, "year": 365.25, "years": 365.25}[unit]
    return timedelta(days=int(n) * days)


COMPRESS_AFTER = _interval(flavors.COMPRESS_AFTER)
RETAIN_FOR = _interval(flavors.RETAIN_FOR)


@dataclass
class Job:
    """One TimescaleDB background job and how its runs went (timescaledb_information.jobs / job_stats)."""

    job_id: int
    proc: str
    relation: str
    last_status: str | None
    last_run: datetime | None
    last_success: datetime | None
    runs: int
    failures: int
    error: str | None

    @property
    def failing(self) -> bool:
        return self.last_status == "Failed" or (self.runs > 0 and self.last_success is None)


@dataclass
class Status:
    flavor: flavors.Flavor
    due: dict[str, int]  # work a maintenance run would do now, by kind
    jobs: list[Job] = field(default_factory=list)
    last_run: dict[str, object] | None = None

    @property
    def failing_jobs(self) -> list[Job]:
        return [j for j in self.jobs if j.failing]


@dataclass
class Report:
    """What one maintenance run did."""

    flavor: flavors.Flavor
    at: str
    compressed_chunks: int = 0
    dropped_chunks: int = 0
    dropped_partitions: list[str] = field(default_factory=list)
    packed_months: list[str] = field(default_factory=list)
    refreshed_from: str = ""
    refreshed_to: str = ""
    archived_frames: int = 0
    archive_files: list[str] = field(default_factory=list)

    def summary(self) -> str:
        if self.flavor == "timescale":
            done = f"compressed {self.compressed_chunks} chunk(s), dropped {self.dropped_chunks} chunk(s)"
        else:
            done = f"dropped {len(self.dropped_partitions)} partition(s)" + (
                f" ({', '.join(self.dropped_partitions)})" if self.dropped_partitions else "")
            done += f", packed {len(self.packed_months)} month(s)" + (
                f" ({', '.join(self.packed_months)})" if self.packed_months else "")
        return (f"{done}, archived {self.archived_frames} raw frame(s) in {len(self.archive_files)} file(s),"
                f" refreshed rollups {self.refreshed_from} .. {self.refreshed_to}")


def _expired_partitions(conn: psycopg.Connection, cutoff: datetime) -> list[str]:
    """Monthly partitions of readings whose whole month lies before `cutoff`."""
    return [name for name, end in _partitions(conn) if end <= cutoff]


def _partitions(conn: psycopg.Connection) -> list[tuple[str, datetime]]:
    """Monthly partitions of readings with the end of their month."""
    names = [r[0] for r in conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = 'readings'::regclass ORDER BY c.relname")]
    out = []
    for name in names:
        m = PARTITION_NAME.match(name)
        if not m:
            continue
        year, month = int(m[1]), int(m[2])
        out.append((name, datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)))
    return out


def _chunks(conn: psycopg.Connection, older_than: datetime, compressed: bool | None) -> int:
    """Chunks of readings and of the continuous aggregates' hypertables ending before `older_than`."""
    row = conn.execute(
        "SELECT count(*) FROM timescaledb_information.chunks WHERE (hypertable_name = 'readings'"
        " OR hypertable_name IN (SELECT materialization_hypertable_name"
        " FROM timescaledb_information.continuous_aggregates WHERE view_name = ANY(%s)))"
        " AND range_end <= %s AND (%s::boolean IS NULL OR is_compressed = %s)",
        (list(flavors.ROLLUPS), older_than, compressed, compressed)).fetchone()
    return int(row[0]) if row else 0


def jobs(conn: psycopg.Connection) -> list[Job]:
    """The TimescaleDB jobs of this database with their run statistics and latest error."""
    rows = conn.execute("""
        SELECT j.job_id, j.proc_name, coalesce(j.hypertable_name, ''), s.last_run_status,
               nullif(s.last_run_started_at, '-infinity'),
               nullif(s.last_successful_finish, '-infinity'), coalesce(s.total_runs, 0), coalesce(s.total_failures, 0)
        FROM timescaledb_information.jobs j
        LEFT JOIN timescaledb_information.job_stats s USING (job_id)
        WHERE j.job_id >= 1000 ORDER BY j.job_id""").fetchall()
    errors: dict[int, str] = {}
    try:
        with conn.transaction():
            errors = dict(conn.execute(
                "SELECT DISTINCT ON (job_id) job_id, err_message FROM timescaledb_information.job_errors"
                " ORDER BY job_id, finish_time DESC").fetchall())
    except psycopg.Error:
        pass  # job_errors needs more privileges than job_stats; the status is still reported
    return [Job(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], error=errors.get(r[0])) for r in rows]


@dataclass(frozen=True)
class RawArchive:
    """Where raw frames older than `after` go (Settings.storage)."""

    directory: Path
    after: timedelta


@dataclass(frozen=True)
class Policy:
    """Settings.storage as maintenance uses it: raw frames to archive (None: left in the table) and when a
    closed month is packed (plain PostgreSQL)."""

    raw: RawArchive | None = None
    pack_after: timedelta = packing.PACK_AFTER
    pack_months: int | None = 1  # months packed per run (None: all due); the hourly flow catches up one an hour


def status(conn: psycopg.Connection, now: datetime | None = None, policy: Policy | None = None) -> Status:
    """Failing jobs (TimescaleDB) and the work still due on this database, with the last maintenance run."""
    now = now or datetime.now(UTC)
    policy = policy or Policy()
    raw = policy.raw
    kind = flavors.current(conn)
    if kind == "timescale":
        expiring = _chunks(conn, now - RETAIN_FOR, False)  # dropped, not compressed
        due = {"chunks to compress": _chunks(conn, now - COMPRESS_AFTER, False) - expiring,
               "chunks past retention": _chunks(conn, now - RETAIN_FOR, None)}
        found = jobs(conn)
    else:
        due = {"partitions past retention": len(_expired_partitions(conn, now - RETAIN_FOR)),
               "months to pack": sum(1 for m in packing.months_to_pack(conn, now, policy.pack_after)
                                     if datetime(m.year, m.month, 1, tzinfo=UTC) >= now - RETAIN_FOR)}
        found = []
    if raw is not None:
        old = conn.execute("SELECT count(*) FROM raw_frames WHERE received_at < %s", (now - raw.after,)).fetchone()
        due["raw frames to archive"] = int(old[0]) if old else 0
    row = conn.execute("SELECT value FROM meterflow_meta WHERE key = %s", (LAST_RUN_KEY,)).fetchone()
    return Status(kind, due, found, json.loads(row[0]) if row else None)


def maintain(conn: psycopg.Connection, now: datetime | None = None, policy: Policy | None = None) -> Report:
    """Compress or pack, expire, archive old raw frames (when the policy has `raw`) and refresh now, whatever
    the server's jobs did; commits, and records the run."""
    now = now or datetime.now(UTC)
    policy = policy or Policy()
    raw = policy.raw
    kind = flavors.current(conn)
    report = Report(kind, now.isoformat(timespec="seconds"))
    conn.commit()
    if kind == "timescale":
        report.compressed_chunks = _chunks(conn, now - COMPRESS_AFTER, False) - _chunks(conn, now - RETAIN_FOR, False)
        for relation in ("readings", *flavors.ROLLUPS):  # the rollups expire and compress with the readings
            dropped = conn.execute("SELECT count(*) FROM drop_chunks(%s, older_than => %s::timestamptz)",
                                   (relation, now - RETAIN_FOR)).fetchone()
            report.dropped_chunks += int(dropped[0]) if dropped else 0
            conn.commit()
            conn.execute("SELECT compress_chunk(c, if_not_compressed => true)"
                         " FROM show_chunks(%s, older_than => %s::timestamptz) c", (relation, now - COMPRESS_AFTER))
            conn.commit()
    else:
        for name in _expired_partitions(conn, now - RETAIN_FOR):
            flavors.drop_partition(conn, name)
            report.dropped_partitions.append(name)
        with conn.transaction():
            cutoff = now - RETAIN_FOR
            conn.execute("DELETE FROM readings_default WHERE time < %s", (cutoff,))
            packing.expire_packed(conn, cutoff)
            for name in flavors.ROLLUPS:
                conn.execute(sql.SQL("DELETE FROM {} WHERE bucket < %s").format(sql.Identifier(name)), (cutoff,))
        report.packed_months = packing.pack_closed_months(conn, now, policy.pack_after, policy.pack_months)
    if raw is not None:
        moved, written = raw_archive.archive(conn, raw.directory, now - raw.after)
        report.archived_frames, report.archive_files = moved, [str(p) for p in written]
    lo, hi = now - REFRESH_WINDOW, now + timedelta(hours=1)
    refresh_derived(conn, lo, hi)  # under the refresh lock, dashboards kept in step with the rollups
    report.refreshed_from, report.refreshed_to = lo.isoformat(timespec="minutes"), hi.isoformat(timespec="minutes")
    conn.execute("INSERT INTO meterflow_meta (key, value) VALUES (%s, %s)"
                 " ON CONFLICT (key) DO UPDATE SET value = excluded.value", (LAST_RUN_KEY, json.dumps(asdict(report))))
    conn.commit()
    return report


def policy_of(settings: Settings) -> Policy:
    cfg = settings.storage
    raw = RawArchive(cfg.raw_archive_dir or Path(settings.data_dir) / "raw-archive", timedelta(days=cfg.raw_hot_days))
    return Policy(raw, timedelta(days=cfg.pack_after_days))
