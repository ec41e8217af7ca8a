"""`meterflow interruptions detect|list|plan|subscribe|notify` on the real database, and the hourly flow."""

from __future__ import annotations

import json
from datetime import timedelta
from zoneinfo import ZoneInfo

import polars as pl
import psycopg
from click.testing import CliRunner
from test_done_when import _load

from cli.main import cli
from fixtures.interruptions import AreaConfig, build_area
from meterflow.config import Settings
from pipelines.leaks import leak_detection_flow

WARSAW = ZoneInfo("Europe/Warsaw")


def _run(settings: Settings, *args: str) -> list[str]:
    res = CliRunner().invoke(cli, list(args), obj=settings, catch_exceptions=False,
                             env={"METERFLOW_DATABASE_URL": settings.database_dsn() or ""})
    assert res.exit_code == 0, res.output
    return [line for line in res.stdout.splitlines() if line.strip()]


def test_detect_list_plan_subscribe_and_notify(clean_db: psycopg.Connection, settings: Settings) -> None:
    area = build_area(AreaConfig(days=14, seed=8))
    _load(clean_db, area.registry, area.readings)
    cut, district_cut, comm = area.truth.iter_rows(named=True)
    day = comm["start"].astimezone(WARSAW).strftime("%Y-%m-%d")
    last = (district_cut["end"] + timedelta(days=1)).astimezone(WARSAW).strftime("%Y-%m-%d")
    rows = [json.loads(x) for x in _run(settings, "interruptions", "detect", "--from", day, "--to", last, "--json",
                                        "--store")]
    got = sorted((r["kind"], r["district"], r["street"]) for r in rows)
    assert got == [("communication", "DMA-02", None), ("supply", "DMA-01", "Lipowa"), ("supply", "DMA-02", None)]
    lipowa = next(r for r in rows if r["street"] == "Lipowa")
    assert lipowa["start"] == cut["start"].astimezone(WARSAW).isoformat()
    assert lipowa["meters"] == sorted(area.registry.filter(pl.col("street") == "Lipowa").get_column("meter_id"))
    listed = [json.loads(x) for x in _run(settings, "interruptions", "list", "--kind", "supply", "--json")]
    assert {(r["street"], r["state"]) for r in listed} == {("Lipowa", "closed"), (None, "closed")}
    assert _run(settings, "interruptions", "plan", "--district", "DMA-01", "--street", "Lipowa", "--from",
                "2099-01-01T08:00", "--to", "2099-01-01T12:00", "--note", "valve") == ["planned works 1 recorded"]
    assert "valve" in _run(settings, "interruptions", "planned")[0]
    assert _run(settings, "interruptions", "subscribe", "--street", "Lipowa", "--phone", "+48123")[0].startswith(
        "subscription")
    assert clean_db.execute("SELECT count(*) FROM planned_works").fetchone() == (1,)


def test_the_hourly_flow_runs_the_interruption_step(clean_db: psycopg.Connection, settings: Settings,
                                                    prefect_harness: None) -> None:
    area = build_area(AreaConfig(days=14, seed=5))
    cut = area.truth.row(0, named=True)
    now = cut["start"] + timedelta(hours=3)
    _load(clean_db, area.registry, area.readings_until(now))
    out = leak_detection_flow.fn(as_of=now, settings=settings)
    assert out["interruptions"]["opened"] >= 1
    row = clean_db.execute("SELECT street, state, end_at FROM interruptions WHERE kind = 'supply'").fetchone()
    assert row == ("Lipowa", "open", None)
