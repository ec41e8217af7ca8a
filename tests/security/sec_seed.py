"""Security tests: a small registry with tenancies, hourly readings and rollups, and the web app over it.

M1: customer C-A since 2025-01-01. M2: tenant C-OLD until 2026-02-01, then C-NEW (moved in 2026-02-01).
Readings every hour from 2025-12-01 to NOW; NOW is 2026-03-01 11:00 UTC.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from meterflow.config import Settings
from storage.chart_queries import refresh_dashboards
from storage.flavor import ensure_partitions, refresh_rollups

NOW = datetime(2026, 3, 1, 11, 0, tzinfo=UTC)
START = datetime(2025, 12, 1, tzinfo=UTC)
BOOTSTRAP = "bootstrap-token-for-tests-0123456789"
MASTER = base64.urlsafe_b64encode(bytes(range(32))).decode()
SEC_TABLES = ("api_tokens", "api_sessions", "meter_customers")
ALL_TABLES = ("readings", "readings_packed", "raw_frames", "dead_letters", "alerts", "billing_audit",
              "billing_results", "billing_runs", "meters", "consumption_hourly", "consumption_daily", "district_daily",
              "meter_last_heard", "heard_hourly", "reading_conflicts")


@pytest.fixture
def sec_settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings.model_validate({
        "database_url": database_url, "timezone": "Europe/Warsaw", "data_dir": str(tmp_path / "data"),
        "api": {"tokens": [BOOTSTRAP], "login_max_failures": 5, "login_window_s": 300},
        "secrets": {"master_key": MASTER},
    })


def _seed(conn: psycopg.Connection) -> None:
    conn.execute("TRUNCATE " + ", ".join((*ALL_TABLES, *SEC_TABLES)) + " RESTART IDENTITY CASCADE")
    conn.execute("INSERT INTO meters (meter_id, customer_ref, district, register_digits) VALUES"
                 " ('M1', 'C-A', 'North', 5), ('M2', 'C-NEW', 'North', 5)")
    conn.execute("INSERT INTO meter_customers (meter_id, customer_ref, move_in, move_out) VALUES"
                 " ('M1', 'C-A', '2025-01-01', NULL), ('M2', 'C-OLD', '2024-01-01', '2026-02-01'),"
                 " ('M2', 'C-NEW', '2026-02-01', NULL)")
    ensure_partitions(conn, START, NOW)
    hours = int((NOW - START).total_seconds() // 3600)
    with conn.cursor() as cur, cur.copy("COPY readings (meter_id, time, total_m3, source) FROM STDIN") as copy:
        for meter, rate in (("M1", 0.010), ("M2", 0.050)):
            for h in range(hours + 1):
                copy.write_row((meter, START + timedelta(hours=h), 100.0 + rate * h, "radio"))
    conn.commit()
    refresh_rollups(conn, START, NOW + timedelta(hours=1))
    refresh_dashboards(conn, START, NOW + timedelta(hours=1))
    conn.commit()


@pytest.fixture
def seeded_db(db: psycopg.Connection) -> psycopg.Connection:
    _seed(db)
    return db


@pytest.fixture
def client(seeded_db: psycopg.Connection, sec_settings: Settings) -> Iterator[TestClient]:
    dsn = sec_settings.database_dsn()
    assert dsn
    with TestClient(create_app(sec_settings, dsn), follow_redirects=False) as c:
        yield c


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


