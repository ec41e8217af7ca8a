"""Incidents in the real database: every incident of a window stored, open or closed; re-runs update instead of
duplicating; a dispatcher's close is respected; detection from the database (rollup + alarm readings)."""

from __future__ import annotations

from datetime import timedelta

import polars as pl
import psycopg
from leak_helpers import T0, household_day, readings

from meterflow.config import Settings
from pipelines.leaks import leak_detection_flow, run_detection
from storage import alerts
from storage.flavor import ensure_partitions

H = timedelta(hours=1)
DAY = 24 * H


def insert(conn: psycopg.Connection, df: pl.DataFrame) -> None:
    ensure_partitions(conn, df.get_column("time").min(), df.get_column("time").max())  # type: ignore[arg-type]
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO readings (meter_id, time, total_m3, alarms) VALUES (%s, %s, %s, %s)",
                        df.select("meter_id", "time", "total_m3", "alarms").rows())
    conn.commit()


def leaky(days: int, on: list[tuple[int, int]], rate: float = 6.0, burst_day: int | None = None) -> list[float]:
    use = household_day() * days
    for a, b in on:
        for k in range(a * 24, b * 24):
            use[k] += rate
    if burst_day is not None:
        for k in range(burst_day * 24 + 10, burst_day * 24 + 18):
            use[k] += 900.0  # 7.2 m3 in 8 hours
    return use


def test_window_history_open_and_closed_and_reruns(clean_db: psycopg.Connection, settings: Settings) -> None:
    # a leak on days 1-5 (closed by the end: flow stopped), a burst on day 12 and a leak from day 20 (open)
    insert(clean_db, readings("m1", leaky(24, [(1, 5), (20, 24)], burst_day=12)))
    insert(clean_db, readings("m2", household_day() * 24))
    end = T0 + 24 * DAY
    run = run_detection(clean_db, settings, end, T0)
    assert run.stored == {"opened": 1, "updated": 0, "closed": 2, "stored": 3}
    got = [(a["kind"], a["state"], a["close_reason"], a["closed_by"]) for a in
           sorted(alerts.list_incidents(clean_db), key=lambda a: a["first_seen"])]
    assert got == [("leak", "closed", "flow_stopped", "detector"), ("burst", "closed", "flow_stopped", "detector"),
                   ("leak", "open", None, None)]
    burst = alerts.list_incidents(clean_db, kinds=["burst"])[0]
    assert abs(burst["volume_m3"] - 7.2) < 0.01
    # the same window again, and the hourly flow an hour later: the same rows updated, none new
    again = run_detection(clean_db, settings, end, T0)
    assert again.stored["opened"] == 0 and again.stored["stored"] == 3
    out = leak_detection_flow.fn(as_of=end + H, settings=settings)
    assert out["opened"] == 0
    assert clean_db.execute("SELECT count(*) FROM alerts").fetchone() == (3,)
    # filters of the list
    assert [a["kind"] for a in alerts.list_incidents(clean_db, state="open")] == ["leak"]
    assert len(alerts.list_incidents(clean_db, state="closed")) == 2
    assert len(alerts.list_incidents(clean_db, since=T0 + 10 * DAY)) == 2


def test_a_dispatchers_close_is_kept_and_later_flow_is_a_new_incident(clean_db: psycopg.Connection,
                                                                      settings: Settings) -> None:
    insert(clean_db, readings("m1", leaky(12, [(1, 12)])))
    run_detection(clean_db, settings, T0 + 5 * DAY, T0)
    (a,) = alerts.list_incidents(clean_db, state="open")
    # engineer i19's workflow closes it (the same columns: state, resolved_at, close_reason, closed_by)
    clean_db.execute("UPDATE alerts SET state = 'resolved', resolved_at = %s, close_reason = 'customer_informed',"
                     " closed_by = 'anna' WHERE id = %s", (T0 + 5 * DAY, a["id"]))
    clean_db.commit()
    run_detection(clean_db, settings, T0 + 12 * DAY, T0)
    rows = sorted(alerts.list_incidents(clean_db), key=lambda r: r["first_seen"])
    assert [(r["state"], r["close_reason"], r["closed_by"]) for r in rows] == [
        ("closed", "customer_informed", "anna"), ("open", None, None)]
    assert rows[1]["first_seen"] >= T0 + 5 * DAY


