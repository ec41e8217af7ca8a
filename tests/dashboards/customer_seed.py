"""Customers for the customer-page tests, as of NOW (1 March 2026, 12:00 in Warsaw), billed for January and
February 2026 by the real billing run:

K-ORD  an ordinary household: main meter K1 (hourly remote reads since Dec 2024, verification expiring within
       90 days, tariff group G1) and a garden sub-meter K1G (daily reads: remote, imported, a self-read, and a
       gap over the turn of January so billing estimates there).
K-EXC  meter E1 exchanged for E2 on 14 February 2026 (same premise).
K-NEW  meter N1 installed on 10 February 2026: February is its first month of data.
K-BRS  meter B1 with a 32 m3 burst on 20 February 2026 (open burst alert) and a leak closed last August.
K-MIG  meter M9 installed in 2020 (index 0) whose reads reach meterflow only from 20 February 2026 (at 350 m3).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import psycopg
import pytest
from click.testing import CliRunner
from dash_seed import SECRET, TOKEN

from api.pages.auth import customer_signature
from cli.commands.billing import billing
from meterflow.config import Settings
from pipelines.billing import run_billing
from storage.chart_queries import refresh_dashboards
from storage.flavor import ensure_partitions, refresh_rollups

WARSAW = ZoneInfo("Europe/Warsaw")
NOW = datetime(2026, 3, 1, 11, 0, tzinfo=UTC)
NOW_PARAM = "2026-03-01T12:00"
START = datetime(2024, 12, 1, tzinfo=UTC)
EXCHANGE = datetime(2026, 2, 14, 10, 0, tzinfo=UTC)
N1_FROM = datetime(2026, 2, 10, 9, 0, tzinfo=UTC)
BURST = datetime(2026, 2, 20, 2, 0, tzinfo=UTC)
MIGRATED = datetime(2026, 2, 20, 9, 0, tzinfo=UTC)  # M9: installed in 2020, read by meterflow since then
GARDEN_GAP = (datetime(2026, 1, 20, tzinfo=UTC), datetime(2026, 2, 10, tzinfo=UTC))
BILLED = ((date(2026, 1, 1), date(2026, 2, 1)), (date(2026, 2, 1), date(2026, 3, 1)))
CUSTOMER_TABLES = ("readings", "readings_packed", "alerts", "billing_audit", "billing_results", "billing_runs",
                   "meters", "consumption_hourly", "consumption_daily", "district_daily", "meter_last_heard",
                   "reading_conflicts")


@dataclass(frozen=True)
class Customers:
    dsn: str
    settings: Settings


def customer_settings(dsn: str) -> Settings:
    return Settings.model_validate({"database_url": dsn, "timezone": "Europe/Warsaw",
                                    "api": {"tokens": [TOKEN], "customer_link_secret": SECRET, "locale": "pl",
                                            "as_of_for_customers": True}})  # simulated data: ?now= for all


def _hourly(t0: datetime, t1: datetime, start_m3: float, l_h: float, rng: np.random.Generator
            ) -> list[tuple[datetime, float]]:
    hours = int((t1 - t0).total_seconds() // 3600)
    local = (np.arange(hours) + t0.astimezone(WARSAW).hour) % 24
    shape = np.where((local >= 6) & (local < 9), 3.0, np.where((local >= 18) & (local < 22), 2.5,
                                                                 np.where(local < 5, 0.1, 1.0)))
    litres = l_h * shape * rng.uniform(0.6, 1.4, size=hours)
    index = start_m3 + np.cumsum(litres) / 1000.0
    return [(t0 + timedelta(hours=i + 1), float(round(v, 4))) for i, v in enumerate(index)]


def seed(conn: psycopg.Connection, settings: Settings) -> None:
    conn.execute("TRUNCATE " + ", ".join(CUSTOMER_TABLES) + " RESTART IDENTITY CASCADE")
    meters = [  # meter, customer, premise, role, parent, install, install index, removal, removal index, tariff, expiry
        ("K1", "K-ORD", "P-ORD", "main", None, date(2024, 12, 1), 100.0, None, None, "G1", date(2026, 4, 15)),
        ("K1G", "K-ORD", "P-ORD", "garden", "K1", date(2025, 5, 1), 0.0, None, None, "G1-OGR", date(2030, 5, 1)),
        ("E1", "K-EXC", "P-EXC", "main", None, date(2024, 12, 1), 500.0, date(2026, 2, 14), None, "G1",
         date(2026, 6, 1)),
        ("E2", "K-EXC", "P-EXC", "main", None, date(2026, 2, 14), 0.0, None, None, "G1", date(2032, 2, 14)),
        ("N1", "K-NEW", "P-NEW", "main", None, date(2026, 2, 10), 5.0, None, None, "G2", date(2032, 2, 10)),
        ("B1", "K-BRS", "P-BRS", "main", None, date(2024, 12, 1), 40.0, None, None, "G1", date(2031, 1, 1)),
        ("M9", "K-MIG", "P-MIG", "main", None, date(2020, 5, 1), 0.0, None, None, "G1", date(2030, 5, 1)),
    ]
    rng = np.random.default_rng(16)
    reads: dict[str, list[tuple[datetime, float, str]]] = {}
    reads["K1"] = [(t, v, "wmbus") for t, v in _hourly(START, NOW, 100.0, 14.0, rng)]
    e1 = _hourly(START, EXCHANGE, 500.0, 12.0, rng)
    reads["E1"] = [(t, v, "wmbus") for t, v in e1]
    reads["E2"] = [(t, v, "wmbus") for t, v in _hourly(EXCHANGE, NOW, 0.0, 12.0, rng)]
    reads["N1"] = [(t, v, "wmbus") for t, v in _hourly(N1_FROM, NOW, 5.0, 10.0, rng)]
    reads["M9"] = [(t, v, "wmbus") for t, v in _hourly(MIGRATED, NOW, 350.0, 10.0, rng)]
    b1 = _hourly(START, NOW, 40.0, 11.0, rng)
    burst_hours = {BURST + timedelta(hours=h) for h in range(1, 7)}
    extra, b1_burst = 0.0, []
    for t, v in b1:
        if t in burst_hours:
            extra += 32.0 / 6
        b1_burst.append((t, round(v + extra, 4), "wmbus"))
    reads["B1"] = b1_burst
    garden = []
    day = datetime(2025, 5, 1, 18, 0, tzinfo=UTC)
    index = 0.0
    while day <= NOW:
        index += float(rng.uniform(0.05, 0.4))
        if not (GARDEN_GAP[0] <= day < GARDEN_GAP[1]):
            source = ("import" if day < datetime(2025, 9, 1, tzinfo=UTC) or day.date() == date(2026, 2, 25)
                      else "manual" if day.date() == date(2026, 2, 27) else "wmbus")
            garden.append((day, round(index, 3), source))
        day += timedelta(days=1)
    reads["K1G"] = garden
    removal_index = e1[-1][1]
    for m, cust, premise, role, parent, inst, inst_idx, rem, _rem_idx, tariff, expiry in meters:
        conn.execute(
            "INSERT INTO meters (meter_id, manufacturer, model, customer_ref, premise_ref, role, parent_meter_id,"
            " install_date, install_index_m3, removal_date, removal_index_m3, tariff_group, verification_expiry,"
            " district) VALUES (%s, 'APA', 'JS-02', %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 'North')",
            (m, cust, premise, role, parent, inst, inst_idx, rem, removal_index if m == "E1" else None, tariff,
             expiry))
    ensure_partitions(conn, START, NOW + timedelta(days=1))
    with conn.cursor().copy("COPY readings (meter_id, time, total_m3, source, received_at) FROM STDIN") as cp:
        for m, rows in reads.items():
            for t, v, source in rows:
                cp.write_row((m, t, v, source, t))
    conn.execute(
        "INSERT INTO alerts (meter_id, kind, severity, state, first_seen, last_seen, rate_l_h, volume_m3, message)"
        " VALUES ('B1', 'burst', 'critical', 'open', %s, %s, 5333, 32, 'burst')", (BURST, BURST + timedelta(hours=6)))
    conn.execute(
        "INSERT INTO alerts (meter_id, kind, severity, state, first_seen, last_seen, resolved_at, rate_l_h, message)"
        " VALUES ('B1', 'continuous_flow', 'warning', 'resolved', %s, %s, %s, 8, 'toilet')",
        (datetime(2025, 8, 2, tzinfo=UTC), datetime(2025, 8, 9, tzinfo=UTC), datetime(2025, 8, 9, tzinfo=UTC)))
    refresh_rollups(conn, START, NOW + timedelta(hours=1))
    refresh_dashboards(conn, NOW - timedelta(days=3), NOW + timedelta(hours=1))
    conn.commit()
    for start, end in BILLED:
        run_billing(settings, start, end, as_of=NOW)


def link(settings: Settings, customer: str, path: str = "", **query: str) -> str:
    params = {"sig": customer_signature(settings, customer), "now": NOW_PARAM, **query}
    return f"/c/{customer}{path}?" + "&".join(f"{k}={v}" for k, v in params.items())


def exported(settings: Settings, start: date, end: date) -> dict[str, float]:
    """Sum of `meterflow billing export` consumption per meter for the periods in [start, end]."""
    result = CliRunner().invoke(billing, ["export", "--from", str(start), "--to", str(end), "--format", "csv"],
                                obj=settings)
    assert result.exit_code == 0, result.output
    out: dict[str, float] = {}
    for row in csv.DictReader(io.StringIO(result.stdout)):
        if row["consumption_m3"]:  # empty: no figure for that meter (no reads in the period)
            out[row["meter_id"]] = out.get(row["meter_id"], 0.0) + float(row["consumption_m3"])
    return out


@pytest.fixture(scope="module")
def customers(database_url: str) -> Iterator[Customers]:
    settings = customer_settings(database_url)
    with psycopg.connect(database_url) as conn:
        seed(conn, settings)
    yield Customers(database_url, settings)
