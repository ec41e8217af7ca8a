"""The alerts lifecycle on the real database, and detection from the database (rollup + alarm readings)."""

from __future__ import annotations

from datetime import timedelta

import polars as pl
import psycopg
from leak_helpers import T0, household_day, readings

from analytics.leaks.detectors import DETECTION_SCHEMA
from meterflow.config import Settings
from pipelines.leaks import leak_detection_flow, run_detection
from storage import alerts
from storage.flavor import ensure_partitions

H = timedelta(hours=1)


def insert(conn: psycopg.Connection, df: pl.DataFrame) -> None:
    ensure_partitions(conn, df.get_column("time").min(), df.get_column("time").max())  # type: ignore[arg-type]
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO readings (meter_id, time, total_m3, alarms) VALUES (%s, %s, %s, %s)",
                        df.select("meter_id", "time", "total_m3", "alarms").rows())
    conn.commit()


def det(meter: str, kind: str, start_h: int, end_h: int, rate: float = 5.0) -> dict[str, object]:
    return {"meter_id": meter, "kind": kind, "severity": "warning", "start": T0 + start_h * H,
            "end": T0 + end_h * H, "detected_at": T0 + (start_h + 24) * H, "valid_until": T0 + end_h * H,
            "rate_l_h": rate, "volume_m3": rate * (end_h - start_h) / 1000, "details": "{}"}


def frame(*rows: dict[str, object]) -> pl.DataFrame:
    return pl.DataFrame(list(rows), schema=DETECTION_SCHEMA)


def test_lifecycle_open_update_resolve_reopen(clean_db: psycopg.Connection) -> None:
    r1 = alerts.sync(clean_db, frame(det("m1", "continuous_flow", 0, 30)), T0 + 30 * H, ["m1", "m2"])
    assert r1.as_dict() == {"opened": 1, "updated": 0, "resolved": 0}
    r2 = alerts.sync(clean_db, frame(det("m1", "continuous_flow", 0, 31, rate=6.0)), T0 + 31 * H, ["m1", "m2"])
    assert r2.as_dict() == {"opened": 0, "updated": 1, "resolved": 0}
    rows = alerts.list_alerts(clean_db)
    assert len(rows) == 1
    a = rows[0]
    assert (a["state"], a["first_seen"], a["last_seen"], a["rate_l_h"]) == ("open", T0, T0 + 31 * H, 6.0)
    assert "6 L/h (144 litres per day)" in a["message"]
    # the condition stopped 10 h before the next run: resolved
    r3 = alerts.sync(clean_db, frame(det("m1", "continuous_flow", 0, 31)), T0 + 41 * H, ["m1", "m2"])
    assert r3.as_dict() == {"opened": 0, "updated": 0, "resolved": 1}
    # a new episode later is a new alert; the resolved one stays as history
    r4 = alerts.sync(clean_db, frame(det("m1", "continuous_flow", 60, 90)), T0 + 90 * H, ["m1"])
    assert r4.opened == 1
    states = sorted(r["state"] for r in alerts.list_alerts(clean_db))
    assert states == ["open", "resolved"]
    assert len(alerts.list_alerts(clean_db, state="open", kinds=["continuous_flow"])) == 1


def test_detection_from_database_with_meter_alarms(clean_db: psycopg.Connection, settings: Settings) -> None:
    use = [v + 8.0 for v in household_day() * 3]
    insert(clean_db, readings("leaky", use, alarms={70: ["leak"], 71: ["leak"]}))
    insert(clean_db, readings("fine", household_day() * 3))
    as_of = T0 + 72 * H
    out = run_detection(clean_db, settings, as_of)
    assert out["meters"] == 2 and out["opened"] == 3 and out["resolved"] == 0
    got = sorted((a["meter_id"], a["kind"], a["severity"]) for a in alerts.list_alerts(clean_db))
    assert got == [("leaky", "continuous_flow", "warning"), ("leaky", "meter_alarm:leak", "critical"),
                   ("leaky", "night_flow", "warning")]
    cont = next(a for a in alerts.list_alerts(clean_db) if a["kind"] == "continuous_flow")
    assert cont["rate_l_h"] == 8.0
    # the hourly flow an hour later: same alerts updated, none new
    out2 = leak_detection_flow.fn(as_of=as_of + timedelta(minutes=59), settings=settings)
    assert (out2["opened"], out2["updated"]) == (0, 3)
    assert len(alerts.list_alerts(clean_db)) == 3
