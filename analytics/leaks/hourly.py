"""From meter readings (cumulative index) to hourly use per meter, the input of every detector.

Readings frame (READINGS_SCHEMA): meter_id, time (UTC), total_m3, and optionally alarms (list of words).
Hourly frame (HOURLY_SCHEMA): one row per meter and UTC hour from its first to its last reading,
`use_l` = litres drawn in that hour (null when unknown), `n` = readings in that hour, `avg_l` = the mean
litres per hour of the interval between readings that covers the hour (equal to use_l when that is known;
for a gap of up to `max_avg_hours` it is a lower bound of any leak running through the gap).

The hourly use follows the rollup rule of storage/flavor.py: the last index of the hour minus the last
index of the previous hour with a reading. A difference spanning a gap of up to `max_spread_hours` is
spread evenly over the hours of the gap; a longer gap leaves those hours unknown (null), because a lump
spread over a day would fake a continuous flow.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl

UTC_TIME = pl.Datetime("us", "UTC")
READINGS_SCHEMA: dict[str, pl.DataType] = {
    "meter_id": pl.String(),
    "time": UTC_TIME,
    "total_m3": pl.Float64(),
    "alarms": pl.List(pl.String()),
}
HOURLY_SCHEMA: dict[str, pl.DataType] = {
    "meter_id": pl.String(),
    "hour": UTC_TIME,
    "use_l": pl.Float64(),
    "n": pl.UInt32(),
    "avg_l": pl.Float64(),
}
HOUR = timedelta(hours=1)


def normalise_readings(readings: pl.DataFrame) -> pl.DataFrame:
    """Cast to READINGS_SCHEMA (alarms default to empty), drop rows without an index, sort, dedup."""
    df = readings
    if "alarms" not in df.columns:
        df = df.with_columns(pl.lit([], dtype=pl.List(pl.String())).alias("alarms"))
    df = df.select(
        pl.col("meter_id").cast(pl.String()),
        pl.col("time").cast(UTC_TIME),
        pl.col("total_m3").cast(pl.Float64()),
        pl.col("alarms").cast(pl.List(pl.String())).fill_null(pl.lit([], dtype=pl.List(pl.String()))),
    )
    df = df.filter(pl.col("time").is_not_null()).sort("meter_id", "time", maintain_order=True)
    dup = (pl.col("time") == pl.col("time").shift(1)) & (pl.col("meter_id") == pl.col("meter_id").shift(1))
    return df.filter(~dup.fill_null(False))


def is_normalised(readings: pl.DataFrame) -> bool:
    """True when the frame already has READINGS_SCHEMA (so normalising again can be skipped)."""
    return dict(readings.schema) == READINGS_SCHEMA


def unwrap_rollovers(readings: pl.DataFrame, digits: dict[str, int] | None = None,
                     window: float = 0.1) -> pl.DataFrame:
    """Undo register rollovers: a decrease from the top `window` of the register range (10^digits m3; digits from
    the registry, else the integer digits of the index before the decrease) to the bottom `window` of it, by
    which the register turned over no more than 1 m3 per hour elapsed, adds 10^digits to that reading and every
    later one of the meter. A rollover is use, never backflow or a burst."""
    df = readings if is_normalised(readings) else normalise_readings(readings)
    prev = pl.col("total_m3").shift(1).over("meter_id")
    inferred = (pl.lit(10.0) ** prev.clip(lower_bound=1.0).log10().floor().add(1.0))
    known = pl.col("meter_id").replace_strict({k: 10.0 ** v for k, v in (digits or {}).items()}, default=None,
                                              return_dtype=pl.Float64())
    span = pl.coalesce(known, inferred)
    hours = (pl.col("time") - pl.col("time").shift(1).over("meter_id")).dt.total_seconds() / 3600.0
    roll = ((pl.col("total_m3") < prev) & (prev >= (1.0 - window) * span) & (pl.col("total_m3") < window * span)
            # what the register turned over by must be plausible use (<= 1 m3 per hour elapsed), else a reset
            & (pl.col("total_m3") + span - prev <= hours.clip(lower_bound=1.0) * 1.0))
    out = df.with_columns(pl.when(roll.fill_null(False)).then(span).otherwise(0.0).alias("_wrap"))
    if not out.get_column("_wrap").gt(0).any():
        return df
    return out.with_columns((pl.col("total_m3") + pl.col("_wrap").cum_sum().over("meter_id")).alias("total_m3"))\
        .drop("_wrap")


def hourly_use(readings: pl.DataFrame, max_spread_hours: int = 3, max_avg_hours: int = 24,
               breaks: dict[str, list[datetime]] | None = None) -> pl.DataFrame:
    """Hourly use in litres per meter on a complete hourly grid (see module docstring). `breaks`: times a meter
    was exchanged (registry); the index difference across one is not use (unknown, never backflow or a burst)."""
    df = readings if is_normalised(readings) else normalise_readings(readings)
    df = df.filter(pl.col("total_m3").is_not_null())
    if df.is_empty():
        return pl.DataFrame(schema=HOURLY_SCHEMA)
    buckets = (
        df.group_by("meter_id", pl.col("time").dt.truncate("1h").alias("hour"))
        .agg(pl.col("total_m3").last().alias("last_m3"), pl.len().cast(pl.UInt32()).alias("n"))
        .sort("meter_id", "hour")
        .with_columns(
            pl.col("hour").shift(1).over("meter_id").alias("prev_hour"),
            pl.col("last_m3").shift(1).over("meter_id").alias("prev_m3"),
        )
        .with_columns(
            ((pl.col("hour") - pl.col("prev_hour")).dt.total_hours()).alias("gap"),
            ((pl.col("last_m3") - pl.col("prev_m3")) * 1000.0).round(6).alias("diff_l"),
        )
    )
    if breaks:
        b = pl.DataFrame([(m, t) for m, ts in breaks.items() for t in ts],
                         schema={"meter_id": pl.String(), "_b": UTC_TIME}, orient="row")
        across = (buckets.join(b, on="meter_id", how="inner")
                  .filter((pl.col("_b") > pl.col("prev_hour")) & (pl.col("_b") <= pl.col("hour")))
                  .select("meter_id", "hour").unique().with_columns(pl.lit(True).alias("_x")))
        buckets = buckets.join(across, on=["meter_id", "hour"], how="left").with_columns(
            pl.when(pl.col("_x")).then(None).otherwise(pl.col("diff_l")).alias("diff_l")).drop("_x")
    spread = (
        buckets.filter(pl.col("gap").is_not_null())
        .with_columns(
            pl.when(pl.col("gap") <= max_avg_hours).then(pl.col("gap")).otherwise(1).alias("k"),
        )
        .with_columns(
            pl.when(pl.col("gap") <= max_spread_hours)
            .then(pl.col("diff_l") / pl.col("k"))
            .otherwise(None)
            .alias("use_l"),
            pl.when(pl.col("gap") <= max_avg_hours).then(pl.col("diff_l") / pl.col("k")).otherwise(None)
            .alias("avg_l"),
            pl.int_ranges(0, pl.col("k")).alias("offset"),
        )
        .explode("offset")
        .select(
            "meter_id",
            (pl.col("hour") - pl.duration(hours=pl.col("offset"))).alias("hour"),
            "use_l",
            "avg_l",
        )
    )
    counts = buckets.select("meter_id", "hour", "n")
    grid = (
        buckets.group_by("meter_id")
        .agg(pl.col("hour").min().alias("lo"), pl.col("hour").max().alias("hi"))
        .with_columns(pl.datetime_ranges("lo", "hi", "1h").alias("hour"))
        .explode("hour")
        .select("meter_id", pl.col("hour").cast(UTC_TIME))
    )
    out = (
        grid.join(spread, on=["meter_id", "hour"], how="left")
        .join(counts, on=["meter_id", "hour"], how="left")
        .with_columns(pl.col("n").fill_null(0).cast(pl.UInt32()))
        .select(list(HOURLY_SCHEMA))
        .sort("meter_id", "hour")
    )
    return out


def readings_from_intervals(intervals: pl.DataFrame, resolution_l: float = 1.0,
                            every_minutes: int = 15) -> pl.DataFrame:
    """Simulated 15-minute litres (meter_id, time = interval start, litres) to index readings.

    The index starts at 0 just before the first interval, is floored to the register resolution, and is
    read every `every_minutes` (a multiple of 15) at the end of each interval."""
    step = max(every_minutes // 15, 1)
    df = (
        intervals.sort("meter_id", "time")
        .with_columns(pl.col("litres").cum_sum().over("meter_id").alias("cum_l"),
                      pl.int_range(pl.len()).over("meter_id").alias("k"))
        .filter((pl.col("k") + 1) % step == 0)
        .select(
            "meter_id",
            (pl.col("time") + pl.duration(minutes=15)).alias("time"),
            ((pl.col("cum_l") / resolution_l).floor() * resolution_l / 1000.0).alias("total_m3"),
        )
    )
    first = intervals.group_by("meter_id").agg(pl.col("time").min()).with_columns(pl.lit(0.0).alias("total_m3"))
    return normalise_readings(pl.concat([first.select("meter_id", "time", "total_m3"), df]))


def hour_floor(t: datetime) -> datetime:
    return t.replace(minute=0, second=0, microsecond=0)
