"""Billing against the real database: storage round trips, commands, HTTP API, manual reads."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import psycopg
import pytest
from _billing_seed import TZ, local, seed
from click.testing import CliRunner
from fastapi.testclient import TestClient

from analytics.vee.core import compute_billing
from cli.main import cli
from meterflow.config import Settings
from pipelines.billing import run_billing
from storage import billing as store

TOKEN = "test-token-billing"


@pytest.fixture
def bdb(clean_db: psycopg.Connection) -> psycopg.Connection:
    clean_db.execute("TRUNCATE reading_conflicts, tariff_changes RESTART IDENTITY")
    clean_db.commit()
    return clean_db


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, database_url: str) -> None:
    monkeypatch.setenv("METERFLOW_DATABASE_URL", database_url)
    monkeypatch.setenv("METERFLOW_TIMEZONE", TZ)
    monkeypatch.delenv("METERFLOW_CONFIG_FILE", raising=False)


def test_run_store_export_and_next_period(bdb: psycopg.Connection, settings: Settings, env: None,
                                          tmp_path: Path) -> None:
    seed(bdb)
    run_id, totals = run_billing(settings, date(2024, 3, 1), date(2024, 4, 1), chunk_size=2)
    assert totals["meters"] == 3 and totals["results"] == 3
    res = store.load_results(bdb, date(2024, 3, 1), date(2024, 4, 1))
    got = {r["meter_id"]: (r["start_index_m3"], r["end_index_m3"], r["consumption_m3"], r["quality"])
           for r in res.to_dicts()}
    assert got == {"A": (100.0, 131.0, 31.0, "ACTUAL"), "B": (500.0, 512.0, 12.0, "ACTUAL"),
                   "C": (3.0, 24.0, 21.0, "ACTUAL")}
    # the stored figures are exactly the pure function's
    inputs = store.load_inputs(bdb, date(2024, 3, 1), date(2024, 4, 1), settings.vee, TZ)
    pure = compute_billing(inputs["readings"], inputs["registry"], date(2024, 3, 1), date(2024, 4, 1), settings.vee,
                           timezone=TZ).results
    assert pure.select("meter_id", "consumption_m3").sort("meter_id").rows() == [("A", 31.0), ("B", 12.0),
                                                                                    ("C", 21.0)]
    assert bdb.execute("SELECT status FROM billing_runs WHERE run_id = %s", (run_id,)).fetchone() == ("finished",)
    # rule 1 across runs: April starts at March's stored end index
    run_billing(settings, date(2024, 4, 1), date(2024, 5, 1))
    april = store.load_results(bdb, date(2024, 4, 1), date(2024, 5, 1)).filter(pl.col("meter_id") == "A").row(
        0, named=True)
    assert (april["start_index_m3"], april["end_index_m3"], april["consumption_m3"]) == (131.0, 161.0, 30.0)
    assert "previous_period_end" in april["method"]
    # export in three formats
    runner = CliRunner()
    out = runner.invoke(cli, ["billing", "export", "--from", "2024-03-01", "--to", "2024-04-01", "--format", "csv"])
    assert out.exit_code == 0, out.output
    lines = out.stdout.strip().splitlines()
    assert lines[0] == ("meter_id,period_start,period_end,start_index_m3,end_index_m3,consumption_m3,quality,method,"
                        "exceptions,customer_ref,premise_ref,tariff_group,role,segment_start,segment_end,water_m3,"
                        "sewage_m3")
    assert lines[1].startswith("A,2024-03-01,2024-04-01,100.0,131.0,31.0,ACTUAL,")
    out = runner.invoke(cli, ["billing", "export", "--from", "2024-03-01", "--to", "2024-04-01", "--format", "json"])
    assert [r["consumption_m3"] for r in json.loads(out.stdout)] == [31.0, 12.0, 21.0]
    pq = tmp_path / "m.parquet"
    out = runner.invoke(cli, ["billing", "export", "--from", "2024-03-01", "--to", "2024-05-01", "--format",
                              "parquet", "--out", str(pq)])
    assert out.exit_code == 0 and pl.read_parquet(pq).height == 5  # 3 in March + A, C in April (B removed)


def test_billing_run_command_and_audit(bdb: psycopg.Connection, env: None) -> None:
    seed(bdb)
    bdb.execute("INSERT INTO tariff_changes (effective_date) VALUES ('2024-03-15')")
    bdb.commit()
    out = CliRunner().invoke(cli, ["billing", "run", "--from", "2024-03-01", "--to", "2024-04-01"])
    assert out.exit_code == 0, out.output
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["meters"] == 3 and summary["TARIFF_SPLIT"] == 2  # A and C span 15 March
    parts = bdb.execute("SELECT period_start, period_end, consumption_m3, method FROM billing_results"
                        " WHERE meter_id = 'A' ORDER BY period_start").fetchall()
    assert [(p[0], p[1], p[2]) for p in parts] == [(date(2024, 3, 1), date(2024, 3, 15), 10.0),
                                                   (date(2024, 3, 15), date(2024, 4, 1), 21.0)]
    assert "tariff_split:read" in parts[0][3]
    audit = bdb.execute("SELECT rule, action FROM billing_audit WHERE meter_id = 'A'").fetchall()
    assert ("13", "split") in audit
    bad = CliRunner().invoke(cli, ["billing", "run", "--from", "2024-04-01", "--to", "2024-03-01"])
    assert bad.exit_code != 0 and "must be after" in bad.output


def test_manual_reads_cli_and_validation(bdb: psycopg.Connection, env: None) -> None:
    seed(bdb)
    runner = CliRunner()
    ok = runner.invoke(cli, ["readings", "add", "--meter", "A", "--time", "2024-04-10T12:00:00+02:00",
                             "--index", "140.5"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["stored"] is True
    row = bdb.execute("SELECT total_m3, source FROM readings WHERE meter_id = 'A' AND time = %s",
                      (datetime(2024, 4, 10, 10, tzinfo=UTC),)).fetchone()
    assert row == (140.5, "manual")
    low = runner.invoke(cli, ["readings", "add", "--meter", "A", "--time", "2024-04-11T12:00:00+02:00",
                              "--index", "139"])
    assert low.exit_code != 0 and "below the last index 140.5" in low.output
    flagged = runner.invoke(cli, ["readings", "add", "--meter", "A", "--time", "2024-04-11T12:00:00+02:00",
                                  "--index", "139", "--allow-decrease"])
    assert flagged.exit_code == 0
    unknown = runner.invoke(cli, ["readings", "add", "--meter", "ZZ", "--time", "2024-04-11T12:00:00+02:00",
                                  "--index", "1"])
    assert unknown.exit_code != 0 and "unknown meter 'ZZ'" in unknown.output
    removed = runner.invoke(cli, ["readings", "add", "--meter", "B", "--time", "2024-04-11T12:00:00+02:00",
                                  "--index", "600"])
    assert removed.exit_code != 0 and "was removed on 2024-03-11" in removed.output
    future = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    fut = runner.invoke(cli, ["readings", "add", "--meter", "A", "--time", future, "--index", "200"])
    assert fut.exit_code != 0 and "in the future" in fut.output


def test_http_consumption_and_manual(bdb: psycopg.Connection, settings: Settings, env: None) -> None:
    from api.app import create_app

    seed(bdb)
    run_billing(settings, date(2024, 3, 1), date(2024, 4, 1))
    s = settings.model_copy(update={"api": settings.api.model_copy(update={"tokens": [TOKEN]})})
    from pydantic import SecretStr

    s.api.tokens = [SecretStr(TOKEN)]
    app = create_app(s, str(settings.database_url.get_secret_value() if settings.database_url else ""))
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with TestClient(app) as client:
        assert client.get("/api/v1/billing/consumption?from=2024-03-01&to=2024-04-01").status_code == 401
        page = client.get("/api/v1/billing/consumption?from=2024-03-01&to=2024-04-01&limit=2", headers=auth).json()
        assert [i["meter_id"] for i in page["items"]] == ["A", "B"] and page["next_cursor"]
        page2 = client.get("/api/v1/billing/consumption", headers=auth,
                           params={"from": "2024-03-01", "to": "2024-04-01", "limit": 2,
                                   "cursor": page["next_cursor"]}).json()
        assert [(i["meter_id"], i["consumption_m3"]) for i in page2["items"]] == [("C", 21.0)]
        assert page2["next_cursor"] is None
        csv = client.get("/api/v1/billing/consumption?from=2024-03-01&to=2024-04-01",
                         headers={**auth, "Accept": "text/csv"})
        assert csv.headers["content-type"].startswith("text/csv")
        assert csv.text.splitlines()[1].startswith("A,2024-03-01,2024-04-01,100.0,131.0,31.0,ACTUAL,")
        assert client.get("/api/v1/billing/consumption?from=2024-03-01&to=2024-04-01&cursor=zz",
                          headers=auth).status_code == 400
        spec = client.get("/openapi.json").json()
        assert "ConsumptionPage" in spec["components"]["schemas"]
        assert "/api/v1/readings/manual" in spec["paths"]
        r = client.post("/api/v1/readings/manual", headers=auth,
                        json={"meter_id": "A", "time": "2024-04-10T12:00:00+02:00", "index_m3": 140.0})
        assert r.status_code == 201 and r.json()["stored"] is True
        r = client.post("/api/v1/readings/manual", headers=auth,
                        json={"meter_id": "A", "time": "2024-04-11T12:00:00+02:00", "index_m3": 120.0})
        assert r.status_code == 422 and "below the last index" in r.json()["detail"]
        r = client.post("/api/v1/readings/manual", headers=auth,
                        json={"meter_id": "A", "time": "2024-04-10T12:00:00+02:00", "index_m3": 141.0})
        assert r.status_code == 409
        r = client.post("/api/v1/readings/manual", headers=auth,
                        json={"meter_id": "NOPE", "time": "2024-04-10T12:00:00+02:00", "index_m3": 1.0})
        assert r.status_code == 404 and "unknown meter" in r.json()["detail"]
        r = client.post("/api/v1/readings/manual", json={"meter_id": "A", "time": "2024-04-10T12:00:00Z",
                                                         "index_m3": 1.0})
        assert r.status_code == 401


def test_import_conflicts_are_kept_and_reported(bdb: psycopg.Connection, env: None, tmp_path: Path) -> None:
    seed(bdb)
    f = tmp_path / "hist.csv"
    f.write_text("meter_id,time,total_m3\n"
                 "A,2024-03-01T00:00:00+01:00,100.0\n"        # same as stored: duplicate, collapsed
                 "A,2024-03-02T00:00:00+01:00,101.0\n"        # new
                 "A,2024-03-02T00:00:00+01:00,101.5\n"        # same time as the line before, other value: conflict
                 "A,2024-03-15T12:00:00+01:00,999\n"          # stored 110: conflict
                 "A,not a time,1\n"                            # bad
                 "A,2024-03-03T00:00:00Z,4e+02\n"              # scientific, good
                 "B,2024-03-03T00:00:00Z\n")                   # bad: missing field
    out = CliRunner().invoke(cli, ["readings", "import", str(f), "--rejects", str(tmp_path / "rej.csv")])
    assert out.exit_code == 1, out.output  # rows were rejected: the good ones are stored, the exit says so
    assert "4 rows rejected (2 bad, 2 conflicting)" in out.stderr
    stats = json.loads(out.stdout.strip().splitlines()[-1])
    assert (stats["good"], stats["bad"], stats["inserted"], stats["duplicates"], stats["conflicts"]) == (5, 2, 2, 1, 2)
    assert "line 6: time not a time does not match ISO 8601" in out.stderr
    assert "line 8: expected 3 fields, found 2" in out.stderr
    kept = bdb.execute("SELECT line, total_m3, stored_m3 FROM reading_conflicts ORDER BY line").fetchall()
    assert kept == [(4, 101.5, 101.0), (5, 999.0, 110.0)]
    rej = (tmp_path / "rej.csv").read_text().splitlines()
    assert len(rej) == 1 + 2 + 2
    # the VEE sees the stored conflicts (rule 5)
    inputs = store.load_inputs(bdb, date(2024, 3, 1), date(2024, 4, 1), Settings().vee, TZ)
    res = compute_billing(inputs["readings"], inputs["registry"], date(2024, 3, 1), date(2024, 4, 1),
                          timezone=TZ).results
    a = res.filter(pl.col("meter_id") == "A").row(0, named=True)
    assert "DUPLICATE_CONFLICT" in a["exceptions"] and json.loads(a["details"])["n_duplicate_conflict"] == 2


def test_staged_import_fallback_classifies_the_same(bdb: psycopg.Connection) -> None:
    """The path taken when a concurrent writer beats the COPY: staged INSERT ... ON CONFLICT."""
    seed(bdb)
    good = pl.DataFrame(
        [("A", local(2024, 3, 1), 100.0, 2), ("A", local(2024, 3, 2), 101.0, 3),
         ("A", local(2024, 3, 15, 12), 999.0, 4)],
        schema={"meter_id": pl.String, "time": pl.Datetime("us", "UTC"), "total_m3": pl.Float64, "line": pl.Int64},
        orient="row",
    )
    from storage.reading_import import _import_staged

    st = _import_staged(bdb, good, file="late.csv")
    assert (st.inserted, st.duplicates, len(st.conflicts)) == (1, 1, 1)
    assert bdb.execute("SELECT line, total_m3, stored_m3 FROM reading_conflicts").fetchall() == [(4, 999.0, 110.0)]
