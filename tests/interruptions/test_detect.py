"""The detector on a simulated area with known cuts, outages and dry alarms (pure: no database)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import polars as pl
import pytest

from analytics.interruptions.config import InterruptionConfig
from analytics.interruptions.detect import detect_interruptions, to_json_rows
from fixtures.interruptions import AreaConfig, AreaEvent, build_area, default_events
from notify.interruption_notices import parse_sms_keyword
from storage.registry import parse_meters_csv

TZ = "Europe/Warsaw"
H = timedelta(hours=1)


def _premises(area_registry: pl.DataFrame) -> pl.DataFrame:
    return area_registry.select("meter_id", "district", "street")


@pytest.fixture(scope="module")
def area():  # type: ignore[no-untyped-def]
    return build_area(AreaConfig())


def test_each_kind_is_found_where_and_when_it_happened(area) -> None:  # type: ignore[no-untyped-def]
    det = detect_interruptions(area.readings, _premises(area.registry), InterruptionConfig(), TZ)
    street, district, comm = area.truth.rows()[0], area.truth.rows()[1], area.truth.rows()[2]
    sup = det.filter(pl.col("kind") == "supply").sort("start")
    assert sup.height == 2  # nothing else in three weeks of sixteen homes a street
    s, d = sup.row(0, named=True), sup.row(1, named=True)
    assert (s["district"], s["street"], s["start"], s["end"]) == ("DMA-01", "Lipowa", street[3], street[4])
    assert s["meters"] == sorted(area.registry.filter(pl.col("street") == "Lipowa").get_column("meter_id"))
    assert s["detected_at"] - s["start"] <= 3 * H
    assert (d["district"], d["street"], d["cause"]) == ("DMA-02", None, "dry_alarm")  # Kamstrup meters say "dry"
    assert district[3] <= d["start"] <= district[3] + H and d["end"] == district[4]
    c = det.filter(pl.col("kind") == "communication").row(0, named=True)
    assert (c["district"], c["street"], c["start"], c["end"]) == ("DMA-02", None, comm[3], comm[4])
    rows = to_json_rows(det, TZ)
    assert rows[0]["start"].endswith("+02:00") and set(rows[0]) >= {"district", "street", "start", "end", "meters",
                                                                    "kind"}


def test_communication_outages_are_never_supply_and_a_quiet_area_has_nothing() -> None:
    cfg = AreaConfig(days=14, seed=3)
    days = default_events(cfg)[0].start
    outages = tuple(AreaEvent("communication", d, None, days + timedelta(hours=h), days + timedelta(hours=h + n))
                    for d, h, n in (("DMA-01", 0, 2), ("DMA-02", 5, 8), ("DMA-01", 26, 5)))
    area = build_area(AreaConfig(days=14, seed=3, events=outages))
    det = detect_interruptions(area.readings, _premises(area.registry), InterruptionConfig(), TZ)
    assert det.filter(pl.col("kind") == "supply").is_empty()
    got = det.select("district", "start", "end").rows()
    assert got == sorted(((e.district, e.start, e.end) for e in outages), key=lambda r: r[1])
    quiet = build_area(AreaConfig(days=14, seed=3, events=()))
    assert detect_interruptions(quiet.readings, _premises(quiet.registry), InterruptionConfig(), TZ).is_empty()


def test_an_ongoing_cut_has_no_end(area) -> None:  # type: ignore[no-untyped-def]
    start = area.truth.row(0, named=True)["start"]
    now = start + 3 * H
    det = detect_interruptions(area.readings_until(now), _premises(area.registry), InterruptionConfig(), TZ, end=now)
    row = det.filter(pl.col("street") == "Lipowa").row(0, named=True)
    assert row["start"] == start and row["end"] is None and row["detected_at"] <= now


@pytest.mark.parametrize(("text", "want"), [
    ("ADD Lipowa", ("add", "Lipowa")), ("add   Nowy  Świat ", ("add", "Nowy Świat")), ("STOP", ("stop", None)),
    ("stop please", ("stop", None)), ("ADD", ("help", None)), ("", ("help", None)), ("hello", ("help", None)),
])
def test_sms_keywords(text: str, want: tuple[str, str | None]) -> None:
    assert parse_sms_keyword(text) == want


def test_registry_takes_contacts_with_consent() -> None:
    parsed = parse_meters_csv("meter_id,street,phone,email,notice_consent\nM1,Lipowa,+48600,a@b.pl,yes\n"
                              "M2,Lipowa,,,no\nM3,Lipowa,+48601,,maybe\n")
    assert [(r["meter_id"], r["phone"], r["notice_consent"]) for r in parsed.rows] == [
        ("M1", "+48600", True), ("M2", None, False)]
    assert parsed.errors == [(4, "notice_consent must be yes/no (true/false, 1/0)")]


def test_the_simulated_fleet_carries_streets_cuts_and_outages_with_truth() -> None:
    from fixtures.fleet import FleetConfig, build_fleet

    base = FleetConfig(meters=80, days=12, seed=4, districts=2, streets_per_district=2, leak_share=0.0,
                       exchange_share=0.0, rollover_share=0.0)
    day = base.start + timedelta(days=9, hours=8)  # 10:00 in Warsaw
    fleet = build_fleet(replace(base, area_events=(
        AreaEvent("supply", "DMA-01", None, day, day + 4 * H),
        AreaEvent("communication", "DMA-02", None, day + 26 * H, day + 29 * H))))
    reg = fleet.meters
    assert reg.select("street", "house_number", "lat", "lon").null_count().row(0) == (0, 0, 0, 0)
    assert reg.group_by("district").agg(pl.col("street").n_unique()).get_column("street").to_list() == [2, 2]
    truth = fleet.truth
    kinds = truth.events.filter(pl.col("kind").str.contains("interruption|outage")).group_by("kind").len().sort(
        "kind").rows()
    assert kinds == [("communication_outage", int((reg["district"] == "DMA-02").sum())),
                     ("supply_interruption", int((reg["district"] == "DMA-01").sum()))]
    readings = truth.readings.filter(~pl.col("lost")).select("meter_id", "time", "total_m3")
    cut = readings.join(reg.select("meter_id", "district"), on="meter_id").filter(
        (pl.col("district") == "DMA-01") & (pl.col("time") > day) & (pl.col("time") <= day + 4 * H))
    assert cut.group_by("meter_id").agg(pl.col("total_m3").n_unique()).get_column("total_m3").max() == 1
    det = detect_interruptions(readings, reg.select("meter_id", "district", "street"), InterruptionConfig(), TZ)
    assert det.select("kind", "district", "street", "end").rows() == [
        ("supply", "DMA-01", None, day + 4 * H), ("communication", "DMA-02", None, day + 29 * H)]


def test_an_hours_rarity_is_learnt_with_its_neighbours() -> None:
    """pool_hours=1: the rate at 10:00 counts the standstills at 09:00, 10:00 and 11:00 (prior_weight 0 shows
    the raw share); pool_hours=0 sees 10:00 alone."""
    from analytics.interruptions.detect import standstill_rates

    hods = [9, 10, 11, 12] * 2
    still = [True, False, True, True, True, True, False, False]
    mh = pl.DataFrame({"meter_id": ["M1"] * 8, "hod": pl.Series(hods, dtype=pl.Int8()),
                       "weekend": [False] * 8, "state": pl.Series([4] * 8, dtype=pl.Int8()),
                       "still": still, "rep": [True] * 8, "present": [True] * 8})

    def pd_at_10(pool: int) -> float:
        day = standstill_rates(mh, InterruptionConfig(pool_hours=pool, prior_weight=0.0))[2]
        return float(day.filter(pl.col("hod") == 10).get_column("pd").item())

    assert pd_at_10(0) == 0.5  # 10:00: still once in two
    assert pd_at_10(1) == 4 / 6  # 09:00-11:00: still four times in six
    assert InterruptionConfig().pool_hours == 1 and InterruptionConfig().prior_weight == 10.0
