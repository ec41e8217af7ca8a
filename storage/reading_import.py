"""Historical readings into `readings`: binary COPY of the rows decoders.csv_readings parsed, with duplicates
collapsed and conflicting values kept in `reading_conflicts`; registering the meters an import names."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
import psycopg
from psycopg.types.json import Jsonb

from meterflow.plausibility import PlausibilitySettings
from storage.flavor import ensure_partitions

Progress = Callable[[str, int, int], None]

@dataclass
class ImportStats:
    rows: int = 0
    inserted: int = 0
    duplicates: int = 0  # same meter, time and value as a stored read (collapsed)
    conflicts: list[dict[str, Any]] = field(default_factory=list)  # same meter and time, other value

    def as_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "inserted": self.inserted, "duplicates": self.duplicates,
                "conflicts": len(self.conflicts)}


def import_readings(
    conn: psycopg.Connection, good: pl.DataFrame, *, source: str = "import", file: str | None = None,
    progress: Progress | None = None, batch: int = 50_000, window: PlausibilitySettings | None = None,
) -> ImportStats:
    """Store parsed rows (decoders.csv_readings) with binary COPY; conflicts go to reading_conflicts.

    Rows are classified in polars against the file itself and the reads already stored for these meters:
    the first row per (meter, time) in file order is new, an identical one is a duplicate (collapsed), another
    value is a conflict (kept in reading_conflicts, reported). New rows are COPYed straight into readings; if a
    concurrent writer got there first the whole import falls back to a staged INSERT ... ON CONFLICT."""
    stats = ImportStats(rows=good.height)
    if good.is_empty():
        return stats
    received = datetime.now(UTC)
    if "notation" not in good.columns:
        good = good.with_columns(pl.lit(None, pl.String).alias("notation"))
    if "dst_fold" not in good.columns:
        good = good.with_columns(pl.lit(False).alias("dst_fold"))
    tmin, tmax = good["time"].min(), good["time"].max()
    assert isinstance(tmin, datetime) and isinstance(tmax, datetime)
    _partitions_for(conn, good, window)
    meters = good["meter_id"].unique().to_list()
    stored = pl.DataFrame(
        conn.execute(
            "SELECT meter_id, time, total_m3 FROM readings_between(%s, %s::timestamptz + interval '1 microsecond')"
            " WHERE meter_id = ANY(%s)", (tmin, tmax, meters),
        ).fetchall(),
        schema={"meter_id": pl.String, "time": pl.Datetime("us", "UTC"), "stored_m3": pl.Float64}, orient="row",
    )
    g = good.sort("line").with_columns(pl.int_range(pl.len()).over(["meter_id", "time"]).alias("_k"))
    first = g.filter(pl.col("_k") == 0)
    first = first.join(stored, on=["meter_id", "time"], how="left")
    new = first.filter(pl.col("stored_m3").is_null())
    # conflicts: later rows of the file against the first one, and first rows against stored reads
    later = g.filter(pl.col("_k") > 0).join(
        first.select("meter_id", "time", pl.coalesce("stored_m3", "total_m3").alias("stored_m3")),
        on=["meter_id", "time"],
    )
    cand = pl.concat([first.filter(pl.col("stored_m3").is_not_null()), later.select(first.columns)])
    conf = cand.filter(pl.col("total_m3") != pl.col("stored_m3")).sort("line")
    stats.conflicts = conf.select("meter_id", "time", "total_m3", "stored_m3", "line").to_dicts()
    stats.duplicates = cand.height - conf.height
    rows = new.select(
        "meter_id", "time", "total_m3",
        pl.struct(
            pl.col("line"), pl.lit(file).alias("file"), pl.col("notation"),
            pl.when(pl.col("dst_fold")).then(True).alias("dst_fold"),
        ).struct.json_encode().alias("fields"),
    ).with_columns(pl.col("fields").str.replace_all(r',"[a-z_]+":null', ""))
    copy_sql = ("COPY readings (meter_id, time, total_m3, source, received_at, fields) FROM STDIN (FORMAT BINARY)")
    try:
        with conn.transaction(), conn.cursor() as cur, cur.copy(copy_sql) as copy:
            copy.set_types(["text", "timestamptz", "float8", "text", "timestamptz", "jsonb"])
            done = 0
            for chunk in rows.iter_slices(batch):
                for meter_id, time, value, fields_json in chunk.iter_rows():
                    copy.write_row((meter_id, time, value, source, received, Jsonb(fields_json, dumps=_as_is)))
                done += chunk.height
                if progress:
                    progress("copy", done, rows.height)
        stats.inserted = rows.height
    except psycopg.errors.UniqueViolation:
        conn.rollback()
        return _import_staged(conn, good, source=source, file=file, progress=progress)
    if stats.conflicts:
        conn.cursor().executemany(
            "INSERT INTO reading_conflicts (meter_id, time, total_m3, stored_m3, source, file, line)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s)",
            [(c["meter_id"], c["time"], c["total_m3"], c["stored_m3"], source, file, c["line"])
             for c in stats.conflicts],
        )
    conn.commit()
    return stats


def _import_staged(
    conn: psycopg.Connection, good: pl.DataFrame, *, source: str = "import", file: str | None = None,
    progress: Progress | None = None, batch: int = 100_000,
) -> ImportStats:
    """Store parsed rows (decoders.csv_readings) with binary COPY; conflicts go to reading_conflicts."""
    stats = ImportStats(rows=good.height)
    if good.is_empty():
        return stats
    received = datetime.now(UTC)
    _partitions_for(conn, good, None)
    conn.execute(
        "CREATE TEMP TABLE IF NOT EXISTS import_stage (meter_id text, time timestamptz, total_m3 float8,"
        " line bigint, notation text, dst_fold boolean) ON COMMIT DELETE ROWS"
    )
    cols = good.select("meter_id", "time", "total_m3", pl.col("line").cast(pl.Int64),
                       pl.col("notation") if "notation" in good.columns else pl.lit(None, pl.String).alias("notation"),
                       pl.col("dst_fold") if "dst_fold" in good.columns else pl.lit(False).alias("dst_fold"))
    with conn.cursor() as cur:
        done = 0
        with cur.copy("COPY import_stage FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(["text", "timestamptz", "float8", "int8", "text", "bool"])
            for chunk in cols.iter_slices(batch):
                for row in chunk.iter_rows():
                    copy.write_row(row)
                done += chunk.height
                if progress:
                    progress("copy", done, good.height)
        # one row per (meter, time): the first in file order; later ones are duplicates or conflicts
        cur.execute(
            "INSERT INTO readings (meter_id, time, total_m3, source, received_at, fields)"
            " SELECT DISTINCT ON (meter_id, time) meter_id, time, total_m3, %s, %s,"
            " jsonb_strip_nulls(jsonb_build_object('line', line, 'file', %s::text, 'notation', notation,"
            " 'dst_fold', CASE WHEN dst_fold THEN true END))"
            " FROM import_stage ORDER BY meter_id, time, line ON CONFLICT (meter_id, time) DO NOTHING",
            (source, received, file),
        )
        stats.inserted = cur.rowcount
        if progress:
            progress("insert", good.height, good.height)
        cur.execute(
            "SELECT s.meter_id, s.time, s.total_m3, r.total_m3, s.line FROM import_stage s"
            " JOIN readings r ON r.meter_id = s.meter_id AND r.time = s.time"
            " WHERE r.total_m3 IS DISTINCT FROM s.total_m3 ORDER BY s.line"
        )
        for meter_id, time, value, stored, line in cur.fetchall():
            stats.conflicts.append({"meter_id": meter_id, "time": time, "total_m3": value, "stored_m3": stored,
                                    "line": line})
        if stats.conflicts:
            cur.executemany(
                "INSERT INTO reading_conflicts (meter_id, time, total_m3, stored_m3, source, file, line)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s)",
                [(c["meter_id"], c["time"], c["total_m3"], c["stored_m3"], source, file, c["line"])
                 for c in stats.conflicts],
            )
    stats.duplicates = stats.rows - stats.inserted - len(stats.conflicts)
    conn.commit()
    return stats


def _partitions_for(conn: psycopg.Connection, good: pl.DataFrame, window: PlausibilitySettings | None) -> None:
    """Partitions for the months that hold rows, and only inside the time window: a row dated 0001 or 2999
    must never make the server create (and lock) hundreds of partitions in one go."""
    window = window or PlausibilitySettings()
    latest = datetime.now(UTC) + timedelta(hours=window.future_tolerance_hours)
    months = good.select(pl.col("time").dt.truncate("1mo").unique().sort())["time"].to_list()
    outside = [m for m in months if m < window.earliest.replace(day=1) or m > latest]
    if outside:
        raise ValueError(f"rows dated {outside[0]:%Y-%m} are outside the accepted time window; the parser "
                         "(decoders.csv_readings) reports them as bad rows")
    for month in months:
        ensure_partitions(conn, month, month)


def unregistered_meters(conn: psycopg.Connection, meter_ids: list[str]) -> list[str]:
    known = {r[0] for r in conn.execute("SELECT meter_id FROM meters WHERE meter_id = ANY(%s)", (meter_ids,))}
    return sorted(set(meter_ids) - known)


def register_meters(conn: psycopg.Connection, meter_ids: list[str], register_digits: int = 5) -> int:
    """Add meters to the registry with defaults only (no premise, no dates); returns how many were new."""
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO meters (meter_id, register_digits) VALUES (%s, %s) ON CONFLICT (meter_id) DO NOTHING",
            [(m, register_digits) for m in meter_ids],
        )
    conn.commit()
    return len(meter_ids)


def _as_is(text: Any) -> str:
    return str(text)
