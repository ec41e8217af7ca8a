"""Commands and evaluation: offline and database detection, the benchmark targets, DAIAD parsing."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import polars as pl
import psycopg
import pytest
from click.testing import CliRunner
from leak_helpers import T0, household_day, readings
from test_alerts_db import insert

from analytics.leaks.evaluate import evaluate
from cli.commands.leaks import eval_group, leaks
from meterflow.config import Settings

H = timedelta(hours=1)


def test_help_has_examples() -> None:
    runner = CliRunner()
    for group, args in ((leaks, ["detect"]), (leaks, ["list"]), (leaks, ["notify"]), (eval_group, ["leaks"]),
                        (leaks, [])):
        out = runner.invoke(group, [*args, "--help"])
        assert out.exit_code == 0 and "Example: meterflow " in out.output


def test_detect_offline_file_json_lines(tmp_path: Path, settings: Settings) -> None:
    df = pl.concat([readings("leaky", [v + 6.0 for v in household_day() * 3]),
                    readings("fine", household_day() * 3)])
    path = tmp_path / "r.parquet"
    df.write_parquet(path)
    out = CliRunner().invoke(leaks, ["detect", "--input", str(path), "--json"], obj=settings)
    assert out.exit_code == 0, out.output
    rows = [json.loads(x) for x in out.stdout.splitlines()]
    assert [(r["meter_id"], r["kind"], r["severity"], r["state"], r["rate_l_h"]) for r in rows] == [
        ("leaky", "leak", "warning", "open", 6.0)]
    # times in the configured zone with their offset (Europe/Warsaw: +02:00 in June)
    assert rows[0]["start"] == "2026-06-01T02:00:00+02:00" and rows[0]["end"] == "2026-06-04T02:00:00+02:00"
    assert rows[0]["detected_at"] == "2026-06-01T20:00:00+02:00"  # a steady night inside 18 wet hours


def test_detect_from_database_local_window_and_list(clean_db: psycopg.Connection, settings: Settings) -> None:
    insert(clean_db, readings("leaky", [v + 6.0 for v in household_day() * 3]))
    clean_db.execute("INSERT INTO meters (meter_id, district) VALUES ('leaky', 'North') ON CONFLICT DO NOTHING")
    clean_db.commit()
    # no offset: local time (Europe/Warsaw); the same instant written with an offset gives the same window
    for frm in ("2026-06-02T02:00", "2026-06-02T00:00Z"):
        out = CliRunner().invoke(leaks, ["detect", "--from", frm, "--to", "2026-06-04", "--json"], obj=settings)
        assert out.exit_code == 0, out.output
        rows = [json.loads(x) for x in out.stdout.splitlines()]
        assert [(r["meter_id"], r["kind"], r["rate_l_h"]) for r in rows] == [("leaky", "leak", 6.0)]
    # default window: the data in the database, not the wall clock
    out = CliRunner().invoke(leaks, ["detect", "--format", "csv"], obj=settings)
    assert out.exit_code == 0, out.output
    lines = out.stdout.splitlines()
    assert lines[0].startswith("meter_id,kind,severity,state,start,end") and len(lines) == 2
    assert clean_db.execute("SELECT count(*) FROM alerts").fetchone() == (1,)
    got = CliRunner().invoke(leaks, ["list", "--open", "--district", "North", "--format", "json"], obj=settings)
    assert got.exit_code == 0, got.output
    (row,) = [json.loads(x) for x in got.stdout.splitlines()]
    assert (row["meter_id"], row["district"], row["kind"], row["state"]) == ("leaky", "North", "leak", "open")
    assert row["start"].endswith("+02:00")
    for args in (["--closed"], ["--district", "South"], ["--kind", "burst"], ["--closed", "--since", "2026-05-01"]):
        none = CliRunner().invoke(leaks, ["list", *args, "--format", "json"], obj=settings)
        assert none.exit_code == 0 and none.stdout == "", args
    table = CliRunner().invoke(leaks, ["list"], obj=settings)
    assert table.stdout.splitlines()[0].split()[:4] == ["meter_id", "kind", "severity", "state"]


def test_evaluate_exact_counts() -> None:
    truth = pl.DataFrame({"meter_id": ["a", "b", "c"], "kind": ["leak", "leak", "irrigation"],
                          "start": [T0, T0, T0], "end": [T0 + 100 * H, T0 + 100 * H, T0 + 100 * H],
                          "rate_l_h": [10.0, 3.0, 500.0], "volume_m3": [1.0, 0.3, 5.0], "note": ["", "", ""]},
                         schema_overrides={"start": pl.Datetime("us", "UTC"), "end": pl.Datetime("us", "UTC")})
    alerts = pl.DataFrame({"meter_id": ["a", "a", "c", "d"], "kind": ["leak", "leak", "leak", "burst"],
                           "start": [T0, T0 + 20 * H, T0, T0], "end": [T0 + 90 * H] * 4,
                           "detected_at": [T0 + 24 * H, T0 + 12 * H, T0 + 3 * H, T0 + 3 * H]},
                          schema_overrides={"start": pl.Datetime("us", "UTC"), "end": pl.Datetime("us", "UTC"),
                                            "detected_at": pl.Datetime("us", "UTC")})
    rep = evaluate(alerts, truth, meters=10, days=30.4375)
    assert (rep.alerts, rep.true_alerts, rep.precision) == (3, 2, 0.6667)
    assert rep.false_by_trap == {"irrigation": 1}
    assert rep.false_per_100_meter_months == 10.0
    assert rep.recall_target == 1.0 and rep.median_delay_h_target == 12.0
    sizes = {r["group"]: (r["events"], r["detected"]) for r in rep.by_size}
    assert sizes["leak 2-5 L/h"] == (1, 0) and sizes["leak 10-30 L/h"] == (1, 1)


def test_benchmark_meets_targets() -> None:
    """The acceptance figures on a small simulated fleet (the full one: `meterflow eval leaks --simulate`)."""
    out = CliRunner().invoke(eval_group, ["leaks", "--simulate", "--meters", "400", "--days", "30", "--seed", "3",
                                          "--json"], obj=Settings())
    assert out.exit_code == 0, out.output
    rep = json.loads(out.stdout)
    assert rep["target_events"] >= 20
    assert rep["recall_target"] >= 0.95
    assert rep["precision"] >= 0.9
    assert rep["median_delay_h_target"] <= 24


def test_real_homes_meet_the_targets_and_beat_the_vendor_rule(shared_dir: Path) -> None:
    """The acceptance figures on the public DAIAD homes with injected leaks, meterflow and the vendor rule side by
    side in the same run (`meterflow eval leaks --daiad ...`)."""
    path = shared_dir / "data" / "daiad" / "swm_trialA_public.csv.gz"
    out = CliRunner().invoke(eval_group, ["leaks", "--daiad", str(path), "--seed", "11", "--json"], obj=Settings())
    assert out.exit_code == 0, out.output
    rep = json.loads(out.stdout)
    assert rep["meters"] == 51 and rep["injected"] >= 80
    for part in ("all", "A", "B"):
        ours, vendor = rep[part]["meterflow"], rep[part]["vendor"]
        assert ours["target"]["leaks"] >= 25
        assert ours["target"]["recall"] >= 0.95 and ours["target"]["recall"] >= vendor["target"]["recall"]
        assert ours["false_per_100_meter_months"] <= 5.0
        assert ours["false_per_100_meter_months"] < vendor["false_per_100_meter_months"]
        assert ours["target"]["median_delay_h"] <= 24.0


@pytest.mark.parametrize("bad", ["yesterday"])
def test_bad_time_is_a_usage_error(bad: str, settings: Settings) -> None:
    out = CliRunner().invoke(leaks, ["detect", "--to", bad], obj=settings)
    assert out.exit_code == 2 and "ISO 8601" in out.output
    out = CliRunner().invoke(leaks, ["list", "--since", bad], obj=settings)
    assert out.exit_code == 2 and "ISO 8601" in out.output


def test_eval_with_truth_file(tmp_path: Path) -> None:
    from fixtures.leak_scenarios import benchmark_fleet

    fleet = benchmark_fleet(150, 20, seed=5)
    fleet.readings.write_parquet(tmp_path / "readings.parquet")
    fleet.truth.write_parquet(tmp_path / "truth.parquet")
    out = CliRunner().invoke(eval_group, ["leaks", "--truth", str(tmp_path / "truth.parquet"), "--input",
                                          str(tmp_path / "readings.parquet")], obj=Settings(timezone=fleet.tz))
    assert out.exit_code == 0, out.output
    assert "precision:" in out.stdout and "TARGET leak >=5 L/h, >=48 h" in out.stdout
    assert "meter-months" in out.stdout
