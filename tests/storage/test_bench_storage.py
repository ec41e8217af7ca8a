"""A miniature `meterflow bench storage`: figures add up, with the CSV baseline of the same run."""

from __future__ import annotations

import re

import psycopg
from click.testing import CliRunner

from bench.storage import bench_storage
from meterflow.config import Settings
from storage import flavor

LAST = re.compile(r"^storage: (\d+) bytes per reading \((postgres|timescale), [^:]+: readings (\d+) \+ raw archive"
                  r" (\d+); raw_frames in the table (\d+); CSV (\d+), gzip CSV [\d.]+; ([\d,]+) readings\)$")


def test_bench_storage_on_a_tiny_fleet(settings: Settings, db: psycopg.Connection) -> None:
    result = CliRunner().invoke(bench_storage, ["--readings", "2000", "--meters", "10"], obj=settings)
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    m = LAST.match(lines[-1])
    assert m, lines[-1]
    total, kind, readings, archive, table, csv, n = m.groups()
    assert kind == flavor.current(db)
    assert abs(int(total) - int(readings) - int(archive)) <= 1
    assert 0 < int(archive) < int(table)  # the archive files cost less than the table rows they replace
    # 10 meters x 3 days of quarter-hours, less the simulated losses, plus the exchanged meters' readings
    assert 2700 <= int(n.replace(",", "")) <= 3100
    assert 40 <= int(csv) <= 90  # meter_id, time, index, ... as text: tens of bytes, not hundreds
    assert any(line.startswith("baseline: CSV of the readings") for line in lines)
    second = "chunks compressed" if kind == "timescale" else "closed months packed"
    assert any(line.startswith(f"{kind}, {second}") for line in lines)
    assert any("dropped meterflow_bench_storage_" in line for line in lines)
