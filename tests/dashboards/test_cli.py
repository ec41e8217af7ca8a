"""`meterflow serve link` and a miniature `meterflow bench charts`."""

from __future__ import annotations

from click.testing import CliRunner
from dash_seed import SECRET, web_settings_for

from api.pages.auth import customer_signature
from bench.charts import bench_charts
from cli.commands.serve import serve
from meterflow.config import Settings


def test_link_prints_the_signed_customer_url() -> None:
    settings = web_settings_for("postgresql://unused")
    result = CliRunner().invoke(serve, ["link", "--customer", "C-A", "--base-url", "https://water.example/",
                                        "--now", "2026-03-01"], obj=settings)
    assert result.exit_code == 0, result.output
    sig = customer_signature(settings, "C-A")
    assert result.output.strip() == f"https://water.example/c/C-A?sig={sig}&now=2026-03-01"
    assert settings.api.customer_link_secret.get_secret_value() == SECRET


def test_bench_charts_runs_on_a_tiny_fleet(settings: Settings) -> None:
    result = CliRunner().invoke(bench_charts, ["--meters", "300", "--days", "40", "--hourly-days", "2",
                                               "--districts", "5", "--gateways", "4", "--runs", "3"], obj=settings)
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[-1].startswith("charts: p95 ") and "(worst query " in lines[-1]
    assert any(line.startswith("baseline: SELECT 1 round trip") for line in lines)
    assert any("dropped meterflow_bench_charts_" in line for line in lines)
