"""Historical readings exported from other systems: a pure, vectorised CSV parser (no database).

Canonical CSV: `meter_id,time,total_m3` with ISO 8601 times (UTC unless they carry an offset) and m3.
Anything else is described by a Mapping (options or a small TOML file), e.g. the DAIAD export:

    delimiter = ";"
    meter_column = "user key"
    time_column = "datetime"
    value_column = "meter reading"
    time_format = "%d/%m/%Y %H:%M:%S"
    unit = "litres"
    timezone = "Europe/Madrid"

Local times are converted to UTC. In the repeated hour when DST ends, a meter's readings come in time order:
the first occurrence of a local time is summer time (the earlier instant); from the first local time that does
not move forward (file order), the rest of the meter's repeated hour is the second occurrence (standard time).
Times in the skipped spring hour are bad rows. This is the one reader of such exports: `readings import` and the
leak evaluation (`analytics/leaks/realhomes.py`) both use it. Every bad row is reported with its line number
and reason; every good row is kept.
Fields are split on the delimiter (surrounding double quotes are stripped; quoted delimiters are not supported).
"""

from __future__ import annotations

import gzip
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import polars as pl

Unit = Literal["m3", "litres"]


@dataclass(frozen=True)
class Mapping:
    """How to read one export format."""

    delimiter: str = ","
    meter_column: str = "meter_id"
    time_column: str = "time"
    value_column: str = "total_m3"
    time_format: str | None = None  # strftime pattern; None = ISO 8601
    unit: Unit = "m3"
    timezone: str = "UTC"  # zone of times written without an offset

    @classmethod
    def from_toml(cls, path: str | Path, **overrides: Any) -> Mapping:
        data = tomllib.loads(Path(path).read_text())
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"{path}: unknown mapping keys {sorted(unknown)}; known: {sorted(known)}")
        data.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**data)

    def with_overrides(self, **overrides: Any) -> Mapping:
        vals = {f.name: getattr(self, f.name) for f in fields(self)}
        vals.update({k: v for k, v in overrides.items() if v is not None})
        return Mapping(**vals)


PRESETS: dict[str, Mapping] = {
    "canonical": Mapping(),
    "daiad": Mapping(";", "user key", "datetime", "meter reading", "%d/%m/%Y %H:%M:%S", "litres", "Europe/Madrid"),
}


@dataclass
class ParseResult:
    good: pl.DataFrame  # meter_id, time (UTC), total_m3, line, notation ('scientific' or null), dst_fold (bool)
    bad: pl.DataFrame  # line, reason, raw
    stats: dict[str, int] = field(default_factory=dict)


def read_lines(path: str | Path) -> list[str]:
    """The file's lines (gzip when the name ends in .gz or the content starts with the gzip magic)."""
    p = Path(path)
    raw = p.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    return raw.decode("utf-8-sig").splitlines()


