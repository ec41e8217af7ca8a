"""Flow `daily-consumption`: refresh the rollups, compute daily use per meter and for the fleet.

The flow returns the frames; who shows them (the demo's page, a chart) decides where they go."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import polars as pl
from prefect import flow, task

from analytics.consumption import bucket_consumption, fleet_daily_total
from storage.db import connect
from storage.refresh import refresh_derived
from storage.rollup_reads import read_rollup


@dataclass
class DailyConsumption:
    daily: pl.DataFrame  # per meter and day: meter_id, bucket, consumption_m3 (see analytics.consumption)
    total: pl.DataFrame  # per day: bucket, consumption_m3, meters

    def summary(self) -> dict[str, object]:
        return {
            "days": self.total.height,
            "meters": self.daily["meter_id"].n_unique(),
            "fleet_m3": round(float(self.total["consumption_m3"].sum() or 0.0), 3),
        }


@task(name="refresh-rollups", retries=2, retry_delay_seconds=5)
def refresh(dsn: str, start: datetime, end: datetime) -> None:
    with connect(dsn) as conn:
        refresh_derived(conn, start, end)


@task(name="daily-use")
def daily_use(dsn: str, start: datetime, end: datetime) -> pl.DataFrame:
    with connect(dsn) as conn:
        return bucket_consumption(read_rollup(conn, "consumption_daily", start, end))


@flow(name="daily-consumption", log_prints=True)
def daily_consumption(dsn: str, start: datetime, end: datetime) -> DailyConsumption:
    """Daily consumption per meter and for the fleet over [start, end), after refreshing the rollups."""
    refresh(dsn, start, end)
    daily = daily_use(dsn, start, end)
    return DailyConsumption(daily, fleet_daily_total(daily))
