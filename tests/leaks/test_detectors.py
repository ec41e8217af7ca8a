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


def test_continuous_flow_exact_episode_rate_and_delay() -> None:
    days = household_day() * 4
    # leak from hour 32 to 93 (exclusive); hours 31 and 93 are dry in the household's own pattern
    use = [v + (3.0 if 32 <= k < 93 else 0.0) for k, v in enumerate(days)]
    det = D.continuous_flow(hourly_use(readings("m1", use)), CFG, TZ)
    assert det.height == 1
    row = det.row(0, named=True)
    # first qualifying 24 h window: hours 32..55; the last one ends at hour 92
    assert row["start"] == T0 + 32 * H and row["end"] == T0 + 93 * H
    assert row["detected_at"] == T0 + 56 * H
    assert row["rate_l_h"] == 3.0  # night hours (00-03 UTC) hold only the leak
    assert abs(row["volume_m3"] - 3.0 * 61 / 1000) < 1e-9
    assert row["severity"] == "warning"


def test_continuous_flow_needs_24_wet_hours() -> None:
    use = household_day() * 3  # dry every night
    assert D.continuous_flow(hourly_use(readings("m1", use)), CFG, TZ).is_empty()
    leak23 = [v + (5.0 if 32 <= k < 55 else 0.0) for k, v in enumerate(use)]  # 23 h only, dry around
    assert D.continuous_flow(hourly_use(readings("m1", leak23)), CFG, TZ).is_empty()


def test_night_flow_one_night_info_then_confirmed() -> None:
    base = household_day() * 4
    # local 02-05 = 00-03 UTC; hours 24-26 and 48-50 are the 2nd and 3rd nights
    one = [v + (4.0 if k in (24, 25, 26) else 0.0) for k, v in enumerate(base)]
    det = D.night_flow(hourly_use(readings("m1", one)), CFG, TZ)
    assert det.height == 1
    row = det.row(0, named=True)
    assert (row["start"], row["end"], row["detected_at"]) == (T0 + 24 * H, T0 + 27 * H, T0 + 27 * H)
    assert row["rate_l_h"] == 4.0 and row["severity"] == "info"
    assert row["valid_until"] == T0 + 51 * H
    two = [v + (4.0 if k in (24, 25, 26, 48, 49, 50) else 0.0) for k, v in enumerate(base)]
    row = D.night_flow(hourly_use(readings("m1", two)), CFG, TZ).row(0, named=True)
    assert (row["start"], row["end"], row["detected_at"]) == (T0 + 24 * H, T0 + 51 * H, T0 + 27 * H)
    assert row["severity"] == "warning" and row["details"] == '{"nights": 2}'


def test_night_flow_rejects_irrigation_and_gaps() -> None:
    base = household_day() * 3
    irrigation = [v + {24: 3.0, 25: 400.0, 26: 300.0}.get(k, 0.0) for k, v in enumerate(base)]
    assert D.night_flow(hourly_use(readings("m1", irrigation)), CFG, TZ).is_empty()
    below = [v + (1.0 if k in (24, 25, 26) else 0.0) for k, v in enumerate(base)]
    assert D.night_flow(hourly_use(readings("m1", below)), CFG, TZ).is_empty()


def test_burst_hour_above_history_and_day_above_typical() -> None:
    use = household_day() * 20
    use[20 * 24 - 10] += 800.0  # day 19, 14 UTC
    det = D.burst(hourly_use(readings("m1", use)), CFG, TZ)
    assert det.height == 1
    row = det.row(0, named=True)
    # the day (local) is also 800 L above its typical 120 L: one merged episode, the local day wins the span
    assert row["rate_l_h"] == 800.0 and row["severity"] == "critical"
    assert row["start"] <= T0 + (20 * 24 - 10) * H < row["end"]
    assert row["details"] == '{"basis": "day+hour"}'


def test_burst_index_jump() -> None:
    use = household_day() * 2
    use[31] += 6000.0
    det = D.burst(hourly_use(readings("m1", use)), CFG, TZ)
    assert det.height == 1 and det.row(0, named=True)["start"] == T0 + 31 * H
    assert det.row(0, named=True)["rate_l_h"] == 6000.0


def test_backflow_index_decrease() -> None:
    use = household_day() * 2
    use[30] = -20.0
    use[31] = -2.0  # within the threshold: no backflow
    det = D.backflow(hourly_use(readings("m1", use)), CFG)
    assert det.height == 1
    row = det.row(0, named=True)
    assert (row["start"], row["end"], row["rate_l_h"], row["volume_m3"]) == (T0 + 30 * H, T0 + 31 * H, 20.0, 0.02)
    assert row["details"] == '{"reset_suspected": false}'


def test_stuck_after_occupied_days() -> None:
    use = household_day() * 10 + [0.0] * 24 * 20
    det = D.stuck(hourly_use(readings("m1", use)), CFG, TZ)
    assert det.height == 1
    row = det.row(0, named=True)
    # zero days begin with local day 10 (its midnight is 22:00 UTC the evening before) and run to local
    # day 29; local day 30 has only 2 hours of data, not enough to count
    assert row["start"] == T0 + timedelta(days=10) - 2 * H
    assert row["detected_at"] == row["start"] + timedelta(days=15)
    assert row["details"] == '{"days": 20, "typical_l_day": 120.0}'
    assert D.stuck(hourly_use(readings("m1", [0.0] * 24 * 30)), CFG, TZ).is_empty()  # never occupied


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
    assert sorted(det.get_column("kind").to_list()) == ["continuous_flow", "night_flow"]
    rows = D.to_json_rows(det)
    assert {"meter_id", "kind", "start", "end", "rate_l_h", "volume_m3"} <= set(rows[0])
    assert all(r["rate_l_h"] == 6.0 for r in rows)


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
