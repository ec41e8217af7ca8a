"""A miniature `meterflow bench pages`: both pages render through the app on a scratch fleet and the last
line carries the figures."""

from __future__ import annotations

import re

from click.testing import CliRunner

from bench.pages import bench_pages
from meterflow.config import Settings


def test_bench_pages_runs_on_a_tiny_fleet(settings: Settings) -> None:
    result = CliRunner().invoke(bench_pages, ["--meters", "300", "--days", "40", "--districts", "4",
                                              "--gateways", "3", "--runs", "3"], obj=settings)
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert re.fullmatch(r"pages: fleet p95 \d+ ms, meter p95 \d+ ms \(300 meters\)", lines[-1]), lines[-1]
    table = {line.split()[0]: line.split()[1:] for line in lines if line.startswith(("fleet ", "meter "))}
    assert set(table) == {"fleet", "meter"} and all(len(v) == 6 for v in table.values())
    assert any("dropped meterflow_bench_pages_" in line for line in lines)
