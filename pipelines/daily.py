"""Flow `daily-consumption`: refresh the rollups, compute daily use, write the fleet report page."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import polars as pl
from prefect import flow, task

from analytics.consumption import bucket_consumption, fleet_daily_total
from dashboards.fleet_report import fleet_consumption_figure, write_report
from storage.db import connect
from storage.refresh import refresh_derived
from storage.rollup_reads import read_rollup


@task(name="refresh-rollups", retries=2, retry_delay_seconds=5)
def refresh(dsn: str, start: datetime, end: datetime) -> None:
    with connect(dsn) as conn:
        refresh_derived(conn, start, end)


@task(name="daily-use")
def daily_use(dsn: str, start: datetime, end: datetime) -> pl.DataFrame:
    with connect(dsn) as conn:
        return bucket_consumption(read_rollup(conn, "consumption_daily", start, end))


@flow(name="daily-consumption", log_prints=True)
def daily_consumption(dsn: str, start: datetime, end: datetime, report: Path | None = None,
                      summary: dict[str, object] | None = None, sample_meters: int = 5) -> dict[str, object]:
    """Daily consumption per meter and for the fleet over [start, end); optionally an HTML report."""
    refresh(dsn, start, end)
    daily = daily_use(dsn, start, end)
    total = fleet_daily_total(daily)
    result: dict[str, object] = {
        "days": total.height,
        "meters": daily["meter_id"].n_unique(),
        "fleet_m3": round(float(total["consumption_m3"].sum() or 0.0), 3),
    }
    if report is not None:
        samples = sorted(daily["meter_id"].unique().to_list())[:sample_meters]
        fig = fleet_consumption_figure(total, daily, samples)
        result["report"] = str(write_report(fig, report, {**(summary or {}), **result}))
    return result
