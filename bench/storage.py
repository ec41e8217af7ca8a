"""`meterflow bench storage`: what a reading costs on disk, on the flavour the server has.

A simulated fleet (fixtures.fleet: real OMS telegrams, losses, repeats, exchanges) goes through the
decoder's own path (FrameProcessor -> BatchWriter) into a scratch database, so `readings` and `raw_frames`
hold exactly what production stores. Reported per reading: readings with its indexes, raw_frames with its
indexes and TOAST, readings again after compressing every chunk (TimescaleDB) or packing every month
(plain PostgreSQL, storage/packing), and the raw frames once `db maintain` has moved them to archive files
(storage/raw_archive); the last line is readings plus raw archive, the steady state a year on. The hourly
and daily rollups are reported on a line of their own: derived data, not counted in the total. The
baseline, measured in the same run, is the same readings exported as CSV (and gzip-compressed CSV)."""

from __future__ import annotations

import gzip
import math
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import psycopg

from meterflow.config import Settings

BATCH = 1000  # frames per gateway message, as the gateways send them
GATEWAYS = ("gw-bench-01", "gw-bench-02")
CSV_COLUMNS = "meter_id, time, total_m3, target_m3, target_date, flow_m3h, status, alarms"


@dataclass
class Sizes:
    readings: int  # bytes: heap, TOAST and indexes of every partition / chunk
    raw_frames: int

    def per(self, n: int) -> tuple[float, float, float]:
        return self.readings / n, self.raw_frames / n, (self.readings + self.raw_frames) / n


def measure(conn: psycopg.Connection, kind: str) -> Sizes:
    """Bytes on disk of readings (all partitions or chunks, compressed ones included, and packed months) and
    raw_frames."""
    from storage import packing

    if kind == "timescale":
        row = conn.execute("SELECT hypertable_size('readings')").fetchone()
    else:
        row = conn.execute("SELECT sum(pg_total_relation_size(relid)) FROM pg_partition_tree('readings')").fetchone()
    raw = conn.execute("SELECT pg_total_relation_size('raw_frames')").fetchone()
    return Sizes((int(row[0] or 0) if row else 0) + packing.packed_size(conn), int(raw[0] or 0) if raw else 0)


def rollup_bytes(conn: psycopg.Connection, kind: str) -> int:
    """Bytes of the hourly and daily consumption rollups (tables, or continuous aggregates' hypertables)."""
    if kind == "timescale":
        row = conn.execute("SELECT sum(hypertable_size(format('%I.%I', materialization_hypertable_schema,"
                           " materialization_hypertable_name)::regclass))"
                           " FROM timescaledb_information.continuous_aggregates").fetchone()
    else:
        row = conn.execute("SELECT pg_total_relation_size('consumption_hourly')"
                           " + pg_total_relation_size('consumption_daily')").fetchone()
    return int(row[0] or 0) if row else 0


def csv_baseline(conn: psycopg.Connection) -> tuple[int, int]:
    """The readings as CSV, plain and gzip-compressed: bytes."""
    buf = bytearray()
    with conn.cursor().copy(f"COPY (SELECT {CSV_COLUMNS} FROM readings ORDER BY meter_id, time)"
                            " TO STDOUT (FORMAT csv, HEADER)") as cp:
        for block in cp:
            buf += block
    return len(buf), len(gzip.compress(bytes(buf), 6))


def load(dsn: str, meters: int, days: int, timezone: str, echo: Callable[[str], None]) -> int:
    """Simulate the fleet and store it through the decoder's path; returns the readings stored."""
    from cli.demo import registry_csv
    from fixtures.fleet import FleetConfig, build_fleet
    from meterflow.envelope import FrameBatch, encode_batch, topic
    from services.processor import FrameProcessor
    from storage.registry import import_keys, import_meters, parse_keys_csv, parse_meters_csv
    from storage.writer import BatchWriter

    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=days + 1)
    fleet = build_fleet(FleetConfig(meters=meters, days=days, seed=17, start=start))
    registry_text, keys_text = registry_csv(fleet.meters)
    with psycopg.connect(dsn) as conn:
        import_meters(conn, parse_meters_csv(registry_text))
        import_keys(conn, parse_keys_csv(keys_text).rows)
        conn.commit()
    processor = FrameProcessor(fleet.keys, timezone)
    writer = BatchWriter(dsn, application_name="meterflow-bench-storage")
    pending: dict[str, list[dict[str, object]]] = {gw: [] for gw in GATEWAYS}
    stored = frames = 0
    t0 = time.perf_counter()

    def flush(gw: str) -> int:
        batch = FrameBatch(gw, "wmbus", pending[gw], f"{gw}:1:{frames}", 0.0)
        rows, dead = processor.process(topic("meterflow", gw, "wmbus"), encode_batch(batch)).split()
        pending[gw] = []
        return writer.write(rows, dead).readings

    try:
        for f in fleet.iter_frames(GATEWAYS):
            pending[f.gateway_id].append({"t": f.received_at, "hex": f.data.hex(), "rssi": f.rssi})
            frames += 1
            if len(pending[f.gateway_id]) >= BATCH:
                stored += flush(f.gateway_id)
                if frames % (BATCH * 100) == 0:
                    echo(f"  {frames:,} frames, {stored:,} readings, {time.perf_counter() - t0:.0f} s")
        for gw in GATEWAYS:
            if pending[gw]:
                stored += flush(gw)
    finally:
        writer.close()
    echo(f"stored {stored:,} readings from {frames:,} frames in {time.perf_counter() - t0:.1f} s")
    return stored


