"""Rule 15 (sewage = main meter - garden sub-meters) and rule 13 per tariff group, exact numbers (pure)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import polars as pl

from analytics.vee.config import VeeConfig
from analytics.vee.core import BillingOutput, compute_billing

PS, PE = date(2024, 3, 1), date(2024, 4, 1)  # 31 days
AS_OF = datetime(2024, 6, 1, tzinfo=UTC)


def t(day: int, hour: int = 0, month: int = 3) -> datetime:
    return datetime(2024, month, day, hour, tzinfo=UTC)


def reads(rows: list[tuple[str, datetime, float]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema={"meter_id": pl.String, "time": pl.Datetime("us", "UTC"),
                                      "total_m3": pl.Float64}, orient="row")


def registry(*rows: dict[str, object]) -> pl.DataFrame:
    return pl.DataFrame(list(rows), infer_schema_length=None)


def month(meter: str, start: float, end: float) -> list[tuple[str, datetime, float]]:
    return [(meter, t(1), start), (meter, t(15), (start + end) / 2), (meter, t(1, month=4), end)]


def bill(rd: pl.DataFrame, reg: pl.DataFrame, **kw: object) -> BillingOutput:
    return compute_billing(rd, reg, PS, PE, VeeConfig(), as_of=AS_OF, **kw)  # type: ignore[arg-type]


def rows(out: BillingOutput, meter: str) -> list[dict[str, object]]:
    return out.results.filter(pl.col("meter_id") == meter).sort("segment_start").to_dicts()


def one(out: BillingOutput, meter: str) -> dict[str, object]:
    got = rows(out, meter)
    assert len(got) == 1, got
    return got[0]


def test_sewage_main_with_one_and_with_two_garden_sub_meters() -> None:
    reg = registry({"meter_id": "M1", "customer_ref": "C1", "premise_ref": "P1"},
                   {"meter_id": "G1", "role": "garden", "parent_meter_id": "M1", "premise_ref": "P1"},
                   {"meter_id": "M2"},
                   {"meter_id": "G2a", "role": "garden", "parent_meter_id": "M2"},
                   {"meter_id": "G2b", "role": "garden", "parent_meter_id": "M2"},
                   {"meter_id": "M3"})
    rd = reads([*month("M1", 100.0, 131.0), *month("G1", 10.0, 14.0), *month("M2", 200.0, 260.0),
                *month("G2a", 0.0, 5.0), *month("G2b", 50.0, 57.0), *month("M3", 7.0, 9.5)])
    out = bill(rd, reg)
    m1 = one(out, "M1")
    assert (m1["water_m3"], m1["consumption_m3"], m1["sewage_m3"]) == (31.0, 31.0, 27.0)
    assert (m1["customer_ref"], m1["premise_ref"], m1["role"]) == ("C1", "P1", "main")
    assert json.loads(str(m1["details"]))["garden_meters"] == ["G1"]
    g1 = one(out, "G1")
    assert (g1["water_m3"], g1["sewage_m3"], g1["role"]) == (4.0, 0.0, "garden")
    m2 = one(out, "M2")
    assert (m2["water_m3"], m2["sewage_m3"]) == (60.0, 48.0)  # 60 - 5 - 7
    assert json.loads(str(m2["details"]))["garden_m3"] == 12.0
    assert [one(out, g)["sewage_m3"] for g in ("G2a", "G2b")] == [0.0, 0.0]
    assert (one(out, "M3")["water_m3"], one(out, "M3")["sewage_m3"]) == (2.5, 2.5)  # no garden: sewage = water
    assert all(r["exceptions"] == [] for r in out.results.to_dicts())
    assert out.counts["GARDEN_DEDUCTED"] == 2


def test_garden_without_a_read_in_the_period_is_estimated_and_flagged() -> None:
    reg = registry({"meter_id": "M1"}, {"meter_id": "G1", "role": "garden", "parent_meter_id": "M1"})
    hist = pl.DataFrame({"meter_id": ["G1"], "period_start": [date(2024, 2, 1)], "period_end": [date(2024, 3, 1)],
                         "consumption_m3": [29.0], "quality": ["ACTUAL"]})  # 1 m3/day in February
    rd = reads([*month("M1", 100.0, 150.0), ("G1", t(1), 20.0)])  # the garden's last read: 1 March 00:00
    out = bill(rd, reg, history=hist)
    g1 = one(out, "G1")
    assert (g1["quality"], g1["start_index_m3"], g1["end_index_m3"], g1["water_m3"]) == ("ESTIMATED", 20.0, 51.0,
                                                                                        31.0)
    assert g1["method"] == "start:actual_read;end:estimated:avg_prev_3_months"
    m1 = one(out, "M1")
    assert (m1["quality"], m1["water_m3"], m1["sewage_m3"]) == ("ACTUAL", 50.0, 19.0)
    assert "GARDEN_ESTIMATED" in m1["flags"] and m1["exceptions"] == []


def test_gardens_exceeding_the_main_meter_raise_an_exception_and_sewage_is_zero() -> None:
    reg = registry({"meter_id": "M1"}, {"meter_id": "G1", "role": "garden", "parent_meter_id": "M1"},
                   {"meter_id": "G2", "role": "garden", "parent_meter_id": "M1"})
    rd = reads([*month("M1", 0.0, 10.0), *month("G1", 0.0, 6.0), *month("G2", 0.0, 6.5)])
    out = bill(rd, reg)
    m1 = one(out, "M1")
    assert (m1["water_m3"], m1["sewage_m3"], m1["exceptions"]) == (10.0, 0.0, ["GARDEN_EXCEEDS_MAIN"])
    assert json.loads(str(m1["details"]))["garden_m3"] == 12.5
    assert out.audit.filter(pl.col("rule") == "15").select("meter_id", "action").rows() == [("M1", "exception")]
    assert out.counts["GARDEN_EXCEEDS_MAIN"] == 1


def test_tariff_change_of_one_group_splits_only_that_groups_meters() -> None:
    reg = registry({"meter_id": "T1", "tariff_group": "G1"}, {"meter_id": "T2", "tariff_group": "G2"},
                   {"meter_id": "T3"})
    same = [(100.0, t(1)), (113.0, t(11, 7)), (131.0, t(1, month=4))]
    rd = reads([(m, when, v) for m in ("T1", "T2", "T3") for v, when in same])
    tariffs = pl.DataFrame({"effective_date": [date(2024, 3, 11), date(2024, 3, 20)],
                            "tariff_group": ["G1", "default"]})
    out = bill(rd, reg, tariffs=tariffs)
    t1 = rows(out, "T1")
    assert [(r["segment_start"], r["segment_end"], r["consumption_m3"]) for r in t1] == [
        (date(2024, 3, 1), date(2024, 3, 11), 13.0), (date(2024, 3, 11), date(2024, 4, 1), 18.0)]
    assert "tariff_split:read" in str(t1[0]["method"]) and t1[0]["tariff_group"] == "G1"
    t2 = one(out, "T2")  # group G2: no change, one row
    assert (t2["segment_start"], t2["segment_end"], t2["consumption_m3"]) == (PS, PE, 31.0)
    t3 = rows(out, "T3")  # no group = "default": split on 20 March, 31 m3 prorated 19 : 12 days
    assert [(r["segment_end"], r["consumption_m3"]) for r in t3] == [(date(2024, 3, 20), 19.0),
                                                                     (PE, 12.0)]
    assert t3[0]["tariff_group"] == "default" and "tariff_split:prorated_days" in str(t3[0]["method"])


def test_split_main_meter_shares_its_sewage_over_the_segments() -> None:
    reg = registry({"meter_id": "M1", "tariff_group": "G1"},
                   {"meter_id": "G1", "role": "garden", "parent_meter_id": "M1", "tariff_group": "G9"})
    rd = reads([("M1", t(1), 100.0), ("M1", t(11, 7), 113.0), ("M1", t(1, month=4), 131.0),
                *month("G1", 10.0, 14.0)])
    out = bill(rd, reg, tariffs=pl.DataFrame({"effective_date": [date(2024, 3, 11)], "tariff_group": ["G1"]}))
    m1 = rows(out, "M1")
    assert [(r["water_m3"], r["sewage_m3"]) for r in m1] == [(13.0, 11.323), (18.0, 15.677)]  # 27 m3 as 13 : 18
    assert one(out, "G1")["sewage_m3"] == 0.0


def test_meter_exchange_together_with_a_tariff_change() -> None:
    reg = registry({"meter_id": "B", "premise_ref": "P2", "removal_date": date(2024, 3, 11), "removal_index_m3": 512.0},
                   {"meter_id": "C", "premise_ref": "P2", "install_date": date(2024, 3, 11), "install_index_m3": 3.0})
    rd = reads([("B", t(1), 500.0), ("B", t(10), 511.0), ("C", t(12), 4.0), ("C", t(1, month=4), 24.0)])
    out = bill(rd, reg, tariffs=pl.DataFrame({"effective_date": [date(2024, 3, 15)]}))
    b = one(out, "B")  # removed before the change: one row up to the removal index
    assert (b["segment_start"], b["segment_end"], b["start_index_m3"], b["end_index_m3"], b["sewage_m3"]) == (
        PS, date(2024, 3, 11), 500.0, 512.0, 12.0)
    c = rows(out, "C")  # installed 11 March at 3.0; no read on 15 March: 21 m3 prorated 4 : 17 days
    assert [(r["segment_start"], r["segment_end"], r["start_index_m3"], r["end_index_m3"], r["sewage_m3"])
            for r in c] == [(date(2024, 3, 11), date(2024, 3, 15), 3.0, 7.0, 4.0),
                            (date(2024, 3, 15), PE, 7.0, 24.0, 17.0)]
    assert all("METER_EXCHANGE" in r["flags"] for r in [b, *c])


def test_main_meter_exchanged_with_its_garden_and_a_garden_exchange() -> None:
    """The old main meter B and its successor C share premise P2: the garden's 10 m3 come off their 33 m3."""
    reg = registry({"meter_id": "B", "premise_ref": "P2", "removal_date": date(2024, 3, 11), "removal_index_m3": 512.0},
                   {"meter_id": "C", "premise_ref": "P2", "install_date": date(2024, 3, 11), "install_index_m3": 3.0},
                   {"meter_id": "GB", "premise_ref": "P2", "role": "garden", "parent_meter_id": "B",
                    "removal_date": date(2024, 3, 20), "removal_index_m3": 6.0},
                   {"meter_id": "GC", "premise_ref": "P2", "role": "garden", "parent_meter_id": "C",
                    "install_date": date(2024, 3, 20), "install_index_m3": 0.0})
    rd = reads([("B", t(1), 500.0), ("B", t(10), 511.0), ("C", t(12), 4.0), ("C", t(1, month=4), 24.0),
                ("GB", t(1), 0.0), ("GB", t(19), 6.0), ("GC", t(25), 2.0), ("GC", t(1, month=4), 4.0)])
    out = bill(rd, reg)
    got = {m: (one(out, m)["water_m3"], one(out, m)["sewage_m3"]) for m in ("B", "C", "GB", "GC")}
    # mains 12 + 21 = 33 m3, gardens 6 + 4 = 10 m3: sewage 23 shared 12 : 21
    assert got == {"B": (12.0, 8.364), "C": (21.0, 14.636), "GB": (6.0, 0.0), "GC": (4.0, 0.0)}
    assert json.loads(str(one(out, "C")["details"]))["garden_meters"] == ["GB", "GC"]
    assert all("METER_EXCHANGE" in one(out, m)["flags"] for m in ("B", "C", "GB", "GC"))
