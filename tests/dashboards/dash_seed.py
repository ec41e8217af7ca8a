"""A small fleet with 400 days of hourly readings, rolled up, for the dashboard tests.

As of NOW: M1 and M2 belong to customer C-A (district North, gateway GW1); M2 leaks for the last 10 days;
M1 has a 3-day gap 20 days ago. M3 (customer C-B, district South, GW2) went silent 2 days ago.
M4 (C-C, South) was never heard; M5 (East) must be verified within 30 days.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np
import psycopg
import pytest

from meterflow.config import Settings
from storage.chart_queries import refresh_dashboards
from storage.flavor import ensure_partitions, refresh_rollups

NOW = datetime(2026, 3, 1, 11, 0, tzinfo=UTC)
NOW_PARAM = "2026-03-01T12:00"  # local (Europe/Warsaw) = NOW
START = NOW - timedelta(days=400)
GAP = (NOW - timedelta(days=21), NOW - timedelta(days=18))
TOKEN = "analyst-token-123"
SECRET = "link-secret-xyz-0123456789"
TABLES = ("readings", "readings_packed", "raw_frames", "dead_letters", "alerts", "billing_audit", "billing_results",
          "billing_runs", "meters", "consumption_hourly", "consumption_daily", "district_daily", "meter_last_heard",
          "alert_events")


@dataclass(frozen=True)
class Seeded:
    dsn: str
    now: datetime


def _hourly_profile(hours: np.ndarray, base_l_h: float, rng: np.random.Generator) -> np.ndarray:
    local_hour = (hours + 1) % 24
    shape = np.where((local_hour >= 6) & (local_hour < 9), 3.0, np.where((local_hour >= 18) & (local_hour < 22),
                                                                            2.5, np.where(local_hour < 5, 0.1, 1.0)))
    return base_l_h * shape * rng.uniform(0.6, 1.4, size=hours.shape)


def seed(conn: psycopg.Connection) -> None:
    conn.execute("TRUNCATE " + ", ".join(TABLES) + " RESTART IDENTITY CASCADE")
    meters = [
        ("M1", "C-A", "North", date(2031, 1, 1)),
        ("M2", "C-A", "North", date(2030, 6, 1)),
        ("M3", "C-B", "South", date(2029, 1, 1)),
        ("M4", "C-C", "South", date(2026, 5, 1)),
        ("M5", "C-D", "East", date(2026, 3, 30)),
    ]
    for meter_id, customer, district, expiry in meters:
        conn.execute(
            "INSERT INTO meters (meter_id, manufacturer, model, customer_ref, premise_ref, district,"
            " verification_expiry) VALUES (%s, 'KAM', 'flowIQ 2200', %s, %s, %s, %s)",
            (meter_id, customer, "P-" + meter_id, district, expiry),
        )
    rng = np.random.default_rng(8)
    n = int((NOW - START).total_seconds() // 3600) + 1
    times = [START + timedelta(hours=i) for i in range(n)]
    hours = np.arange(n) % 24
    ensure_partitions(conn, START, NOW)
    rows = []
    for meter_id, base, gateway in (("M1", 12.0, "GW1"), ("M2", 9.0, "GW1"), ("M3", 15.0, "GW2")):
        litres = _hourly_profile(hours, base, rng)
        if meter_id == "M2":
            leak_from = n - 10 * 24
            litres[leak_from:] += 30.0
        index = 100.0 + np.cumsum(litres) / 1000.0
        for i, t in enumerate(times):
            if meter_id == "M1" and GAP[0] <= t < GAP[1]:
                continue
            if meter_id == "M3" and t > NOW - timedelta(days=2):
                continue
            rows.append((meter_id, t, float(round(index[i], 4)), gateway, t))
    with conn.cursor().copy("COPY readings (meter_id, time, total_m3, gateway_id, received_at) FROM STDIN") as cp:
        for r in rows:
            cp.write_row(r)
    conn.execute(
        "INSERT INTO alerts (meter_id, kind, severity, first_seen, last_seen, rate_l_h, message) VALUES"
        " ('M2', 'continuous_flow', 'critical', %s, %s, 30, 'flow never stops'),"
        " ('M3', 'silent', 'warning', %s, %s, NULL, 'no reading for 2 days')",
        (NOW - timedelta(days=10), NOW, NOW - timedelta(days=2), NOW),
    )
    conn.execute(
        "INSERT INTO alerts (meter_id, kind, severity, state, first_seen, last_seen, resolved_at, message) VALUES"
        " ('M1', 'meter_alarm:tamper', 'warning', 'resolved', %s, %s, %s, 'tamper alarm bit')",
        (NOW - timedelta(days=40), NOW - timedelta(days=38), NOW - timedelta(days=38)),
    )
    for i, code in enumerate(["no_key", "no_key", "no_key", "bad_crc", "unknown_manufacturer"]):
        conn.execute(
            "INSERT INTO dead_letters (digest, kind, error_code, meter_id, gateway_id, received_at, payload)"
            " VALUES (%s, 'wmbus', %s, 'X9', 'GW1', %s, '\\x00')",
            (bytes([i]), code, NOW - timedelta(hours=i)),
        )
    run = conn.execute("INSERT INTO billing_runs (period_start, period_end, status) VALUES (%s, %s, 'done')"
                       " RETURNING run_id", (date(2026, 1, 1), date(2026, 2, 1))).fetchone()
    assert run is not None
    conn.execute(
        "INSERT INTO billing_results (run_id, meter_id, period_start, period_end, consumption_m3, quality, method,"
        " flags) VALUES (%s, 'M1', %s, %s, 8.1, 'ESTIMATED', 'interpolation', '{gap_filled}')",
        (run[0], date(2026, 1, 1), date(2026, 2, 1)),
    )
    refresh_rollups(conn, START, NOW + timedelta(hours=1))
    refresh_dashboards(conn, START, NOW + timedelta(hours=1))
    conn.commit()


@pytest.fixture(scope="module")
def seeded(database_url: str) -> Iterator[Seeded]:
    with psycopg.connect(database_url) as conn:
        seed(conn)
    yield Seeded(database_url, NOW)


@pytest.fixture
def web_settings(seeded: Seeded, tmp_path: object) -> Settings:
    return web_settings_for(seeded.dsn)


def web_settings_for(dsn: str, locale: str = "en") -> Settings:
    """The analyst tests read the pages in English (`api.locale` en); the default locale of the app is pl."""
    return Settings.model_validate({"database_url": dsn, "timezone": "Europe/Warsaw",
                                    "api": {"tokens": [TOKEN], "customer_link_secret": SECRET, "locale": locale,
                                            "as_of_for_customers": True}})  # simulated data: ?now= for all


def shows(html: str, word: str) -> bool:
    """`word` (a meter id) as a word of the page: a signature or token in a link may contain 'M1' by chance."""
    return re.search(rf"(?<![A-Za-z0-9]){re.escape(word)}(?![A-Za-z0-9])", html) is not None
