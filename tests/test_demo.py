"""The demo end to end on the real services: every telegram not deliberately dropped is stored once."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
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
        _check_customer_page(settings, result)
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
        distinct = conn.execute("SELECT count(DISTINCT (meter_id, time)) FROM readings"
                                " WHERE meter_id NOT IN (SELECT meter_id FROM meters WHERE role = 'inlet'"
                                " OR district LIKE 'AREA-%')").fetchone()  # the interruption area is apart
        inlets = conn.execute("SELECT count(*) FROM readings r JOIN meters m USING (meter_id)"
                              " WHERE m.role = 'inlet' AND r.source = 'modbus'").fetchone()
        days = conn.execute("SELECT count(DISTINCT bucket) FROM consumption_daily").fetchone()
    assert distinct == (truth["expected_distinct_readings"],)
    # one district inlet per district, read over Modbus every 15 minutes (fixtures.inlets)
    assert inlets == (result.counts["inlet_readings"],) and result.counts["inlet_readings"] % 96 == 0
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


@pytest.mark.slow
def test_demo_runs_first_time_in_an_empty_directory() -> None:
    """Outside the repository, nothing configured: embedded PostgreSQL and broker, a fresh Prefect home."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("METERFLOW_", "PREFECT_"))}
    # the embedded PostgreSQL runs as its own user: the directory must be reachable by others, as a home is
    fresh = Path(tempfile.mkdtemp(prefix="meterflow-fresh-"))
    fresh.chmod(0o755)
    try:
        done = subprocess.run([str(Path(sys.executable).parent / "meterflow"), "demo", "--meters", "8", "--days",
                               "1"], cwd=fresh, env=env, capture_output=True, text=True, timeout=280)
        assert done.returncode == 0, done.stderr[-3000:]
        assert "stored exactly once: yes" in done.stdout
        assert "Failed to create the Prefect home" not in done.stderr and "Failed to reach API" not in done.stderr
        assert (fresh / ".meterflow" / "prefect").is_dir()
        assert "Fleet daily consumption" in (fresh / ".meterflow" / "demo" / "consumption.html").read_text()
    finally:
        shutil.rmtree(fresh, ignore_errors=True)


def _check_customer_page(settings: Settings, result: DemoResult) -> None:
    """The link the demo prints opens a customer page whose daily, monthly and hourly charts have data."""
    from fastapi.testclient import TestClient

    from api.app import create_app

    assert result.customer_link.startswith(f"http://{settings.api.host}:{settings.api.port}/c/C")
    # the link shows the simulated month (?now=): served as the README says, with as_of_for_customers
    web = settings.model_copy(update={"api": settings.api.model_copy(update={"as_of_for_customers": True})})
    with TestClient(create_app(web, result.dsn)) as client:
        page = client.get(result.customer_link.split(str(settings.api.port), 1)[1])
    assert page.status_code == 200
    for chart in ("daily", "monthly", "hourly"):
        found = re.search(rf'data-chart="chart-{chart}">(.*?)</script>', page.text)
        assert found, chart
        values = [v for trace in json.loads(found.group(1))["data"] for v in trace.get("y", []) if v]
        assert values, f"the {chart} chart of {result.customer_link} is empty"