def test_detection_from_database_with_meter_alarms(clean_db: psycopg.Connection, settings: Settings) -> None:
    use = [v + 8.0 for v in household_day() * 3]
    insert(clean_db, readings("leaky", use, alarms={70: ["leak"], 71: ["leak"], 40: ["tamper"]}))
    insert(clean_db, readings("fine", household_day() * 3))
    as_of = T0 + 72 * H
    run = run_detection(clean_db, settings, as_of)
    assert run.meters == 2
    got = sorted((a["meter_id"], a["kind"], a["severity"], a["state"]) for a in alerts.list_incidents(clean_db))
    # the leak alarm is evidence of the leak incident, not an alert of its own; the tamper alarm is its own kind
    assert got == [("leaky", "leak", "warning", "open"), ("leaky", "meter_alarm:tamper", "warning", "closed")]
    leak = alerts.list_incidents(clean_db, kinds=["leak"])[0]
    assert leak["rate_l_h"] == 8.0 and "8 L/h (192 litres per day)" in leak["message"]


def test_hourly_runs_keep_one_row_per_incident(clean_db: psycopg.Connection, settings: Settings) -> None:
    """The flow's view: run every 12 h as the data arrives; a leak with pauses stays one row, closes after the
    gap, and the next leak is a new row."""
    use = leaky(40, [(2, 6), (8, 12), (30, 36)])
    insert(clean_db, readings("m1", use))
    seen_open = []
    for half_days in range(4, 76):  # to day 37.5: the second leak (days 30-36) still open
        end = T0 + half_days * 12 * H
        run_detection(clean_db, settings, end)
        seen_open.append(len(alerts.list_incidents(clean_db, state="open")))
    rows = sorted(alerts.list_incidents(clean_db), key=lambda r: r["first_seen"])
    assert [(r["kind"], r["state"], r["close_reason"]) for r in rows] == [
        ("leak", "closed", "flow_stopped"), ("leak", "open", None)]
    assert rows[0]["first_seen"] == T0 + 2 * DAY and rows[1]["first_seen"] == T0 + 30 * DAY
    assert max(seen_open) == 1
    # the first incident's volume: 6 L/h over its 8 days of evidence, counted once
    assert abs(rows[0]["volume_m3"] - 8 * 24 * 6 / 1000) < 1e-9


def test_registry_rollover_and_exchange_are_not_backflow_or_burst(clean_db: psycopg.Connection,
                                                                  settings: Settings) -> None:
    # a 4-digit register turning over (9999.6 -> 0.x m3), and a meter exchanged at local midnight of 4 June
    # (22:00 UTC): the old one read up to 20:59 UTC at 0.5 m3 more than the new one starts at
    roll = readings("ROLL", household_day() * 5).with_columns((pl.col("total_m3") + 9999.6) % 10000.0)
    old = readings("SWAP", (household_day() * 3)[:-3]).with_columns(pl.col("total_m3") + 0.5)
    new = readings("SWAP", household_day() * 2, start=T0 + 3 * DAY)
    insert(clean_db, pl.concat([roll, old, new]))
    run_detection(clean_db, settings, T0 + 5 * DAY, T0)
    # without the registry the exchange looks like water running backwards (the rollover is inferred anyway)
    assert [(a["meter_id"], a["kind"]) for a in alerts.list_incidents(clean_db)] == [("SWAP", "backflow")]
    clean_db.execute("DELETE FROM alerts")
    clean_db.execute("INSERT INTO meters (meter_id, register_digits, install_date) VALUES ('ROLL', 4, NULL),"
                     " ('SWAP', 8, '2026-06-04')")
    clean_db.commit()
    run_detection(clean_db, settings, T0 + 5 * DAY, T0)
    assert alerts.list_incidents(clean_db, min_severity="info") == []
