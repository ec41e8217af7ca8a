"""Leak incidents on crafted series: one incident per leak through pauses, opened by the right rule at the right
time, never by one night; rollovers and meter exchanges are not backflow or bursts; the one DAIAD reader."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
from leak_helpers import T0, household_day, readings

from analytics.leaks import detectors as D
from analytics.leaks.config import LeakConfig
from analytics.leaks.hourly import hourly_use, unwrap_rollovers
from decoders.csv_readings import read_frame

TZ = "Europe/Warsaw"  # local 02-05 = 00-03 UTC in June
CFG = LeakConfig()
H = timedelta(hours=1)
D24 = 24


def leak_days(on: list[tuple[int, int]], days: int, rate: float = 5.0) -> list[float]:
    """A household's hourly use with a leak of `rate` L/h on the days [a, b) of each pair."""
    use = household_day() * days
    for a, b in on:
        for k in range(a * D24, b * D24):
            use[k] += rate
    return use


def leaks_of(det: pl.DataFrame) -> list[dict[str, object]]:
    return det.filter(pl.col("kind") == "leak").sort("start").to_dicts()


def test_running_toilet_with_pauses_is_one_incident() -> None:
    # a running toilet at 5 L/h: on 4 days, off 2, on 5, off 1, on 7 (pauses of 48 h and 24 h < 72 h)
    use = leak_days([(2, 6), (8, 13), (14, 21)], 23)
    det = D.detect_all(readings("toilet", use), CFG, TZ)
    inc = leaks_of(det)
    assert len(inc) == 1 and det.height == 1  # no burst, no separate continuous/night alerts
    i = inc[0]
    assert (i["start"], i["end"]) == (T0 + 48 * H, T0 + 21 * D24 * H)
    assert (i["rate_l_h"], i["severity"], i["state"], i["close_reason"]) == (5.0, "warning", "open", None)
    # the volume lost is the rate over the hours with evidence, counted once: (4 + 5 + 7) days x 24 h x 5 L
    assert abs(i["volume_m3"] - 16 * 24 * 5 / 1000) < 1e-9
    details = json.loads(str(i["details"]))
    assert details["evidence"]["nights"] == 16 and details["evidence"]["continuous_runs"] == 3


def test_pause_longer_than_the_gap_and_recurrence_closes_flow_stopped() -> None:
    use = leak_days([(1, 5), (25, 29)], 30)  # a pause of 20 days: two leaks
    inc = leaks_of(D.detect_all(readings("m", use), CFG, TZ))
    assert [(i["start"], i["state"], i["close_reason"]) for i in inc] == [
        (T0 + 24 * H, "closed", "flow_stopped"), (T0 + 25 * D24 * H, "open", None)]
    assert inc[0]["closed_at"] == T0 + 5 * D24 * H + 72 * H  # when the 72 h gap had passed
    # the same leak resuming within recurrence_days after a pause of 5 days is the same incident
    again = leaks_of(D.detect_all(readings("m", leak_days([(1, 5), (10, 14)], 16)), CFG, TZ))
    assert len(again) == 1 and again[0]["state"] == "open"
    # with recurrence off, the 5-day pause closes it and the resumed flow is a new incident
    off = leaks_of(D.detect_all(readings("m", leak_days([(1, 5), (10, 14)], 16)),
                                CFG.model_copy(update={"recurrence_days": 0}), TZ))
    assert [i["close_reason"] for i in off] == ["flow_stopped", None]


def test_one_night_is_evidence_not_an_incident_two_nights_are() -> None:
    base = household_day() * 4
    one = [v + (6.0 if k in (24, 25, 26) else 0.0) for k, v in enumerate(base)]
    assert D.detect_all(readings("m", one), CFG, TZ).is_empty()
    two = [v + (6.0 if k in (24, 25, 26, 48, 49, 50) else 0.0) for k, v in enumerate(base)]
    inc = leaks_of(D.detect_all(readings("m", two), CFG, TZ))
    assert len(inc) == 1
    assert (inc[0]["detected_at"], inc[0]["rate_l_h"]) == (T0 + 51 * H, 6.0)
    assert json.loads(str(inc[0]["details"]))["opened_by"] == "night_flow"


