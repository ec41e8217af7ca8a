"""The real DAIAD export: import it, run the VEE over it, and check its defects against an independent count.

The independent count uses only csv/gzip/datetime from the standard library, in file order, on the raw text.
"""

from __future__ import annotations

import csv
import gzip
import json
import re
from datetime import date, datetime
from pathlib import Path

import polars as pl
import psycopg
import pytest
from click.testing import CliRunner

from analytics.vee.config import VeeConfig
from analytics.vee.core import compute_billing
from cli.main import cli
from decoders.csv_readings import PRESETS, parse_file
from storage import billing as store

PS, PE = date(2016, 3, 1), date(2017, 3, 1)
AS_OF = datetime(2020, 1, 1).astimezone()


@pytest.fixture(scope="module")
def daiad_file(shared_dir: Path) -> Path:
    path = shared_dir / "data" / "daiad" / "swm_trialA_public.csv.gz"
    if not path.exists():
        pytest.skip(f"{path} not found")
    return path


@pytest.fixture(scope="module")
def independent(daiad_file: Path) -> dict[str, int]:
    """Defects counted in file order with plain Python (previous row of the same meter)."""
    out = {"rows": 0, "decreases": 0, "non_increasing": 0, "non_increasing_in_dst_hour": 0, "same_time_same": 0,
           "same_time_other": 0, "backwards": 0, "backwards_repeating_an_earlier_read": 0, "scientific": 0,
           "jumps_2m3": 0}
    prev: dict[str, tuple[datetime, float]] = {}
    seen: dict[str, set[tuple[datetime, float]]] = {}
    with gzip.open(daiad_file, "rt", newline="") as fh:
        reader = csv.reader(fh, delimiter=";")
        next(reader)
        for key, when, reading, _diff in reader:
            out["rows"] += 1
            t = datetime.strptime(when, "%d/%m/%Y %H:%M:%S")
            v = float(reading)
            if re.search(r"[eE]", reading):
                out["scientific"] += 1
            if key in prev:
                pt, pv = prev[key]
                if t <= pt:
                    out["non_increasing"] += 1
                    # the last Sunday of October 2016: local clocks go from 03:00 back to 02:00
                    if t.date() == date(2016, 10, 30) and t.hour == 2:
                        out["non_increasing_in_dst_hour"] += 1
                    if t == pt:
                        out["same_time_same" if v == pv else "same_time_other"] += 1
                    else:
                        out["backwards"] += 1
                        if (t, v) in seen[key]:
                            out["backwards_repeating_an_earlier_read"] += 1
                if v < pv:
                    out["decreases"] += 1
                if v - pv >= 2000:  # litres
                    out["jumps_2m3"] += 1
            prev[key] = (t, v)
            seen.setdefault(key, set()).add((t, v))
    return out


def test_independent_count_matches_the_data_readme(independent: dict[str, int]) -> None:
    # README: "146 index decreases, 43 timestamps that do not increase"; it says 369,153 rows, the file has 369,154
    assert independent["decreases"] == 146
    assert independent["non_increasing"] == 43
    assert independent["non_increasing_in_dst_hour"] == 43  # every one of them is the repeated DST hour
    assert (independent["same_time_same"], independent["same_time_other"], independent["backwards"]) == (34, 5, 4)
    # the 4 that step back repeat a read two rows earlier (02:27:19, 02:27:21, 02:27:19): duplicates, not new reads
    assert independent["backwards_repeating_an_earlier_read"] == 4
    assert independent["scientific"] == 4
    assert independent["rows"] == 369_154


