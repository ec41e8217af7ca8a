"""Interval consumption from index rollups: the shape every chart and the demo start from."""

from __future__ import annotations

import polars as pl


def bucket_consumption(rollup: pl.DataFrame) -> pl.DataFrame:
    """Use per meter and bucket = this bucket's last index - the previous bucket's last index.

    The first bucket of a meter only knows its own readings (last - first). A decrease (meter exchange,
    rollover, reverse flow) is not consumption: it yields null here and is left to VEE to explain.
    Input columns: meter_id, bucket, first_m3, last_m3. Output adds consumption_m3.
    """
    ordered = rollup.sort("meter_id", "bucket")
    previous = pl.col("last_m3").shift(1).over("meter_id")
    raw = pl.when(previous.is_null()).then(pl.col("last_m3") - pl.col("first_m3")).otherwise(
        pl.col("last_m3") - previous
    )
    return ordered.with_columns(
        pl.when(raw < 0).then(None).otherwise(raw).round(6).alias("consumption_m3")
    )


def fleet_daily_total(daily: pl.DataFrame) -> pl.DataFrame:
    """Sum of all meters' daily use, with how many meters contributed to each day."""
    return (
        daily.group_by("bucket")
        .agg(
            pl.col("consumption_m3").sum().round(3).alias("consumption_m3"),
            pl.col("consumption_m3").is_not_null().sum().alias("meters"),
        )
        .sort("bucket")
    )