def parse_lines(lines: list[str], mapping: Mapping) -> ParseResult:
    """Parse header + data lines into good rows and bad rows (line numbers are 1-based, header = line 1)."""
    bad_schema = {"line": pl.Int64, "reason": pl.String, "raw": pl.String}
    good_schema = {"meter_id": pl.String, "time": pl.Datetime("us", "UTC"), "total_m3": pl.Float64,
                   "line": pl.Int64, "notation": pl.String, "dst_fold": pl.Boolean}
    if not lines:
        raise ValueError("the file is empty: expected a header line")
    header = [h.strip().strip('"') for h in lines[0].split(mapping.delimiter)]
    missing = [c for c in (mapping.meter_column, mapping.time_column, mapping.value_column) if c not in header]
    if missing:
        raise ValueError(
            f"header has no column(s) {missing}; found {header}. Pass a mapping (--mapping FILE or "
            "--delimiter/--meter-column/--time-column/--value-column) that names them"
        )
    idx = {c: header.index(c) for c in (mapping.meter_column, mapping.time_column, mapping.value_column)}
    df = pl.DataFrame({"raw": lines[1:]}).with_row_index("line", offset=2).with_columns(pl.col("line").cast(pl.Int64))
    df = df.filter(pl.col("raw").str.strip_chars() != "")
    parts = pl.col("raw").str.split(mapping.delimiter)

    def col(name: str) -> pl.Expr:
        return parts.list.get(idx[name], null_on_oob=True).str.strip_chars().str.strip_chars('"')

    df = df.with_columns(
        parts.list.len().alias("_n"),
        col(mapping.meter_column).alias("meter_id"),
        col(mapping.time_column).alias("_time"),
        col(mapping.value_column).alias("_value"),
    )
    value = pl.col("_value").str.replace(",", ".", literal=True).cast(pl.Float64, strict=False)
    if mapping.time_format:
        naive = pl.col("_time").str.to_datetime(mapping.time_format, strict=False, time_unit="us")
        df = df.with_columns(naive.alias("_naive"), value.alias("_v"))
    else:
        df = df.with_columns(value.alias("_v"))
        iso = pl.col("_time").str.replace(" ", "T", literal=True).str.replace(r"Z$", "+00:00")
        has_offset = iso.str.contains(r"[+-]\d\d:?\d\d$")
        aware = pl.coalesce([
            iso.str.to_datetime(f, strict=False, time_unit="us").dt.convert_time_zone("UTC")
            for f in ("%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%dT%H:%M%z")
        ])
        naive = pl.coalesce([
            iso.str.to_datetime(f, strict=False, time_unit="us")
            for f in ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M")
        ])
        df = df.with_columns(
            pl.when(has_offset).then(pl.lit(None, dtype=pl.Datetime("us"))).otherwise(naive).alias("_naive"),
            pl.when(has_offset).then(aware).otherwise(pl.lit(None, dtype=pl.Datetime("us", "UTC"))).alias("_aware"),
        )
    early = pl.col("_naive").dt.replace_time_zone(mapping.timezone, ambiguous="earliest", non_existent="null")
    late = pl.col("_naive").dt.replace_time_zone(mapping.timezone, ambiguous="latest", non_existent="null")
    df = df.with_columns(
        early.dt.convert_time_zone("UTC").alias("_early"), late.dt.convert_time_zone("UTC").alias("_late")
    )
    # the repeated DST hour (local times without offset): a meter's readings are in time order, so the first
    # pass (summer time, the earlier instant) comes first; from the first local time that does not move forward
    # (a repeat or a step back), the rest of that meter's repeated hour is the second pass (standard time).
    ambiguous = (pl.col("_early") != pl.col("_late")).fill_null(False)
    prior_max = pl.col("_naive").cum_max().shift(1).over("meter_id")
    back = (ambiguous & (pl.col("_naive") <= prior_max)).fill_null(False)
    fold_day = pl.col("_naive").dt.date()
    fold = ambiguous & back.cast(pl.Int32).cum_max().over("meter_id", fold_day).cast(pl.Boolean)
    time = pl.when(fold).then(pl.col("_late")).otherwise(pl.col("_early"))
    if not mapping.time_format:
        time = pl.coalesce(pl.col("_aware"), time)
    df = df.with_columns(time.alias("time"), fold.alias("dst_fold"))
    scale = 0.001 if mapping.unit == "litres" else 1.0
    reason = (
        pl.when(pl.col("_n") != len(header)).then(pl.format("expected {} fields, found {}", pl.lit(len(header)),
                                                             pl.col("_n")))
        .when(pl.col("meter_id").fill_null("") == "").then(pl.lit("empty meter id"))
        .when(pl.col("_time").fill_null("") == "").then(pl.lit("empty time"))
        .when(pl.col("_naive").is_null() & pl.col("time").is_null())
        .then(pl.format("time {} does not match {}", pl.col("_time"), pl.lit(mapping.time_format or "ISO 8601")))
        .when(pl.col("time").is_null())
        .then(pl.format("local time {} does not exist in {} (DST gap)", pl.col("_time"), pl.lit(mapping.timezone)))
        .when(pl.col("_v").is_null()).then(pl.format("index {} is not a number", pl.col("_value")))
        .when(~pl.col("_v").is_finite()).then(pl.format("index {} is not finite", pl.col("_value")))
        .when(pl.col("_v") < 0).then(pl.format("negative index {}", pl.col("_value")))
        .otherwise(pl.lit(None, dtype=pl.String))
        .alias("reason")
    )
    df = df.with_columns(reason)
    bad = df.filter(pl.col("reason").is_not_null()).select("line", "reason", "raw").cast(bad_schema)  # type: ignore[arg-type]
    good = df.filter(pl.col("reason").is_null()).select(
        "meter_id",
        "time",
        (pl.col("_v") * scale).alias("total_m3"),
        "line",
        pl.when(pl.col("_value").str.contains("[eE]")).then(pl.lit("scientific")).otherwise(pl.lit(None, pl.String))
        .alias("notation"),
        "dst_fold",
    ).cast(good_schema)  # type: ignore[arg-type]
    stats = {
        "lines": len(lines) - 1,
        "good": good.height,
        "bad": bad.height,
        "scientific": int(good["notation"].is_not_null().sum()),
        "dst_repeated_hour": int(good["dst_fold"].sum()),
        "meters": good["meter_id"].n_unique(),
    }
    return ParseResult(good, bad, stats)


def parse_file(path: str | Path, mapping: Mapping | None = None) -> ParseResult:
    return parse_lines(read_lines(path), mapping or Mapping())


def read_frame(path: str | Path, preset: str = "daiad") -> pl.DataFrame:
    """A readings file as detector input (meter_id, time UTC, total_m3; file order): the rows `readings import
    --preset` would store, with the same daylight-saving rule. The leak evaluation reads DAIAD with it."""
    return parse_file(path, PRESETS[preset]).good.select("meter_id", "time", "total_m3")


def file_checks(good: pl.DataFrame) -> dict[str, int]:
    """Counts of suspicious sequences in file order (informational; the VEE decides what they mean)."""
    g = good.sort("line").with_columns(
        pl.col("time").shift(1).over("meter_id").alias("_pt"), pl.col("total_m3").shift(1).over("meter_id").alias("_pv")
    )
    return {
        "time_not_increasing": int((g["time"] <= g["_pt"]).sum()),
        "same_time_same_value": int(((g["time"] == g["_pt"]) & (g["total_m3"] == g["_pv"])).sum()),
        "same_time_other_value": int(((g["time"] == g["_pt"]) & (g["total_m3"] != g["_pv"])).sum()),
        "index_decreases": int((g["total_m3"] < g["_pv"]).sum()),
    }
