"""Every detector on crafted series with exact expected outcomes."""

from __future__ import annotations

from datetime import timedelta

import polars as pl
from leak_helpers import T0, household_day, readings

from analytics.leaks import detectors as D
from analytics.leaks.config import LeakConfig
from analytics.leaks.hourly import hourly_use

TZ = "Europe/Warsaw"
CFG = LeakConfig()
H = timedelta(hours=1)


def test_hourly_use_spreads_short_gaps_and_leaves_long_ones_unknown() -> None:
    r = pl.DataFrame({"meter_id": ["a"] * 5,
                      "time": [T0, T0 + H, T0 + 3 * H, T0 + 8 * H, T0 + 8 * H],  # duplicate last row
                      "total_m3": [1.0, 1.002, 1.008, 1.010, 1.010]},
                     schema_overrides={"time": pl.Datetime("us", "UTC")})
    h = hourly_use(r)
    assert h.get_column("hour").to_list() == [T0 + k * H for k in range(9)]
    assert [None if v is None else round(v, 6) for v in h.get_column("use_l").to_list()] == \
        [None, 2.0, 3.0, 3.0, None, None, None, None, None]
    assert h.get_column("n").to_list() == [1, 1, 0, 1, 0, 0, 0, 0, 1]


def test_burst_hour_above_history_and_day_above_typical() -> None:
    use = household_day() * 20
    use[20 * 24 - 10] += 3500.0  # day 19, 14 UTC
    det = D.burst(hourly_use(readings("m1", use)), CFG, TZ)
    assert det.height == 1
    row = det.row(0, named=True)
    # the day (local) is also 3500 L above its typical 120 L: one merged episode, the local day wins the span
    assert row["rate_l_h"] == 3500.0 and row["severity"] == "critical"
    assert row["start"] <= T0 + (20 * 24 - 10) * H < row["end"]
    assert row["details"] == '{"basis": "day+hour"}'
    # a bath-sized hour (800 L) above a quiet history is no burst: it loses less than burst_min_m3
    small = household_day() * 20
    small[20 * 24 - 10] += 800.0
    assert D.burst(hourly_use(readings("m1", small)), CFG, TZ).is_empty()


def test_burst_index_jump() -> None:
    use = household_day() * 2
    use[31] += 6000.0
    det = D.burst(hourly_use(readings("m1", use)), CFG, TZ)
    assert det.height == 1 and det.row(0, named=True)["start"] == T0 + 31 * H
    assert det.row(0, named=True)["rate_l_h"] == 6000.0


def test_backflow_index_decrease() -> None:
    use = household_day() * 2
    use[30] = -80.0
    use[31] = -20.0  # within the threshold (register jitter): no backflow
    det = D.backflow(hourly_use(readings("m1", use)), CFG)
    assert det.height == 1
    row = det.row(0, named=True)
    assert (row["start"], row["end"], row["rate_l_h"], row["volume_m3"]) == (T0 + 30 * H, T0 + 31 * H, 80.0, 0.08)


def test_stuck_after_occupied_days() -> None:
    use = household_day() * 10 + [0.0] * 24 * 35
    det = D.stuck(hourly_use(readings("m1", use)), CFG, TZ)
    assert det.height == 1
    row = det.row(0, named=True)
    # zero days begin with local day 10 (its midnight is 22:00 UTC the evening before) and run to local
    # day 44; local day 45 has only 2 hours of data, not enough to count
    assert row["start"] == T0 + timedelta(days=10) - 2 * H
    assert row["detected_at"] == row["start"] + timedelta(days=30)
    assert row["details"] == '{"days": 35, "typical_l_day": 120.0}'
    assert D.stuck(hourly_use(readings("m1", [0.0] * 24 * 40)), CFG, TZ).is_empty()  # never occupied


def test_silent_gaps_and_tail() -> None:
    r = pl.DataFrame({"meter_id": ["a"] * 3, "time": [T0, T0 + 2 * H, T0 + 32 * H], "total_m3": [1.0, 1.0, 1.0]},
                     schema_overrides={"time": pl.Datetime("us", "UTC")})
    det = D.silent(r, CFG, as_of=T0 + 60 * H)
    assert [(x["start"], x["end"], x["detected_at"]) for x in det.sort("start").iter_rows(named=True)] == [
        (T0 + 2 * H, T0 + 32 * H, T0 + 26 * H), (T0 + 32 * H, T0 + 60 * H, T0 + 56 * H)]
    assert D.silent(r, CFG, as_of=T0 + 40 * H).height == 1


def test_meter_alarms_runs_and_severity() -> None:
    r = readings("m1", [1.0] * 10, alarms={2: ["leak"], 3: ["leak", "low_battery"], 4: ["LEAK"], 8: ["leak"]})
    det = D.meter_alarms(r).sort("kind", "start")
    got = [(x["kind"], x["start"], x["end"], x["severity"]) for x in det.iter_rows(named=True)]
    t = [T0 + timedelta(hours=k, minutes=59) for k in range(10)]
    assert got == [("meter_alarm:leak", t[2], t[4], "critical"), ("meter_alarm:leak", t[8], t[8], "critical"),
                   ("meter_alarm:low_battery", t[3], t[3], "info")]
    merged = D.merge(det, 24)
    assert merged.height == 2  # the two leak runs are 4 h apart: one continuing condition


def test_detect_all_on_leaking_home() -> None:
    use = [v + 6.0 for v in household_day() * 3]
    det = D.detect_all(readings("m1", use), CFG, TZ)
    assert det.get_column("kind").to_list() == ["leak"]
    rows = D.to_json_rows(det, TZ)
    assert {"meter_id", "kind", "severity", "state", "start", "end", "rate_l_h", "volume_m3"} <= set(rows[0])
    assert (rows[0]["rate_l_h"], rows[0]["severity"], rows[0]["state"]) == (6.0, "warning", "open")
    assert rows[0]["start"] == "2026-06-01T02:00:00+02:00"  # local time with its offset


def test_cancelling_index_excursion_is_a_glitch_not_backflow_or_burst() -> None:
    use = household_day() * 20
    use[200] = -12276.0  # an export interleaving a second series: down, then back up within 2 h
    use[201] = 9225.0
    use[202] = 3112.0
    h = hourly_use(readings("m1", use))
    assert D.mark_glitches(h, CFG).filter(pl.col("glitch")).get_column("hour").to_list() == [
        T0 + 200 * H, T0 + 201 * H, T0 + 202 * H]
    assert D.backflow(h, CFG).is_empty() and D.burst(h, CFG, TZ).is_empty()
    real = household_day() * 20
    real[200] = -300.0  # a decrease that stays: backflow
    assert D.backflow(hourly_use(readings("m1", real)), CFG).height == 1