def test_early_detection_a_steady_night_inside_18_wet_hours() -> None:
    # a leak from 10:00 UTC on day 0: wet from hour 10, its first night ends at hour 27 (05:00 local), when the
    # run is 18 hours long: detected at hour 28, 18 h after the start, before the 24 h continuous-flow rule
    use = [v + (8.0 if k >= 10 else 0.0) for k, v in enumerate(household_day() * 4)]
    inc = leaks_of(D.detect_all(readings("m", use), CFG, TZ))
    assert len(inc) == 1
    assert (inc[0]["start"], inc[0]["detected_at"]) == (T0 + 10 * H, T0 + 28 * H)


def test_gaps_between_readings_do_not_hide_a_leak() -> None:
    # the meter misses 6 hours every day (10-16 UTC): the gap's mean rate still shows the leak
    use = leak_days([(1, 6)], 7, rate=6.0)
    r = readings("gappy", use).filter(~((pl.col("time").dt.hour() >= 10) & (pl.col("time").dt.hour() < 16)))
    inc = leaks_of(D.detect_all(r, CFG, TZ))
    assert len(inc) == 1 and inc[0]["rate_l_h"] == 6.0


def test_rollover_is_use_not_backflow_or_burst() -> None:
    # a 4-digit register (10^4 m3) turning over at 10 L/h
    times = [T0 + k * H for k in range(30)]
    idx = [(9999.9 + 0.01 * k) % 10000.0 for k in range(30)]
    r = pl.DataFrame({"meter_id": ["r"] * 30, "time": times, "total_m3": idx},
                     schema_overrides={"time": pl.Datetime("us", "UTC")})
    h = hourly_use(unwrap_rollovers(r, {"r": 4}))
    assert [round(v, 6) for v in h.get_column("use_l").drop_nulls().to_list()] == [10.0] * 29
    det = D.detect_all(r, CFG, TZ)
    assert det.filter(pl.col("kind").is_in(["backflow", "burst"])).is_empty()
    # without registry digits the register size is inferred from the index
    assert D.detect_all(r, CFG, TZ, digits=None).filter(pl.col("kind") == "backflow").is_empty()


def test_meter_exchange_is_no_backflow_and_closes_the_incident() -> None:
    use = leak_days([(1, 6)], 6)
    old = readings("x", use[: 3 * D24]).with_columns(pl.col("total_m3") + 500.0)
    new = readings("x", use[3 * D24:], start=T0 + 3 * D24 * H)
    swap = T0 + 3 * D24 * H - 30 * timedelta(seconds=1)
    det = D.detect_all(pl.concat([old, new]), CFG, TZ, breaks={"x": [swap]})
    assert det.filter(pl.col("kind").is_in(["backflow", "burst"])).is_empty()
    inc = leaks_of(det)
    assert (inc[0]["state"], inc[0]["close_reason"], inc[0]["closed_at"]) == ("closed", "meter_exchanged", swap)


def test_silent_is_info_and_not_a_dispatcher_alert() -> None:
    r = pl.DataFrame({"meter_id": ["s"] * 3, "time": [T0, T0 + 2 * H, T0 + 40 * H], "total_m3": [1.0, 1.0, 1.0]},
                     schema_overrides={"time": pl.Datetime("us", "UTC")})
    det = D.detect_all(r, CFG, TZ)
    assert det.get_column("kind").to_list() == ["silent"] and D.alerts_only(det).is_empty()


def test_one_daiad_reader_keeps_both_passes_of_the_repeated_autumn_hour(tmp_path: Path) -> None:
    # 30 Oct 2016, Madrid: 03:00 CEST -> 02:00 CET. First pass (summer time) first; from the first local time that
    # does not move forward, the rest of the hour is the second pass (standard time), even 02:50 after 02:05.
    text = ("user key;datetime;meter reading;diff\n"
            "u;30/10/2016 01:10:00;100;0\n"
            "u;30/10/2016 02:10:00;101;1\n"
            "u;30/10/2016 02:05:00;102;1\n"
            "u;30/10/2016 02:50:00;103;1\n"
            "u;30/10/2016 03:10:00;104;1\n")
    p = tmp_path / "d.csv"
    p.write_text(text)
    got = read_frame(p, "daiad")
    utc = [datetime(2016, 10, 29, 23, 10, tzinfo=UTC), datetime(2016, 10, 30, 0, 10, tzinfo=UTC),
           datetime(2016, 10, 30, 1, 5, tzinfo=UTC), datetime(2016, 10, 30, 1, 50, tzinfo=UTC),
           datetime(2016, 10, 30, 2, 10, tzinfo=UTC)]
    assert got.get_column("time").to_list() == utc
    assert [round(v, 6) for v in got.get_column("total_m3").to_list()] == [0.1, 0.101, 0.102, 0.103, 0.104]
