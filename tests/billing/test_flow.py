"""The Prefect flow billing-period: chunked by meter range, same results as `meterflow billing run`."""

from __future__ import annotations

from datetime import date

import polars as pl
import psycopg
import pytest
from _billing_seed import TZ, seed  # tests/billing is on sys.path

from storage import billing as store


def test_billing_period_flow_chunks_and_stores(clean_db: psycopg.Connection, database_url: str,
                                               monkeypatch: pytest.MonkeyPatch, prefect_harness: None) -> None:
    monkeypatch.setenv("METERFLOW_DATABASE_URL", database_url)
    monkeypatch.setenv("METERFLOW_TIMEZONE", TZ)
    clean_db.execute("TRUNCATE reading_conflicts, tariff_changes")
    clean_db.commit()
    seed(clean_db)
    from pipelines.billing import billing_period, previous_month

    assert billing_period.name == "billing-period"
    assert previous_month(date(2024, 1, 15)) == (date(2023, 12, 1), date(2024, 1, 1))
    totals = billing_period(date(2024, 3, 1), date(2024, 4, 1), chunk_size=1)  # 2 chunks (premises), a task each
    assert totals["meters"] == 3 and totals["results"] == 3
    res = store.load_results(clean_db, date(2024, 3, 1), date(2024, 4, 1))
    assert res.select("meter_id", "consumption_m3").rows() == [("A", 31.0), ("B", 12.0), ("C", 21.0)]
    assert res["run_id"].unique().to_list() == [totals["run_id"]]
    # chunks are family ranges: premise P1 (A), P2 (B exchanged for C: one family)
    assert store.meter_ranges(clean_db, 1) == [("P1", "P1"), ("P2", "P2")]
    assert pl.Series(res["quality"]).to_list() == ["ACTUAL"] * 3


def test_monthly_deployment_schedule() -> None:
    from pipelines.billing import MONTHLY_CRON, deployment

    dep = deployment(timezone="Europe/Warsaw")
    assert dep.name == "monthly" and dep.flow_name == "billing-period"
    assert dep.entrypoint == "pipelines/billing.py:billing_period"
    sched = dep.schedules[0].schedule
    assert (sched.cron, sched.timezone) == (MONTHLY_CRON, "Europe/Warsaw")


def test_work_pool_deployments_point_at_this_checkout() -> None:
    from pipelines.billing import REPO_ROOT, pool_deployment, pool_monthly_deployment

    chunk = pool_deployment("billing-pool", apply=False)
    assert (chunk.flow_name, chunk.name, chunk.work_pool_name) == ("billing-chunk", "pool-chunk", "billing-pool")
    assert chunk.entrypoint == "pipelines/billing.py:billing_chunk_run"
    assert chunk.job_variables["working_dir"] == str(REPO_ROOT)
    assert (REPO_ROOT / chunk.entrypoint.split(":")[0]).exists()
    monthly = pool_monthly_deployment("billing-pool", timezone="Europe/Warsaw")
    assert (monthly.flow_name, monthly.work_pool_name) == ("billing-period-pool", "billing-pool")
    assert monthly.entrypoint == "pipelines/billing.py:billing_period_pool"
    assert monthly.schedules[0].schedule.cron == "0 3 2 * *"
