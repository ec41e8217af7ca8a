"""Commands and evaluation: offline and database detection, the benchmark targets, DAIAD parsing."""

from __future__ import annotations

import gzip
import json
from datetime import timedelta
from pathlib import Path

import polars as pl
import psycopg
import pytest
from click.testing import CliRunner
from leak_helpers import T0, household_day, readings
from test_alerts_db import insert

from analytics.leaks.evaluate import evaluate, read_daiad
from cli.commands.leaks import eval_group, leaks
from meterflow.config import Settings

H = timedelta(hours=1)


def test_help_has_examples() -> None:
    runner = CliRunner()
    for group, args in ((leaks, ["detect"]), (leaks, ["notify"]), (eval_group, ["leaks"]), (leaks, [])):
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
    assert [(r["meter_id"], r["kind"], r["rate_l_h"]) for r in rows] == [
        ("leaky", "continuous_flow", 6.0), ("leaky", "night_flow", 6.0)]
    assert rows[0]["start"] == "2026-06-01T00:00:00Z" and rows[0]["end"] == "2026-06-04T00:00:00Z"
    assert set(rows[0]) >= {"meter_id", "kind", "start", "end", "rate_l_h", "volume_m3"}


def test_detect_from_database_window(clean_db: psycopg.Connection, settings: Settings) -> None:
    insert(clean_db, readings("leaky", [v + 6.0 for v in household_day() * 3]))
    args = ["detect", "--from", "2026-06-02T00:00Z", "--to", "2026-06-04T00:00Z", "--json", "--store",
            "--kind", "continuous_flow"]
    out = CliRunner().invoke(leaks, args, obj=settings)
    assert out.exit_code == 0, out.output
    rows = [json.loads(x) for x in out.stdout.splitlines()]
    assert [(r["meter_id"], r["kind"], r["rate_l_h"]) for r in rows] == [("leaky", "continuous_flow", 6.0)]
    assert clean_db.execute("SELECT count(*) FROM alerts WHERE state = 'open'").fetchone() == (2,)


def test_evaluate_exact_counts() -> None:
    truth = pl.DataFrame({"meter_id": ["a", "b", "c"], "kind": ["leak", "leak", "irrigation"],
                          "start": [T0, T0, T0], "end": [T0 + 100 * H, T0 + 100 * H, T0 + 100 * H],
                          "rate_l_h": [10.0, 3.0, 500.0], "volume_m3": [1.0, 0.3, 5.0], "note": ["", "", ""]},
                         schema_overrides={"start": pl.Datetime("us", "UTC"), "end": pl.Datetime("us", "UTC")})
    alerts = pl.DataFrame({"meter_id": ["a", "a", "c", "d"], "kind": ["continuous_flow", "night_flow", "night_flow",
                                                                      "burst"],
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


def test_read_daiad_cleans_dirty_rows(tmp_path: Path) -> None:
    text = ("user key;datetime;meter reading;diff\n"
            "u1;01/03/2016 00:28:55;68321;10\n"
            "u1;01/03/2016 01:28:55;4e+05;0\n"  # scientific notation
            "u1;01/03/2016 01:28:55;68330;9\n"  # repeated timestamp: dropped
            "u1;01/03/2016 00:50:00;68325;0\n"  # clock step back: dropped
            "u1;27/03/2016 02:30:00;68400;0\n"  # does not exist in Madrid (DST): dropped
            "u1;bad;68400;0\n"
            "u2;02/03/2016 10:00:00;5;0\n")
    p = tmp_path / "d.csv.gz"
    p.write_bytes(gzip.compress(text.encode()))
    df = read_daiad(p)
    assert df.rows() == [("u1", T0.replace(year=2016, month=2, day=29, hour=23, minute=28, second=55), 68.321),
                         ("u1", T0.replace(year=2016, month=3, day=1, hour=0, minute=28, second=55), 400.0),
                         ("u2", T0.replace(year=2016, month=3, day=2, hour=9), 0.005)]


@pytest.mark.parametrize("bad", ["yesterday"])
def test_bad_time_is_a_usage_error(bad: str, settings: Settings) -> None:
    out = CliRunner().invoke(leaks, ["detect", "--to", bad], obj=settings)
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