def test_vee_flags_the_defects_pure(daiad_file: Path, independent: dict[str, int]) -> None:
    parsed = parse_file(daiad_file, PRESETS["daiad"])
    assert parsed.bad.height == 0 and parsed.good.height == independent["rows"]
    reads = parsed.good.rename({"line": "seq"})
    registry = pl.DataFrame({"meter_id": reads["meter_id"].unique().sort()})
    out = compute_billing(reads, registry, PS, PE, VeeConfig(), as_of=AS_OF, timezone="Europe/Madrid")
    c = out.counts
    assert c["INDEX_DECREASE"] == independent["decreases"]
    assert c["SCIENTIFIC_NOTATION"] == independent["scientific"]
    assert c["JUMP"] == independent["jumps_2m3"] == 26
    # with the zone known, the 43 repeated local times are distinct instants an hour apart: flagged, not dropped
    assert c["DST_REPEATED_HOUR"] == independent["non_increasing"]
    assert c.get("TIME_NOT_INCREASING", 0) == 0 and c.get("DUPLICATE", 0) == 0
    assert out.results.height == 51
    decreasing = out.results.filter(pl.col("exceptions").list.contains("INDEX_DECREASE"))
    assert sum(json.loads(d)["n_decrease"] for d in decreasing["details"]) == 146
    # a month of real data: consumption is exactly end index - start index on every row that has both
    june = compute_billing(reads, registry, date(2016, 6, 1), date(2016, 7, 1), VeeConfig(), as_of=AS_OF,
                           timezone="Europe/Madrid").results.drop_nulls(["start_index_m3", "end_index_m3"])
    assert june.height >= 45
    assert (june["end_index_m3"] - june["start_index_m3"]).round(3).to_list() == june["consumption_m3"].to_list()
    # read naively (local times as if UTC), the same 43 rows are what the time rules catch
    naive = parse_file(daiad_file, PRESETS["daiad"].with_overrides(timezone="UTC")).good.rename({"line": "seq"})
    out2 = compute_billing(naive, registry, PS, PE, VeeConfig(), as_of=AS_OF, timezone="UTC")
    c2 = out2.counts
    assert (c2["DUPLICATE"], c2["DUPLICATE_CONFLICT"], c2.get("TIME_NOT_INCREASING", 0)) == (
        independent["same_time_same"] + independent["backwards_repeating_an_earlier_read"],
        independent["same_time_other"], independent["backwards"] - independent["backwards_repeating_an_earlier_read"])
    assert c2["DUPLICATE"] + c2["DUPLICATE_CONFLICT"] == independent["non_increasing"] == 43


def test_daiad_import_and_vee_from_database(clean_db: psycopg.Connection, daiad_file: Path, database_url: str,
                                            monkeypatch: pytest.MonkeyPatch, independent: dict[str, int]) -> None:
    monkeypatch.setenv("METERFLOW_DATABASE_URL", database_url)
    clean_db.execute("TRUNCATE reading_conflicts")
    clean_db.commit()
    out = CliRunner().invoke(cli, ["readings", "import", str(daiad_file), "--preset", "daiad", "--register-meters"])
    assert out.exit_code == 0, out.output
    stats = json.loads(out.stdout.strip().splitlines()[-1])
    assert (stats["good"], stats["bad"], stats["inserted"], stats["conflicts"]) == (369_154, 0, 369_154, 0)
    assert stats["index_decreases"] == 146 and stats["dst_repeated_hour"] == 43 and stats["scientific"] == 4
    n = clean_db.execute("SELECT count(*), count(DISTINCT meter_id) FROM readings WHERE source = 'import'").fetchone()
    assert n == (369_154, 51)
    inputs = store.load_inputs(clean_db, PS, PE, VeeConfig(), "Europe/Madrid")
    res = compute_billing(inputs["readings"], inputs["registry"], PS, PE, VeeConfig(), as_of=AS_OF,
                          timezone="Europe/Madrid")
    c = res.counts
    assert (c["INDEX_DECREASE"], c["DST_REPEATED_HOUR"], c["SCIENTIFIC_NOTATION"], c["JUMP"]) == (
        independent["decreases"], independent["non_increasing"], independent["scientific"], independent["jumps_2m3"])
    # re-importing the same file stores nothing new and loses nothing
    again = CliRunner().invoke(cli, ["readings", "import", str(daiad_file), "--preset", "daiad"])
    stats2 = json.loads(again.stdout.strip().splitlines()[-1])
    assert (stats2["inserted"], stats2["duplicates"], stats2["conflicts"]) == (0, 369_154, 0)
