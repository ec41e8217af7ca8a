"""The demo end to end on the real services: every telegram not deliberately dropped is stored once."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

from cli.demo import DemoResult, run_demo
from meterflow.config import Settings


@pytest.mark.slow
def test_demo_stores_every_delivered_telegram_exactly_once(
    settings: Settings, tmp_path: Path, prefect_harness: None, pg_server_uri: str
) -> None:
    name = f"meterflow_demo_test_{uuid.uuid4().hex[:6]}"
    try:
        result = run_demo(settings, meters=40, days=2, seed=7, gateways=2, out_dir=tmp_path / "demo",
                          database_name=name)
        _check(result)
    finally:
        with psycopg.connect(pg_server_uri, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _check(result: DemoResult) -> None:
    truth = result.truth
    assert truth["telegrams_lost"] > 0 and truth["telegrams_repeated"] > 0  # the fleet injects both
    assert result.counts["frames_sent"] == truth["frames_emitted"]
    assert result.counts["readings_stored"] == truth["expected_distinct_readings"]
    assert result.counts["duplicates_dropped"] + result.counts["suppressed_by_gateways"] == truth["telegrams_repeated"]
    assert result.counts["dead_letters"] == 0
    with psycopg.connect(result.dsn) as conn:
        distinct = conn.execute("SELECT count(DISTINCT (meter_id, time)) FROM readings r WHERE NOT EXISTS ("
                                "SELECT 1 FROM meters m WHERE m.meter_id = r.meter_id AND m.street IS NOT NULL)"
                                ).fetchone()  # the fleet's readings; the interruption area's are apart
        days = conn.execute("SELECT count(DISTINCT bucket) FROM consumption_daily").fetchone()
    assert distinct == (truth["expected_distinct_readings"],)
    assert days is not None and days[0] >= 2
    assert result.report is not None and result.report.exists()
    html = result.report.read_text()
    assert "Fleet daily consumption" in html and "plotly" in html
    # one of each: a street cut, a district cut told by dry alarms, a communication outage, where they were
    shown = {(i["kind"], i["street"], i["cause"]) for i in result.interruptions}
    assert shown == {("supply", "Lipowa", "standstill"), ("supply", None, "dry_alarm"),
                     ("communication", None, "silence")}
    assert all(i["true_start"] <= i["start_at"] <= i["true_start"] + timedelta(hours=1)
               and i["end_at"] == i["true_end"] for i in result.interruptions)
