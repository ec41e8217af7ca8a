"""What a customer's page shows, computed: the customer's supply points (a meter and the meters it replaced at
the same premise and role), daily litres and hourly use added across a meter exchange, monthly m3 from the
billing computation itself (stored billing results, else analytics.vee.core.compute_billing on the spot), the
average per day and the same period a year earlier only where there is data.

Why per supply point: a garden sub-meter measures water that already passed the main meter, so main and
garden are never added; an exchanged meter is the same supply point, so old and new meter are.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import polars as pl
import psycopg

from analytics.vee.core import compute_billing
from meterflow.config import Settings
from meterflow.periods import local_midnight, next_month
from storage import chart_queries as q
from storage import customer_queries as cq
from storage.billing import load_inputs, load_results

VERIFICATION_WARNING_DAYS = 90


@dataclass
class SupplyPoint:
    """One premise and role (main or garden): its meters, oldest first; the last one is the current meter."""

    role: str
    meters: list[dict[str, Any]] = field(default_factory=list)

    @property
    def current(self) -> dict[str, Any]:
        return self.meters[-1]

    @property
    def meter_ids(self) -> list[str]:
        return [m["meter_id"] for m in self.meters]

    @property
    def exchanges(self) -> list[date]:
        """Days on which a meter of this point was replaced by the next one."""
        return [m["install_date"] or prev["removal_date"] for prev, m in zip(self.meters, self.meters[1:],
                                                                             strict=False)
                if (m["install_date"] or prev["removal_date"]) is not None]


def supply_points(meters: list[dict[str, Any]]) -> list[SupplyPoint]:
    """Group a customer's meters (oldest installation first) into supply points, main points first."""
    points: dict[tuple[str, str], SupplyPoint] = {}
    for m in meters:
        key = (m["premise_ref"] or m["meter_id"], m["role"] or "main")
        points.setdefault(key, SupplyPoint(role=key[1])).meters.append(m)
    return sorted(points.values(), key=lambda p: (p.role != "main", p.current["meter_id"]))


def meter_status(meter: dict[str, Any], today: date) -> str:
    removal = meter["removal_date"]
    return "removed" if removal is not None and removal <= today else "active"


def verification(meter: dict[str, Any], today: date) -> dict[str, Any]:
    """Verification (legalisation) expiry, days left and whether to warn (within 90 days or past)."""
    expiry = meter["verification_expiry"]
    if expiry is None:
        return {"expiry": None, "days_left": None, "warn": False}
    left = (expiry - today).days
    return {"expiry": expiry, "days_left": left, "warn": left <= VERIFICATION_WARNING_DAYS}


# --------------------------------------------------------------------------------------------- daily, hourly


def daily_litres(conn: psycopg.Connection, point: SupplyPoint, start: date, end: date, tz: str) -> pl.DataFrame:
    """One row per local day in [start, end): litres used at the point (its meters added), `missing` for days
    in service without any reading, `after_gap` for a day that also carries the missing days before it, and
    `in_service` (False before the point's first reading or installation)."""
    days = cq.meter_days(conn, point.meter_ids, start, end, tz)
    base = pl.DataFrame({"meter_id": [m["meter_id"] for m in point.meters],
                         "install_m3": [m["install_index_m3"] for m in point.meters],
                         "install_day": [m["install_date"] for m in point.meters]},
                        schema={"meter_id": pl.Utf8, "install_m3": pl.Float64, "install_day": pl.Date})
    per_meter = days.join(base, on="meter_id", how="left").with_columns(
        # a meter's first day counts from its installation index when it was installed that day or the day
        # before (its reads start with it), else from its first read of that day
        (pl.col("last_m3") - pl.coalesce(
            "prev_m3",
            pl.when(pl.col("day") <= pl.col("install_day") + pl.duration(days=1)).then(pl.col("install_m3")),
            "first_m3")).alias("m3"))
    per_meter = per_meter.with_columns(pl.when(pl.col("m3") < 0).then(None).otherwise(pl.col("m3")).alias("m3"))
    by_day = per_meter.group_by("day").agg((pl.col("m3").sum() * 1000.0).alias("litres"),
                                           pl.col("m3").is_not_null().any().alias("has"))
    grid = pl.DataFrame({"day": pl.date_range(start, end - timedelta(days=1), "1d", eager=True)})
    df = grid.join(by_day, on="day", how="left").sort("day")
    first_install = min((m["install_date"] for m in point.meters if m["install_date"]), default=None)
    # a meter whose first bucket in the window has an earlier one was in service before the window
    had_before = per_meter.group_by("meter_id").agg(pl.col("prev_m3").first())["prev_m3"].is_not_null().any()
    first_data = df.filter(pl.col("has").fill_null(False))["day"].min()
    if (first_install is not None and first_install <= start) or had_before:
        service_from: Any = start
    elif first_install is not None:
        service_from = first_install
    else:
        service_from = first_data if first_data is not None else end
    df = df.with_columns((pl.col("day") >= pl.lit(service_from, pl.Date)).alias("in_service"))
    df = df.with_columns((pl.col("in_service") & pl.col("has").is_null()).alias("missing"))
    return df.with_columns(
        pl.when(pl.col("has").fill_null(False)).then(pl.col("litres")).alias("litres"),
        (~pl.col("missing") & pl.col("in_service") & pl.col("missing").shift(1, fill_value=False)).alias("after_gap"),
    ).drop("has")