@click.command("storage", epilog="Example: meterflow bench storage --readings 380000 --meters 100")
@click.option("--readings", type=int, default=380_000, show_default=True, help="Readings to load (about).")
@click.option("--meters", type=int, default=100, show_default=True, help="Fleet size (days follow from readings).")
@click.option("--keep", is_flag=True, help="Keep the scratch database (default: drop it at the end).")
@click.pass_obj
def bench_storage(settings: Settings, readings: int, meters: int, keep: bool) -> None:
    """Bytes per reading (readings + indexes, raw_frames) on the server's flavour, before and after
    compression, against the same readings as CSV."""
    from bench.scratch import scratch_database
    from cli.embedded import database_dsn
    from storage import flavor, packing, raw_archive
    from storage.migrate import upgrade

    name = f"meterflow_bench_storage_{os.getpid()}"
    days = max(1, math.ceil(readings / (meters * 96)))
    with scratch_database(database_dsn(settings), name, keep, click.echo) as dsn:
        with psycopg.connect(dsn) as conn:
            upgrade(conn, settings.timezone)
            kind = flavor.current(conn)
        click.echo(f"scratch database {name} ({kind}): {meters:,} meters x {days} days of 15-minute telegrams")
        n = load(dsn, meters, days, settings.timezone, click.echo)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE readings")
            conn.execute("VACUUM ANALYZE raw_frames")
            csv_bytes, gz_bytes = csv_baseline(conn)  # before packing: the CSV reads the hot table
            flavor.refresh_rollups(conn, datetime.now(UTC) - timedelta(days=days + 2), datetime.now(UTC))
            rollups = rollup_bytes(conn, kind)
            before = measure(conn, kind)
            after = before
            if kind == "timescale":
                chunks = conn.execute("SELECT count(compress_chunk(c, if_not_compressed => true))"
                                      " FROM show_chunks('readings') c").fetchone()
                click.echo(f"compressed {chunks[0] if chunks else 0} chunk(s) of readings")
                after = measure(conn, kind)
                for name in flavor.ROLLUPS:
                    conn.execute("SELECT count(compress_chunk(c, if_not_compressed => true)) FROM show_chunks(%s) c",
                                 (name,))
                rollups = rollup_bytes(conn, kind)
            if kind == "postgres":  # every month closed, as a year on: db maintain packs each once
                packed = packing.pack_closed_months(conn, datetime.now(UTC) + timedelta(days=400), limit=None)
                click.echo(f"packed {len(packed)} closed month(s) of readings")
                after = measure(conn, kind)
            with tempfile.TemporaryDirectory(prefix="meterflow-raw-archive-") as tmp:
                moved, written = raw_archive.archive(conn, Path(tmp), datetime.now(UTC) + timedelta(days=1))
                archive_bytes = sum(f.stat().st_size for f in written)
            click.echo(f"archived {moved:,} raw frames into {len(written)} day file(s)")
    if n == 0:
        raise click.ClickException("no readings were stored")
    click.echo(f"\n{'bytes per reading':<34} {'readings':>9} {'raw_frames':>11} {'total':>8}")
    click.echo(f"{'baseline: CSV of the readings':<34} {csv_bytes / n:>9.1f} {'':>11} {csv_bytes / n:>8.1f}")
    click.echo(f"{'baseline: gzip CSV':<34} {gz_bytes / n:>9.1f} {'':>11} {gz_bytes / n:>8.1f}")
    r, f, t = before.per(n)
    click.echo(f"{kind + ', as written':<34} {r:>9.1f} {f:>11.1f} {t:>8.1f}")
    r, f, t = after.per(n)
    click.echo(f"{kind + (', chunks compressed' if kind == 'timescale' else ', closed months packed'):<34}"
               f" {r:>9.1f} {f:>11.1f} {t:>8.1f}")
    a = archive_bytes / n
    click.echo(f"{kind + ', raw frames archived':<34} {r:>9.1f} {a:>11.1f} {r + a:>8.1f}")
    click.echo(f"{'(not above) hourly + daily rollups':<34} {rollups / n:>9.1f}"
               + ("  (compressed)" if kind == "timescale" else ""))
    state = "chunks compressed" if kind == "timescale" else "closed months packed"
    click.echo(f"storage: {r + a:.0f} bytes per reading ({kind}, {state}: readings {r:.0f} + raw archive {a:.0f};"
               f" raw_frames in the table {f:.0f}; CSV {csv_bytes / n:.0f}, gzip CSV {gz_bytes / n:.1f};"
               f" {n:,} readings)")
