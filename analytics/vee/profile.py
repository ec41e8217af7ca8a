"""The shape of a meter's use over the day, and what it is used for: sharing a gap's volume over its hours
(rule 10, `fill_gaps`) and the index at a period boundary between two reads (rule 12, `boundary_index`)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl

from analytics.vee.config import VeeConfig


def hour_profile(intervals: pl.DataFrame, timezone: str = "UTC") -> dict[str, list[float]]:
    """Average use per local hour of day from actual short intervals: the 'similar days' shape of a meter."""
    short = intervals.filter(
        pl.col("dt_h").is_not_null() & (pl.col("dt_h") <= 1.01) & (pl.col("delta") >= 0) & ~pl.col("gap")
    )
    if short.is_empty():
        return {}
    prof = short.group_by("meter_id", pl.col("prev_time").dt.convert_time_zone(timezone).dt.hour().alias("h")).agg(
        (pl.col("delta") / pl.col("dt_h")).mean().alias("r")
    )
    out: dict[str, list[float]] = {}
    for meter_id, h, r in prof.iter_rows():
        out.setdefault(meter_id, [0.0] * 24)[h] = float(r)
    return out


def hour_slots(t0: datetime, t1: datetime) -> list[tuple[datetime, datetime]]:
    slots = []
    cur = t0
    while cur < t1:
        nxt = min(t1, cur.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1))
        slots.append((cur, nxt))
        cur = nxt
    return slots


def hour_weights(
    t0: datetime, t1: datetime, profile: list[float] | None, linear: bool, timezone: str = "UTC"
) -> list[tuple[datetime, float]]:
    """(slot start, weight) over [t0, t1); weights are the profile rate x slot length, or slot length."""
    out = []
    for a, b in hour_slots(t0, t1):
        length = (b - a).total_seconds() / 3600.0
        wgt = length if linear or not profile else profile[a.astimezone(ZoneInfo(timezone)).hour] * length
        out.append((a, wgt))
    if not linear and profile and sum(w for _, w in out) <= 0:
        return hour_weights(t0, t1, None, True, timezone)
    return out


def fill_gaps(
    intervals: pl.DataFrame, config: VeeConfig, profiles: dict[str, list[float]] | None = None,
    timezone: str = "UTC",
) -> pl.DataFrame:
    """Rule 10: split every gap into hourly estimated intervals that add up exactly to its index difference.

    Short gaps (<= short_gap_hours) are shared linearly by time; long gaps by the meter's hour-of-day profile
    (similar days), falling back to linear when the meter has no profile. Returns meter_id, start, end,
    volume_m3, quality, method; actual intervals are passed through unchanged."""
    profiles = profiles if profiles is not None else hour_profile(intervals, timezone)
    rows: list[dict[str, Any]] = []
    body = intervals.filter(pl.col("prev_time").is_not_null())
    for r in body.select("meter_id", "prev_time", "time", "delta", "gap", "dt_h").iter_rows(named=True):
        if not r["gap"]:
            rows.append({"meter_id": r["meter_id"], "start": r["prev_time"], "end": r["time"],
                         "volume_m3": r["delta"], "quality": "ACTUAL", "method": ""})
            continue
        linear = r["dt_h"] <= config.short_gap_hours
        method = "linear" if linear else "similar_days"
        wts = hour_weights(r["prev_time"], r["time"], profiles.get(r["meter_id"]), linear, timezone)
        if not linear and not profiles.get(r["meter_id"]):
            method = "linear_no_profile"
        total_w = sum(w for _, w in wts)
        slots = hour_slots(r["prev_time"], r["time"])
        allocated = 0.0
        for i, ((a, b), (_, wgt)) in enumerate(zip(slots, wts, strict=True)):
            vol = r["delta"] - allocated if i == len(slots) - 1 else r["delta"] * wgt / total_w
            allocated += vol
            rows.append({"meter_id": r["meter_id"], "start": a, "end": b, "volume_m3": vol,
                         "quality": "ESTIMATED", "method": method})
    schema: dict[str, pl.DataType | type[pl.DataType]] = {
        "meter_id": pl.String, "start": pl.Datetime("us", "UTC"), "end": pl.Datetime("us", "UTC"),
              "volume_m3": pl.Float64, "quality": pl.String, "method": pl.String}
    return pl.DataFrame(rows, schema=schema)


def boundary_index(
    t0: datetime | None, u0: float | None, t1: datetime | None, u1: float | None, at: datetime,
    profile: list[float] | None, usual_h: float | None, config: VeeConfig, timezone: str = "UTC",
) -> tuple[float | None, str]:
    """Rule 12: the index at a boundary, from the reads on either side (weighted by the interval profile)."""
    if t0 is not None and u0 is not None and t0 == at:
        return u0, "actual_read"
    if t1 is not None and u1 is not None and t1 == at:
        return u1, "actual_read"
    if t0 is None or t1 is None or u0 is None or u1 is None:
        return None, ""
    span_h = (t1 - t0).total_seconds() / 3600.0
    weighted = profile is not None and usual_h is not None and span_h > config.gap_factor * usual_h and span_h > 1
    if weighted:
        wts = hour_weights(t0, t1, profile, False, timezone)
        total = sum(w for _, w in wts)
        part = sum(w for a, w in wts if a < at)
        # the slot containing `at` counts in proportion
        for (a, b), (_, w) in zip(hour_slots(t0, t1), wts, strict=True):
            if a < at < b:
                part -= w * (b - at).total_seconds() / (b - a).total_seconds()
        frac = part / total if total > 0 else (at - t0).total_seconds() / (t1 - t0).total_seconds()
        return u0 + (u1 - u0) * frac, "interpolated_weighted"
    frac = (at - t0).total_seconds() / (t1 - t0).total_seconds()
    return float(u0 + (u1 - u0) * frac), "interpolated"
