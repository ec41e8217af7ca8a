"""Chart queries on the seeded fleet, and the figure builders on empty and real frames."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta

import polars as pl
import psycopg
import pytest
from dash_seed import NOW, Seeded

from dashboards import figures
from storage import chart_queries as q

TODAY = date(2026, 3, 1)


@pytest.fixture
def conn(seeded: Seeded) -> Iterator[psycopg.Connection]:
    with psycopg.connect(seeded.dsn) as c:
        yield c


def test_daily_consumption_is_the_difference_of_last_indexes_and_gaps_are_marked(conn: psycopg.Connection) -> None:
    daily = q.meter_daily(conn, "M1", TODAY - timedelta(days=30), TODAY)
    assert daily.height == 30
    lasts = conn.execute(
        "SELECT last_m3 FROM consumption_daily WHERE meter_id = 'M1' AND bucket < '2026-03-01 00:00+01'"
        " ORDER BY bucket DESC LIMIT 2").fetchall()
    assert daily["consumption_m3"][-1] == pytest.approx(lasts[0][0] - lasts[1][0])
    missing = daily.filter(pl.col("missing"))["day"].to_list()
    assert missing == [date(2026, 2, 9), date(2026, 2, 10)]  # the 3-day hole covers two whole local days
    after = daily.filter(pl.col("after_gap"))
    assert after["day"].to_list() == [date(2026, 2, 11)]
    typical = daily.filter(~pl.col("missing") & ~pl.col("after_gap"))["consumption_m3"].median()
    assert after["consumption_m3"][0] > 2 * float(typical)  # type: ignore[arg-type]  # the volume of the missing days lands there


def test_coverage_freshness_and_alerts(conn: psycopg.Connection) -> None:
    cov = {r["district"]: (r["heard"], r["meters"]) for r in q.coverage_by_district(conn, NOW).to_dicts()}
    assert cov == {"North": (2, 2), "South": (0, 2), "East": (0, 1)}
    gw = {r["gateway"]: (r["heard"], r["meters"]) for r in q.coverage_by_gateway(conn, NOW).to_dicts()}
    assert gw == {"GW1": (2, 2), "GW2": (0, 1)}
    ages, fresh = q.freshness(conn, NOW)
    assert dict(zip(ages["age"], ages["meters"], strict=True)) == {
        "< 1 h": 2, "1-6 h": 0, "6-24 h": 0, "1-7 d": 1, "> 7 d": 0, "never": 2}
    assert fresh["newest_reading"] == NOW
    kinds = {r["kind"]: r for r in q.open_alerts_by_kind(conn, NOW).to_dicts()}
    assert kinds["continuous_flow"]["volume_lost_m3"] == pytest.approx(30 * 240 / 1000)
    assert kinds["silent"]["alerts"] == 1
    assert q.leak_status(conn, ["M1", "M2"], NOW)["meter_id"].to_list() == ["M2"]
    assert q.leak_status(conn, ["M3"], NOW).is_empty()
    due, total = q.verification_due(conn, NOW, 90)
    assert due["meter_id"].to_list() == ["M5", "M4"] and total == 2
    dead = q.dead_letters_by_reason(conn, NOW)
    assert dead.row(0)[:2] == ("no_key", 3)


def test_district_night_flow_shows_the_leak(conn: psycopg.Connection) -> None:
    dd = q.district_daily(conn, ["North"], TODAY - timedelta(days=30), TODAY)
    before = dd.filter(pl.col("day") < TODAY - timedelta(days=12))["night_flow_l_h"].mean()
    during = dd.filter(pl.col("day") > TODAY - timedelta(days=9))["night_flow_l_h"].mean()
    assert during - before == pytest.approx(30, abs=5)  # type: ignore[operator]
    assert q.top_districts(conn, TODAY - timedelta(days=30), TODAY, 2) == ["North", "South"]


def test_customer_monthly_has_no_volume_where_no_data(conn: psycopg.Connection) -> None:
    monthly = q.customer_monthly(conn, ["M1", "M2"], date(2024, 11, 1), date(2025, 3, 1))
    rows = {r["month"]: r for r in monthly.to_dicts()}
    assert rows[date(2024, 12, 1)]["consumption_m3"] is None and rows[date(2024, 12, 1)]["days_with_data"] == 0
    assert rows[date(2025, 2, 1)]["days_with_data"] == 28 and rows[date(2025, 2, 1)]["consumption_m3"] > 0
    now = q.customer_monthly(conn, ["M1"], date(2026, 2, 1), TODAY + timedelta(days=1)).to_dicts()
    assert [(r["month"], r["days"], r["days_elapsed"]) for r in now] == [
        (date(2026, 2, 1), 28, 28), (date(2026, 3, 1), 31, 1)]
    assert now[0]["days_with_data"] == 26  # two days missing in February


def test_figure_builders_handle_empty_frames(conn: psycopg.Connection) -> None:
    empty_cov = pl.DataFrame(schema={"district": pl.Utf8, "meters": pl.Int64, "heard": pl.Int64, "share": pl.Float64})
    for fig in (figures.coverage_figure(empty_cov, "district"),
                figures.alerts_by_kind_figure(q.open_alerts_by_kind(conn, NOW - timedelta(days=400))),
                figures.dead_letters_figure(q.dead_letters_by_reason(conn, NOW - timedelta(days=400))),
                figures.district_consumption_figure(q.district_daily(conn, [], TODAY, TODAY))):
        assert fig["layout"]["annotations"] and "no" in fig["layout"]["annotations"][0]["text"]
    daily = q.meter_daily(conn, "M2", TODAY - timedelta(days=30), TODAY)
    fig = figures.meter_figure(daily, daily, q.meter_alerts(conn, "M2", NOW - timedelta(days=30), NOW),
                               q.meter_vee_flags(conn, "M2", TODAY - timedelta(days=30), TODAY), "M2")
    assert {t["name"] for t in fig["data"]} >= {"index", "consumption", "same period last year"}