def average_l_per_day(daily: pl.DataFrame) -> float | None:
    """Litres per day over the days in service up to the last day with data (a day after a gap carries the
    gap's volume, so the gap days count in the divisor); None without data."""
    known = daily.filter(pl.col("litres").is_not_null())
    if known.is_empty():
        return None
    last = known["day"].max()
    span = daily.filter(pl.col("in_service") & (pl.col("day") <= last))
    return float(known["litres"].sum()) / max(span.height, 1)


def hourly_litres(conn: psycopg.Connection, point: SupplyPoint, start: datetime, end: datetime,
                  tz: str) -> pl.DataFrame:
    """Hours in [start, end) in local time: litres at the point (its meters added) and `missing` hours."""
    frames = [q.meter_hourly(conn, m, start, end) for m in point.meter_ids]
    hourly = (pl.concat(frames).group_by("hour")
              .agg(pl.col("consumption_l").sum().alias("litres"), pl.col("missing").all(),
                   pl.col("consumption_l").is_not_null().any().alias("has"))
              .sort("hour"))
    return hourly.with_columns(pl.when(pl.col("has")).then(pl.col("litres")).alias("litres"),
                               pl.col("hour").dt.convert_time_zone(tz)).drop("has")


# --------------------------------------------------------------------------------------------- monthly


def monthly_m3(conn: psycopg.Connection, settings: Settings, point: SupplyPoint, first: date, end_month: date,
               today: date, as_of: datetime) -> pl.DataFrame:
    """Per calendar month in [first, end_month): m3 used at the point as billing computes it, its quality
    and whether the month is complete. A month with a finished billing run is what `billing export` gives for
    it; other months run the same computation (compute_billing) over the days before `today`."""
    tz = settings.timezone
    have = cq.months_with_data(conn, point.meter_ids, first, end_month, tz)
    stored = load_results(conn, first, end_month, meter_ids=point.meter_ids)
    rows: list[dict[str, Any]] = []
    for meter_id, month in have:
        nxt = next_month(month)
        billed = stored.filter((pl.col("meter_id") == meter_id) & (pl.col("period_start") >= month)
                               & (pl.col("period_end") <= nxt))
        if billed.is_empty():
            stop = min(nxt, today)
            if stop <= month:
                continue
            billed = billed_now(conn, settings, meter_id, month, stop, as_of)
            source = "computed"
        else:
            source = "billed"
        for r in billed.iter_rows(named=True):
            rows.append({"month": month, "meter_id": meter_id, "consumption_m3": r["consumption_m3"],
                         "quality": r["quality"], "source": source, "complete": r["period_end"] >= nxt})
    got = pl.DataFrame(rows, schema={"month": pl.Date, "meter_id": pl.Utf8, "consumption_m3": pl.Float64,
                                     "quality": pl.Utf8, "source": pl.Utf8, "complete": pl.Boolean})
    # a month is comparable with another year only when the point was in service all of it
    first_install = min((m["install_date"] for m in point.meters if m["install_date"]), default=None)
    first_data = min((month for _, month in have), default=None)
    got = got.with_columns(((pl.col("month") > pl.lit(first_data, pl.Date)) if first_install is None
                            else (pl.col("month") >= pl.lit(first_install, pl.Date))).fill_null(False).alias("full"))
    return (
        got.group_by("month")
        .agg(
            # one meter without a figure leaves the month without one (no partial sums shown as the month)
            pl.when(pl.col("consumption_m3").null_count() == 0).then(pl.col("consumption_m3").sum())
            .alias("consumption_m3"),
            pl.col("quality").sort().last().alias("quality"),  # ESTIMATED/EDITED beat ACTUAL alphabetically
            pl.col("source").first(),
            pl.col("complete").any(),
            pl.col("full").all(),
            pl.col("meter_id").n_unique().alias("meters"),
        )
        .sort("month")
    )


_COMPUTED: OrderedDict[tuple[Any, ...], pl.DataFrame] = OrderedDict()
_COMPUTED_MAX = 4096


def billed_now(conn: psycopg.Connection, settings: Settings, meter_id: str, start: date, stop: date,
               as_of: datetime) -> pl.DataFrame:
    """compute_billing for one meter and [start, stop), remembered until the meter's reads in the window, its
    registry row, the finished billing runs or the VEE settings change (a page shows 24 months)."""
    tz = settings.timezone
    lo = local_midnight(start, tz) - timedelta(days=settings.vee.lookback_days)
    hi = local_midnight(stop, tz) + timedelta(days=settings.vee.lookahead_days)
    fingerprint = cq.reads_fingerprint(conn, meter_id, lo, hi)
    key = (conn.info.dbname, meter_id, start, stop, fingerprint, settings.vee.model_dump_json(), tz)
    if key in _COMPUTED:
        _COMPUTED.move_to_end(key)
        return _COMPUTED[key]
    inputs = load_inputs(conn, start, stop, settings.vee, tz, (meter_id, meter_id))
    results = compute_billing(inputs["readings"], inputs["registry"], start, stop, settings.vee,
                              history=inputs["history"], tariffs=inputs["tariffs"], as_of=as_of,
                              timezone=tz).results
    _COMPUTED[key] = results
    if len(_COMPUTED) > _COMPUTED_MAX:
        _COMPUTED.popitem(last=False)
    return results

