"""Garden sub-meters, tariff groups and the one period convention through the real commands, API and database."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import polars as pl
import psycopg
import pytest
from _billing_seed import TZ, local, seed
from click.testing import CliRunner
from fastapi.testclient import TestClient
from pydantic import SecretStr

from cli.main import cli
from meterflow.config import Settings
from storage import billing as store
from storage import reading_import

TOKEN = "test-token-billing-groups"
REGISTRY = """meter_id,customer_ref,role,parent_meter_id,tariff_group
A,CUST-1,main,,G1
GA,CUST-1,garden,A,G1
GX,,garden,NOPE,
GY,,garden,GA,
"""


@pytest.fixture
def gdb(clean_db: psycopg.Connection, monkeypatch: pytest.MonkeyPatch, database_url: str) -> psycopg.Connection:
    monkeypatch.setenv("METERFLOW_DATABASE_URL", database_url)
    monkeypatch.setenv("METERFLOW_TIMEZONE", TZ)
    monkeypatch.delenv("METERFLOW_CONFIG_FILE", raising=False)
    clean_db.execute("TRUNCATE reading_conflicts, tariff_changes RESTART IDENTITY")
    clean_db.commit()
    seed(clean_db)
    return clean_db


def _app(settings: Settings) -> TestClient:
    from api.app import create_app

    s = settings.model_copy(update={"api": settings.api.model_copy(update={"tokens": [SecretStr(TOKEN)]})})
    return TestClient(create_app(s, str(settings.database_url.get_secret_value() if settings.database_url else "")))


def _garden_setup(conn: psycopg.Connection, tmp_path: Path) -> CliRunner:
    runner = CliRunner()
    f = tmp_path / "registry.csv"
    f.write_text(REGISTRY)
    out = runner.invoke(cli, ["meters", "import", str(f)])
    assert out.exit_code == 1, out.output  # rows were rejected: the good ones are kept, the exit says so
    assert "meters: 2 imported, 2 lines rejected" in out.stdout
    assert "registry.csv:4: meter GX: parent_meter_id NOPE is not a registered meter" in out.stderr
    assert "registry.csv:5: meter GY: parent_meter_id GA is a garden meter" in out.stderr
    good = pl.DataFrame([("GA", local(2024, 3, 1), 5.0, 1), ("GA", local(2024, 4, 1), 9.0, 2)],
                        schema={"meter_id": pl.String, "time": pl.Datetime("us", "UTC"), "total_m3": pl.Float64,
                                "line": pl.Int64}, orient="row")
    assert reading_import.import_readings(conn, good, file="garden.csv").inserted == 2
    return runner


def test_garden_tariff_group_run_export_equals_api(gdb: psycopg.Connection, settings: Settings,
                                                   tmp_path: Path) -> None:
    runner = _garden_setup(gdb, tmp_path)
    added = runner.invoke(cli, ["tariffs", "add", "--group", "G1", "--effective", "2024-03-15", "--note", "uchwała 7",
                                "--by", "clerk"])
    assert added.exit_code == 0, added.output
    again = runner.invoke(cli, ["tariffs", "add", "--group", "G1", "--effective", "2024-03-15"])
    assert again.exit_code != 0 and "already has a tariff change on 2024-03-15" in again.output
    listed = runner.invoke(cli, ["tariffs", "list"]).stdout.splitlines()
    assert listed[1:] == ["G1\t2024-03-15\tG1\tuchwała 7\tclerk"]
    # chunk size 1: the garden GA still lands in A's chunk (family ranges)
    run = runner.invoke(cli, ["billing", "run", "--period", "2024-03", "--chunk-size", "1"])
    assert run.exit_code == 0, run.output
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert summary["meters"] == 4 and summary["TARIFF_SPLIT"] == 2  # A and GA (group G1); C ('default') not
    res = store.load_results(gdb, date(2024, 3, 1), date(2024, 4, 1))
    got = [(r["meter_id"], r["segment_start"], r["segment_end"], r["water_m3"], r["sewage_m3"], r["customer_ref"])
           for r in res.to_dicts()]
    assert got == [
        # A: 31 m3, split at 15 March's first read (110); garden 4 m3 -> sewage 27 shared 10 : 21
        ("A", date(2024, 3, 1), date(2024, 3, 15), 10.0, 8.71, "CUST-1"),
        ("A", date(2024, 3, 15), date(2024, 4, 1), 21.0, 18.29, "CUST-1"),
        ("B", date(2024, 3, 1), date(2024, 3, 11), 12.0, 12.0, None),
        ("C", date(2024, 3, 11), date(2024, 4, 1), 21.0, 21.0, None),
        # GA: 4 m3 prorated 14 : 17 days, sewage 0
        ("GA", date(2024, 3, 1), date(2024, 3, 15), 1.806, 0.0, "CUST-1"),
        ("GA", date(2024, 3, 15), date(2024, 4, 1), 2.194, 0.0, "CUST-1"),
    ]
    exported = runner.invoke(cli, ["billing", "export", "--from", "2024-03-01", "--to", "2024-04-01", "--format",
                                   "json"])
    assert exported.exit_code == 0, exported.output
    rows = json.loads(exported.stdout)
    csv_out = runner.invoke(cli, ["billing", "export", "--period", "2024-03"]).stdout
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with _app(settings) as client:
        items, cursor = [], None
        while True:  # page through the API, 4 rows a page
            params = {"from": "2024-03-01", "to": "2024-04-01", "limit": 4, **({"cursor": cursor} if cursor else {})}
            page = client.get("/api/v1/billing/consumption", headers=auth, params=params).json()
            items += page["items"]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        api_csv = client.get("/api/v1/billing/consumption?period=2024-03&format=csv", headers=auth).text
    assert len(rows) == 6 and items == rows
    assert api_csv == csv_out
    assert rows[0]["premise_ref"] == "P1" and rows[0]["role"] == "main" and rows[4]["role"] == "garden"


def test_tariffs_by_api_record_the_actor(gdb: psycopg.Connection, settings: Settings) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with _app(settings) as client:
        r = client.post("/api/v1/billing/tariffs", headers=auth,
                        json={"tariff_group": "G2", "effective_date": "2024-07-01", "note": "new price"})
        assert r.status_code == 201, r.text
        assert r.json() == {"tariff_group": "G2", "effective_date": "2024-07-01", "tariff_code": "G2",
                            "note": "new price", "created_by": "analyst"}
        dup = client.post("/api/v1/billing/tariffs", headers=auth,
                          json={"tariff_group": "G2", "effective_date": "2024-07-01"})
        assert dup.status_code == 409
        assert client.post("/api/v1/billing/tariffs", json={"tariff_group": "G2", "effective_date": "2024-08-01"}
                           ).status_code == 401
        listed = client.get("/api/v1/billing/tariffs", headers=auth).json()
        assert [(t["tariff_group"], t["effective_date"]) for t in listed] == [("G2", "2024-07-01")]
        hint = client.get("/api/v1/billing/consumption?from=2024-03-01&to=2024-03-31", headers=auth)
        assert hint.status_code == 400 and "to 2024-04-01 or period 2024-03" in hint.json()["detail"]


def test_one_period_convention_and_month_end_hint(gdb: psycopg.Connection, settings: Settings) -> None:
    runner = CliRunner()
    assert runner.invoke(cli, ["billing", "run", "--from", "2024-03", "--to", "2024-04"]).exit_code == 0
    short = runner.invoke(cli, ["billing", "export", "--from", "2024-03-01", "--to", "2024-03-31"])
    assert short.exit_code == 2
    assert "--to is exclusive" in short.output and "--to 2024-04-01 or --period 2024-03" in short.output
    by_month = runner.invoke(cli, ["billing", "export", "--from", "2024-03", "--to", "2024-04", "--format", "json"])
    by_period = runner.invoke(cli, ["billing", "export", "--period", "2024-03", "--format", "json"])
    assert by_month.exit_code == 0 and by_month.stdout == by_period.stdout
    assert [r["meter_id"] for r in json.loads(by_period.stdout)] == ["A", "B", "C"]
    both = runner.invoke(cli, ["billing", "export", "--period", "2024-03", "--from", "2024-03-01"])
    assert both.exit_code == 2 and "not both" in both.output
    bad = runner.invoke(cli, ["billing", "run", "--from", "March", "--to", "2024-04-01"])
    assert bad.exit_code == 2 and "is not a date" in bad.output
