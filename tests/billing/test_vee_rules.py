"""Each billing/VEE rule on small DataFrames, with exact expected numbers (pure function, no database)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest

from analytics.vee.config import VeeConfig
from analytics.vee.core import compute_billing, fill_gaps, interval_frame, prepare_readings, validate_rows

PS, PE = date(2024, 3, 1), date(2024, 4, 1)  # 31 days
AS_OF = datetime(2024, 6, 1, tzinfo=UTC)


def t(day: int, hour: int = 0, month: int = 3, minute: int = 0) -> datetime:
    return datetime(2024, month, day, hour, minute, tzinfo=UTC)


def reads(rows: list[tuple[str, datetime, float]]) -> pl.DataFrame:
    return pl.DataFrame(
        {"meter_id": [r[0] for r in rows], "time": [r[1] for r in rows], "total_m3": [r[2] for r in rows]},
        schema={"meter_id": pl.String, "time": pl.Datetime("us", "UTC"), "total_m3": pl.Float64},
    )


def registry(*meters: dict[str, object]) -> pl.DataFrame:
    return pl.DataFrame(list(meters)) if meters else pl.DataFrame({"meter_id": ["M1"]})


def history(rows: list[tuple[str, date, date, float, str]]) -> pl.DataFrame:
    return pl.DataFrame(
        {"meter_id": [r[0] for r in rows], "period_start": [r[1] for r in rows], "period_end": [r[2] for r in rows],
         "consumption_m3": [r[3] for r in rows], "quality": [r[4] for r in rows]},
    )


def run(rd: pl.DataFrame, reg: pl.DataFrame | None = None, **kw: object) -> pl.DataFrame:
    out = compute_billing(rd, reg if reg is not None else registry(), PS, PE, kw.pop("config", VeeConfig()),  # type: ignore[arg-type]
                          as_of=AS_OF, **kw)  # type: ignore[arg-type]
    return out.results


def one(res: pl.DataFrame, meter: str = "M1") -> dict[str, object]:
    rows = res.filter(pl.col("meter_id") == meter).to_dicts()
    assert len(rows) == 1, rows
    return rows[0]


def daily(meter: str, start: float, per_day: float, days: range, hour: int = 0) -> list[tuple[str, datetime, float]]:
    base = datetime(2024, 3, 1, hour, tzinfo=UTC)
    return [(meter, base + timedelta(days=d), start + per_day * d) for d in days]


# -- rule 1: end - start; a period starts where the previous one ended
def test_rule1_end_minus_start_on_boundary_reads() -> None:
    r = one(run(reads([("M1", t(1), 100.0), ("M1", t(15), 110.0), ("M1", t(1, month=4), 131.5)])))
    assert (r["start_index_m3"], r["end_index_m3"], r["consumption_m3"]) == (100.0, 131.5, 31.5)
    assert r["quality"] == "ACTUAL" and r["exceptions"] == []


def test_rule1_start_is_previous_period_end() -> None:
    hist = history([("M1", date(2024, 2, 1), date(2024, 3, 1), 29.0, "ACTUAL")]).with_columns(
        pl.lit(99.0).alias("end_index_m3"))
    r = one(run(reads([("M1", t(1), 100.0), ("M1", t(1, month=4), 131.0)]), history=hist))
    assert r["start_index_m3"] == 99.0 and r["consumption_m3"] == 32.0
    assert "previous_period_end" in str(r["method"])


# -- rule 2: meter exchange
def test_rule2_meter_exchange_never_subtracts_across_meters() -> None:
    reg = registry(
        {"meter_id": "OLD", "premise_ref": "P1", "removal_date": date(2024, 3, 11), "removal_index_m3": 512.0,
         "register_digits": 5},
        {"meter_id": "NEW", "premise_ref": "P1", "install_date": date(2024, 3, 11), "install_index_m3": 3.0,
         "register_digits": 5},
    )
    rd = reads([("OLD", t(1), 500.0), ("OLD", t(10), 511.0), ("NEW", t(12), 4.0), ("NEW", t(1, month=4), 24.0)])
    res = run(rd, reg)
    old, new = one(res, "OLD"), one(res, "NEW")
    assert (old["start_index_m3"], old["end_index_m3"], old["consumption_m3"]) == (500.0, 512.0, 12.0)
    assert (old["period_start"], old["period_end"]) == (PS, date(2024, 3, 11))
    assert (new["start_index_m3"], new["end_index_m3"], new["consumption_m3"]) == (3.0, 24.0, 21.0)
    assert (new["period_start"], new["period_end"]) == (date(2024, 3, 11), PE)
    assert res["consumption_m3"].sum() == 33.0  # (512 - 500) + (24 - 3)
    assert "METER_EXCHANGE" in old["flags"] and json.loads(str(new["details"]))["premise_meters"] == ["NEW", "OLD"]


# -- rule 3: rollover
def test_rule3_rollover_on_register_digits() -> None:
    reg = registry({"meter_id": "M1", "register_digits": 5})
    r = one(run(reads([("M1", t(1), 99990.0), ("M1", t(16), 99999.0), ("M1", t(1, month=4), 15.0)]), reg))
    assert r["consumption_m3"] == 25.0  # 10^5 - 99990 + 15
    assert (r["start_index_m3"], r["end_index_m3"]) == (99990.0, 15.0)
    assert "ROLLOVER" in r["flags"] and r["quality"] == "EDITED" and r["exceptions"] == []
    assert r["pre_vee_consumption_m3"] == -99975.0


def test_rule3_rollover_implausible_against_history() -> None:
    reg = registry({"meter_id": "M1", "register_digits": 5})
    hist = history([("M1", date(2023, 3, 1), date(2023, 4, 1), 3.1, "ACTUAL")])  # 0.1 m3/day last year
    r = one(run(reads([("M1", t(1), 99990.0), ("M1", t(1, month=4), 15.0)]), reg, history=hist))
    assert r["consumption_m3"] == 25.0 and r["exceptions"] == ["ROLLOVER_IMPLAUSIBLE"]


# -- rule 4: other decreases
def test_rule4_decrease_is_an_exception_not_billed() -> None:
    r = one(run(reads([("M1", t(1), 100.0), ("M1", t(10), 110.0), ("M1", t(11), 108.0), ("M1", t(1, month=4), 120.0)])))
    assert r["exceptions"] == ["INDEX_DECREASE"]
    d = json.loads(str(r["details"]))
    assert d["n_decrease"] == 1 and d["decrease_m3"] == 2.0
    assert r["consumption_m3"] == 20.0  # net; the reverse 2 m3 is not billed (and never credited)


# -- rule 5: duplicates
def test_rule5_exact_duplicate_kept_once_conflict_is_exception() -> None:
    rd = reads([("M1", t(1), 100.0), ("M1", t(5), 104.0), ("M1", t(5), 104.0), ("M1", t(1, month=4), 131.0),
                ("M2", t(1), 10.0), ("M2", t(5), 14.0), ("M2", t(5), 15.0), ("M2", t(1, month=4), 41.0)])
    res = run(rd, registry({"meter_id": "M1"}, {"meter_id": "M2"}))
    m1, m2 = one(res, "M1"), one(res, "M2")
    assert m1["exceptions"] == [] and "DUPLICATE" in m1["flags"] and m1["consumption_m3"] == 31.0
    assert m2["exceptions"] == ["DUPLICATE_CONFLICT"] and m2["consumption_m3"] == 31.0
    assert json.loads(str(m2["details"]))["n_duplicate_conflict"] == 1


# -- rule 6: time order, future, clock steps
def test_rule6_future_rejected_and_non_increasing_rejected() -> None:
    rd = reads([("M1", t(1), 100.0), ("M1", t(10), 110.0), ("M1", t(5), 500.0),  # arrives late, older: rejected
                ("M1", t(1, month=4), 131.0), ("M1", datetime(2024, 7, 1, tzinfo=UTC), 140.0)])
    r = one(run(rd))
    assert r["consumption_m3"] == 31.0
    assert r["exceptions"] == ["FUTURE_TIME"] and "TIME_NOT_INCREASING" in r["flags"]


def test_rule6_clock_step_flagged() -> None:
    rows = [("M1", t(1) + timedelta(hours=h), 100.0 + h * 0.01) for h in range(48)]
    rows += [("M1", t(3) + timedelta(minutes=17), 100.5), ("M1", t(1, month=4), 107.0)]
    r = one(run(reads(rows)))
    assert "CLOCK_STEP" in r["flags"]


# -- rule 7: high / low
@pytest.mark.parametrize(("use", "expected"), [(31.0, []), (124.0, ["HIGH_USE"]), (3.1, ["LOW_USE"])])
def test_rule7_high_low_against_same_period_last_year(use: float, expected: list[str]) -> None:
    hist = history([("M1", date(2023, 3, 1), date(2023, 4, 1), 31.0, "ACTUAL"),   # 1 m3/day last year
                    ("M1", date(2024, 2, 1), date(2024, 3, 1), 290.0, "ACTUAL")])  # ignored: same period wins
    r = one(run(reads([("M1", t(1), 100.0), ("M1", t(1, month=4), 100.0 + use)]), history=hist))
    assert r["exceptions"] == expected
    assert json.loads(str(r["details"]))["reference"] == "same_period_last_year"


def test_rule7_falls_back_to_earlier_periods() -> None:
    hist = history([("M1", date(2024, 1, 1), date(2024, 2, 1), 31.0, "ACTUAL"),
                    ("M1", date(2024, 2, 1), date(2024, 3, 1), 29.0, "ACTUAL")])  # 60/60 = 1 m3/day
    r = one(run(reads([("M1", t(1), 100.0), ("M1", t(1, month=4), 194.0)]), history=hist))  # 3.03/day
    assert r["exceptions"] == ["HIGH_USE"]
    assert json.loads(str(r["details"]))["reference"] == "earlier_periods"


# -- rule 8: stuck and inactive
def test_rule8_stuck_meter() -> None:
    r = one(run(reads(daily("M1", 50.0, 0.0, range(32)))))
    assert r["exceptions"] == ["STUCK"] and r["consumption_m3"] == 0.0
    assert json.loads(str(r["details"]))["zero_use_days"] == 31.0
    ok = one(run(reads([*daily("M1", 50.0, 0.0, range(30)), ("M1", t(1, month=4), 51.0)])))
    assert ok["exceptions"] == []  # 29 days flat < 30


def test_rule8_use_on_inactive_meter() -> None:
    reg = registry({"meter_id": "M1", "removal_date": date(2024, 2, 1), "removal_index_m3": 10.0})
    r = one(run(reads([("M1", t(2), 10.0), ("M1", t(20), 12.5)]), reg))
    assert r["exceptions"] == ["USE_ON_INACTIVE"] and r["pre_vee_consumption_m3"] == 2.5
    assert r["consumption_m3"] is None


# -- rule 9: spike
def test_rule9_spike() -> None:
    rows = [("M1", t(1) + timedelta(hours=h), 100.0 + 0.01 * h) for h in range(24 * 31 + 1)]
    rows[100] = ("M1", rows[100][1], rows[100][2])
    rows = [(m, tt, v + (3.0 if i >= 100 else 0.0)) for i, (m, tt, v) in enumerate(rows)]
    r = one(run(reads(rows)))
    assert r["exceptions"] == ["SPIKE"]
    assert r["consumption_m3"] == 10.44  # 7.44 steady + 3.0 in the spike interval
    assert "JUMP" in r["flags"]


# -- rule 10: gaps
def test_rule10_short_gap_linear_and_exact_sum() -> None:
    rows = [("M1", t(1, h), 100.0 + h) for h in range(3)] + [("M1", t(1, 6), 105.0)]
    iv = interval_frame(validate_rows(prepare_readings(reads(rows)), VeeConfig(), AS_OF)[0],
                        pl.DataFrame({"meter_id": ["M1"], "register_digits": [5]}), VeeConfig())
    filled = fill_gaps(iv, VeeConfig())
    est = filled.filter(pl.col("quality") == "ESTIMATED")
    assert est["volume_m3"].to_list() == [0.75, 0.75, 0.75, 0.75]  # 3 m3 over 4 hours, linear
    assert est["method"].unique().to_list() == ["linear"]
    assert filled["volume_m3"].sum() == 5.0


def test_rule10_long_gap_from_similar_days_sums_exactly() -> None:
    # two days of hourly data: 0.1 m3/h from 06:00 to 18:00, nothing at night; then a 24 h gap of 1.3 m3
    rows = []
    v = 0.0
    for h in range(48):
        rows.append(("M1", t(1) + timedelta(hours=h), round(v, 6)))
        v += 0.1 if 6 <= (h % 24) < 18 else 0.0
    rows.append(("M1", t(1) + timedelta(hours=47 + 24), round(v + 1.3, 6)))
    iv = interval_frame(validate_rows(prepare_readings(reads(rows)), VeeConfig(), AS_OF)[0],
                        pl.DataFrame({"meter_id": ["M1"], "register_digits": [5]}), VeeConfig())
    est = fill_gaps(iv, VeeConfig()).filter(pl.col("quality") == "ESTIMATED")
    assert est.height == 24 and est["method"].unique().to_list() == ["similar_days"]
    assert est["volume_m3"].sum() == pytest.approx(1.3, abs=1e-12)
    night = est.filter(pl.col("start").dt.hour() < 6)["volume_m3"]
    assert night.sum() == 0.0
    day = est.filter((pl.col("start").dt.hour() >= 6) & (pl.col("start").dt.hour() < 18))["volume_m3"]
    assert day.round(9).unique().to_list() == [round(1.3 / 12, 9)]


# -- rule 11: missing end read
def test_rule11_estimate_from_previous_three_months() -> None:
    hist = history([("M1", date(2023, 12, 1), date(2024, 1, 1), 31.0, "ACTUAL"),
                    ("M1", date(2024, 1, 1), date(2024, 2, 1), 62.0, "ACTUAL"),
                    ("M1", date(2024, 2, 1), date(2024, 3, 1), 29.0, "ACTUAL")])  # 122 m3 / 91 days
    r = one(run(reads([("M1", t(1), 100.0), ("M1", t(21), 120.0)]), history=hist))
    assert r["quality"] == "ESTIMATED" and "avg_prev_3_months" in str(r["method"])
    assert r["consumption_m3"] == round(20.0 + 122.0 / 91 * 11, 3) == 34.747


def test_rule11_estimate_same_period_last_year_then_monthly_average() -> None:
    hist = history([("M1", date(2023, 3, 1), date(2023, 4, 1), 62.0, "ACTUAL")])
    r = one(run(reads([("M1", t(1), 100.0)]), history=hist))
    assert r["consumption_m3"] == 62.0 and "same_period_last_year" in str(r["method"])
    hist = history([("M1", date(2023, 5, 1), date(2023, 6, 1), 93.0, "ACTUAL")])  # 3/day, 10 months ago
    r = one(run(reads([("M1", t(1), 100.0)]), history=hist))
    assert r["consumption_m3"] == 93.0 and "last_year_monthly_average" in str(r["method"])
    r = one(run(reads([("M1", t(1), 100.0)])))
    assert r["exceptions"] == ["NO_END_READ"] and r["consumption_m3"] is None


# -- rule 12: boundary interpolation
def test_rule12_boundary_linear_between_reads() -> None:
    # reads 29 Feb 12:00 = 90 and 1 Mar 12:00 = 100 -> start at midnight 95; end 31 Mar 18:00 = 130, 1 Apr 06:00 = 136
    rd = reads([("M1", datetime(2024, 2, 29, 12, tzinfo=UTC), 90.0), ("M1", t(1, 12), 100.0),
                ("M1", t(31, 18), 130.0), ("M1", t(1, 6, month=4), 136.0)])
    r = one(run(rd))
    assert (r["start_index_m3"], r["end_index_m3"], r["consumption_m3"]) == (95.0, 133.0, 38.0)


def test_rule12_boundary_weighted_by_interval_profile() -> None:
    # hourly data with use only 08:00-09:00 (1 m3/h); a gap from 31 Mar 06:00 to 1 Apr 12:00 of 3 m3
    rows, v = [], 0.0
    cur = datetime(2024, 2, 28, tzinfo=UTC)
    while cur <= t(31, 6):
        rows.append(("M1", cur, v))
        v += 1.0 if cur.hour == 8 else 0.0
        cur += timedelta(hours=1)
    rows.append(("M1", t(1, 12, month=4), v + 3.0))
    r = one(run(reads(rows)))
    # the gap holds two 08:00 hours: one on 31 Mar (before the boundary) and one on 1 Apr -> half each
    assert r["end_index_m3"] == v + 1.5
    assert "interpolated_weighted" in str(r["method"])


# -- rule 13: tariff change
def test_rule13_tariff_split_with_read_that_day_and_prorated() -> None:
    rd = reads([("M1", t(1), 100.0), ("M1", t(11, 7), 113.0), ("M1", t(1, month=4), 131.0)])
    tariffs = pl.DataFrame({"effective_date": [date(2024, 3, 11)]})
    res = run(rd, tariffs=tariffs).sort("period_start")
    assert res["consumption_m3"].to_list() == [13.0, 18.0]
    assert res["period_end"][0] == date(2024, 3, 11) and "tariff_split:read" in res["method"][0]
    rd = reads([("M1", t(1), 100.0), ("M1", t(1, month=4), 131.0)])
    res = run(rd, tariffs=tariffs).sort("period_start")
    assert res["consumption_m3"].to_list() == [10.0, 21.0]  # 31 m3 prorated 10 days : 21 days
    assert "tariff_split:prorated_days" in res["method"][1]


# -- rule 14: quality, pre-VEE value, audit, consecutive estimates
def test_rule14_consecutive_estimates_and_audit() -> None:
    hist = history([("M1", date(2024, 1, 1), date(2024, 2, 1), 31.0, "ESTIMATED"),
                    ("M1", date(2024, 2, 1), date(2024, 3, 1), 29.0, "ESTIMATED")])
    out = compute_billing(reads([("M1", t(1), 100.0)]), registry(), PS, PE, VeeConfig(), history=hist, as_of=AS_OF)
    r = one(out.results)
    assert r["quality"] == "ESTIMATED" and r["consumption_m3"] == 31.0
    assert r["exceptions"] == ["CONSECUTIVE_ESTIMATES"]
    assert json.loads(str(r["details"]))["consecutive_estimates"] == 3
    assert set(out.audit["rule"]) == {"11", "14"}
    out2 = compute_billing(reads([("M1", t(1), 100.0)]), registry(), PS, PE, VeeConfig(max_consecutive_estimates=4),
                           history=hist, as_of=AS_OF)
    assert one(out2.results)["exceptions"] == []


def test_rule8_use_after_removal_inside_the_period() -> None:
    reg = registry({"meter_id": "M1", "removal_date": date(2024, 3, 11), "removal_index_m3": 512.0})
    r = one(run(reads([("M1", t(1), 500.0), ("M1", t(10), 511.0), ("M1", t(20), 515.0)]), reg))
    assert r["consumption_m3"] == 12.0 and r["exceptions"] == ["USE_ON_INACTIVE"]
    assert r["period_end"] == date(2024, 3, 11)


def test_rule6_late_manual_read_is_not_out_of_order() -> None:
    rd = reads([("M1", t(1), 100.0), ("M1", t(20), 120.0), ("M1", t(1, month=4), 131.0), ("M1", t(10), 110.0)])
    rd = rd.with_columns(pl.Series("source", ["wmbus", "wmbus", "wmbus", "manual"]))
    r = one(run(rd))
    assert "TIME_NOT_INCREASING" not in r["flags"] and r["consumption_m3"] == 31.0


def test_rule11_no_read_since_before_the_period_estimates_start_and_end() -> None:
    hist = history([("M1", date(2024, 2, 1), date(2024, 3, 1), 29.0, "ACTUAL")])  # 1 m3/day
    rd = reads([("M1", datetime(2024, 2, 10, tzinfo=UTC), 90.0), ("M1", datetime(2024, 2, 20, tzinfo=UTC), 100.0)])
    r = one(run(rd, history=hist))
    assert (r["start_index_m3"], r["end_index_m3"], r["consumption_m3"]) == (110.0, 141.0, 31.0)
    assert r["quality"] == "ESTIMATED"
    assert r["method"] == "start:estimated:avg_prev_3_months;end:estimated:avg_prev_3_months"
