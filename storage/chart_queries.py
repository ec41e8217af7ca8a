"""Queries behind the dashboards. They read the rollups (consumption_hourly/_daily) and the small derived
tables of migration 0040 (district_daily, meter_last_heard), never raw readings, so each stays fast
on a fleet of 100,000 meters with years of data (`meterflow bench charts`).

Consumption of a bucket = its last_m3 minus the previous bucket's last_m3 of the same meter; a
negative difference (meter exchange, register rollover) counts as no data.

`refresh_dashboards(conn, start, end)` brings district_daily and meter_last_heard up to date for
[start, end); the flows call it right after `storage.flavor.refresh_rollups` on the same window.
Every function takes an explicit "as of" time so simulated data can be shown.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl
import psycopg

from meterflow.periods import add_months, month_start

NIGHT_FIRST_HOUR = 1  # night flow = rate between the ends of the 01:00 and the 03:00 local hours (~02:00-04:00)
AGE_BUCKETS = ("< 1 h", "1-6 h", "6-24 h", "1-7 d", "> 7 d", "never")
LEAK_KINDS = ("continuous_flow", "night_flow", "burst")


def rollup_timezone(conn: psycopg.Connection) -> str:
    """The time zone of the daily buckets (set by the migrations)."""
    row = conn.execute("SELECT value FROM meterflow_meta WHERE key = 'rollup_timezone'").fetchone()
    return str(row[0]) if row else "UTC"


def _frame(rows: Sequence[Sequence[Any]], schema: dict[str, Any]) -> pl.DataFrame:
    return pl.DataFrame([tuple(r) for r in rows], schema=schema, orient="row")


# --------------------------------------------------------------------------------------------- fleet


def _coverage(conn: psycopg.Connection, dim: str, now: datetime) -> list[tuple[Any, ...]]:
    # totals over every hour (all meters of the key), heard = last reading within the 24 h before `now`
    # at hour resolution; both from the small heard_hourly table.
    return conn.execute(
        """SELECT key, sum(meters)::int,
                  coalesce(sum(meters) FILTER (WHERE hour >= date_trunc('hour', %(now)s - interval '24 hours')
                                                 AND hour <= %(now)s), 0)::int,
                  max(hour) FILTER (WHERE hour <= %(now)s AND hour > '-infinity')
           FROM heard_hourly WHERE dim = %(dim)s GROUP BY key ORDER BY key""",
        {"now": now, "dim": dim},
    ).fetchall()


def coverage_by_district(conn: psycopg.Connection, now: datetime) -> pl.DataFrame:
    """Share of meters heard in the 24 h before `now` (hour resolution), per district."""
    rows = [r[:3] for r in _coverage(conn, "district", now)]
    df = _frame(rows, {"district": pl.Utf8, "meters": pl.Int64, "heard": pl.Int64})
    return df.with_columns((pl.col("heard") / pl.col("meters")).alias("share"))


def coverage_by_gateway(conn: psycopg.Connection, now: datetime) -> pl.DataFrame:
    """Per gateway (the last one each meter was heard through): meters, share heard in the last 24 h,
    and the hour of its newest reading."""
    rows = _coverage(conn, "gateway", now)
    df = _frame(rows, {"gateway": pl.Utf8, "meters": pl.Int64, "heard": pl.Int64,
                       "last_heard": pl.Datetime("us", "UTC")})
    return df.with_columns((pl.col("heard") / pl.col("meters")).alias("share"))


def freshness(conn: psycopg.Connection, now: datetime) -> tuple[pl.DataFrame, dict[str, datetime | None]]:
    """Meters by age of their last reading (hour resolution), and the newest reading / hourly / daily bucket."""
    row = conn.execute(
        """SELECT coalesce(sum(meters) FILTER (WHERE hour >= date_trunc('hour', %(now)s - interval '1 hour')), 0),
                  coalesce(sum(meters) FILTER (WHERE hour < date_trunc('hour', %(now)s - interval '1 hour')
                                     AND hour >= date_trunc('hour', %(now)s - interval '6 hours')), 0),
                  coalesce(sum(meters) FILTER (WHERE hour < date_trunc('hour', %(now)s - interval '6 hours')
                                     AND hour >= date_trunc('hour', %(now)s - interval '24 hours')), 0),
                  coalesce(sum(meters) FILTER (WHERE hour < date_trunc('hour', %(now)s - interval '24 hours')
                                     AND hour >= date_trunc('hour', %(now)s - interval '7 days')), 0),
                  coalesce(sum(meters) FILTER (WHERE hour < date_trunc('hour', %(now)s - interval '7 days')
                                     AND hour > '-infinity'), 0),
                  coalesce(sum(meters) FILTER (WHERE hour = '-infinity'), 0)
           FROM heard_hourly WHERE dim = 'district' AND hour <= %(now)s""",
        {"now": now},
    ).fetchone()
    counts = list(row) if row else [0] * 6
    df = pl.DataFrame({"age": list(AGE_BUCKETS), "meters": [int(c or 0) for c in counts]})
    daily = conn.execute("SELECT max(bucket) FROM consumption_daily WHERE bucket <= %s", (now,)).fetchone()
    return df, {**data_as_of(conn, now), "newest_daily_bucket": daily[0] if daily else None}


_LOST = """coalesce(a.volume_m3, a.rate_l_h * extract(epoch FROM (least(a.last_seen, %(now)s) - a.first_seen))
                     / 3600.0 / 1000.0, 0)"""


def open_alerts_by_kind(conn: psycopg.Connection, now: datetime) -> pl.DataFrame:
    """Open alerts per kind with the estimated volume lost (volume_m3, else rate x duration)."""
    rows = conn.execute(
        f"""SELECT a.kind, count(*)::int, sum({_LOST}), max(a.rate_l_h), min(a.first_seen)
            FROM alerts a WHERE a.state = 'open' AND a.first_seen <= %(now)s
            GROUP BY a.kind ORDER BY 3 DESC NULLS LAST""",
        {"now": now},
    ).fetchall()
    return _frame(rows, {"kind": pl.Utf8, "alerts": pl.Int64, "volume_lost_m3": pl.Float64,
                         "max_rate_l_h": pl.Float64, "oldest": pl.Datetime("us", "UTC")})


def open_alerts(conn: psycopg.Connection, now: datetime, limit: int = 100) -> pl.DataFrame:
    """The open alerts with the most volume lost first."""
    rows = conn.execute(
        f"""SELECT t.meter_id, m.district, t.kind, t.severity, t.first_seen, t.last_seen, t.rate_l_h, t.lost, t.id,
                   t.assigned_to
            FROM (SELECT a.meter_id, a.kind, a.severity, a.first_seen, a.last_seen, a.rate_l_h, {_LOST} AS lost,
                         a.id, a.assigned_to
                  FROM alerts a WHERE a.state = 'open' AND a.first_seen <= %(now)s
                  ORDER BY lost DESC NULLS LAST, a.first_seen LIMIT %(limit)s) t
            LEFT JOIN meters m USING (meter_id)
            ORDER BY t.lost DESC NULLS LAST, t.first_seen""",
        {"now": now, "limit": limit},
    ).fetchall()
    return _frame(rows, {"meter_id": pl.Utf8, "district": pl.Utf8, "kind": pl.Utf8, "severity": pl.Utf8,
                         "first_seen": pl.Datetime("us", "UTC"), "last_seen": pl.Datetime("us", "UTC"),
                         "rate_l_h": pl.Float64, "volume_lost_m3": pl.Float64, "id": pl.Int64,
                         "assigned_to": pl.Utf8})


def districts(conn: psycopg.Connection) -> list[str]:
    return [r[0] for r in conn.execute("SELECT DISTINCT district FROM meters WHERE district IS NOT NULL ORDER BY 1")]


def top_districts(conn: psycopg.Connection, start: date, end: date, n: int = 6) -> list[str]:
    rows = conn.execute(
        """SELECT district FROM district_daily WHERE day >= %s AND day < %s
           GROUP BY district ORDER BY sum(consumption_m3) DESC NULLS LAST LIMIT %s""",
        (start, end, n),
    ).fetchall()
    return [r[0] for r in rows]


def district_daily(conn: psycopg.Connection, district_names: Sequence[str], start: date, end: date) -> pl.DataFrame:
    """Daily consumption (m3) and night flow (L/h) of the given districts for days in [start, end)."""
    rows = conn.execute(
        """SELECT district, day, consumption_m3, n_meters, night_flow_l_h, n_night FROM district_daily
           WHERE district = ANY(%s) AND day >= %s AND day < %s ORDER BY district, day""",
        (list(district_names), start, end),
    ).fetchall()
    return _frame(rows, {"district": pl.Utf8, "day": pl.Date, "consumption_m3": pl.Float64, "n_meters": pl.Int64,
                         "night_flow_l_h": pl.Float64, "n_night": pl.Int64})


def water_balance(conn: psycopg.Connection, start: date, end: date,
                  district_names: Sequence[str] | None = None) -> pl.DataFrame:
    """Per district with inlet meters and local day in [start, end): input (inlet meters), billed customer
    consumption, non-revenue water (input - billed, m3 and % of input) and the input's minimum night flow."""
    rows = conn.execute(
        """SELECT district, day, input_m3, consumption_m3, input_mnf_l_h, n_inlets, n_meters FROM district_daily
           WHERE day >= %s AND day < %s AND (n_inlets > 0 OR input_mnf_l_h IS NOT NULL)
             AND (%s::text[] IS NULL OR district = ANY(%s))
           ORDER BY district, day""",
        (start, end, list(district_names) if district_names is not None else None,
         list(district_names) if district_names is not None else None),
    ).fetchall()
    df = _frame(rows, {"district": pl.Utf8, "day": pl.Date, "input_m3": pl.Float64, "billed_m3": pl.Float64,
                       "mnf_l_h": pl.Float64, "n_inlets": pl.Int64, "n_meters": pl.Int64})
    nrw = pl.col("input_m3") - pl.col("billed_m3")
    return df.with_columns(nrw.alias("nrw_m3"),
                           pl.when(pl.col("input_m3") > 0).then(100.0 * nrw / pl.col("input_m3")).alias("nrw_pct"))


def balance_ranking(balance: pl.DataFrame) -> pl.DataFrame:
    """Districts ranked by non-revenue water over the period (days with both input and billed volumes only)."""
    both = balance.filter(pl.col("input_m3").is_not_null() & pl.col("billed_m3").is_not_null())
    if both.is_empty():
        return pl.DataFrame(schema={"district": pl.Utf8, "days": pl.UInt32, "input_m3": pl.Float64,
                                    "billed_m3": pl.Float64, "nrw_m3": pl.Float64, "nrw_pct": pl.Float64,
                                    "nrw_m3_day": pl.Float64, "mnf_l_h": pl.Float64})
    mnf = balance.group_by("district").agg(pl.col("mnf_l_h").median().alias("mnf_l_h"))
    return (both.group_by("district")
            .agg(pl.len().alias("days"), pl.col("input_m3").sum(), pl.col("billed_m3").sum())
            .with_columns((pl.col("input_m3") - pl.col("billed_m3")).alias("nrw_m3"))
            .with_columns((100.0 * pl.col("nrw_m3") / pl.col("input_m3")).alias("nrw_pct"),
                          (pl.col("nrw_m3") / pl.col("days")).alias("nrw_m3_day"))
            .join(mnf, on="district", how="left")
            .sort("nrw_pct", descending=True, nulls_last=True))


def data_as_of(conn: psycopg.Connection, now: datetime) -> dict[str, datetime | None]:
    """What the pages show: the newest reading heard by radio, the newest hourly bucket, when the dashboard
    tables were last refreshed."""
    # meter_last_heard keeps each meter's latest reading only: one later than `now` means data up to `now`
    newest = conn.execute("SELECT least(max(last_heard), %s) FROM meter_last_heard", (now,)).fetchone()
    hourly = conn.execute("SELECT max(bucket) FROM consumption_hourly WHERE bucket <= %s", (now,)).fetchone()
    refreshed = conn.execute("SELECT value::timestamptz FROM meterflow_meta WHERE key = 'dashboards_refreshed_at'"
                             ).fetchone()
    return {"newest_reading": newest[0] if newest else None, "newest_hourly_bucket": hourly[0] if hourly else None,
            "refreshed_at": refreshed[0] if refreshed else None}


def verification_due(conn: psycopg.Connection, now: datetime, days: int = 90,
                     limit: int = 200) -> tuple[pl.DataFrame, int]:
    """Meters whose verification expires within `days` of `now` (soonest first), and how many in all."""
    today = now.date()
    params = {"lo": today, "hi": today + timedelta(days=days), "limit": limit}
    rows = conn.execute(
        """SELECT meter_id, district, customer_ref, verification_expiry FROM meters
           WHERE verification_expiry >= %(lo)s AND verification_expiry < %(hi)s
             AND (removal_date IS NULL OR removal_date > %(lo)s)
           ORDER BY verification_expiry, meter_id LIMIT %(limit)s""",
        params,
    ).fetchall()
    total = conn.execute(
        """SELECT count(*) FROM meters WHERE verification_expiry >= %(lo)s AND verification_expiry < %(hi)s
             AND (removal_date IS NULL OR removal_date > %(lo)s)""",
        params,
    ).fetchone()
    df = _frame(rows, {"meter_id": pl.Utf8, "district": pl.Utf8, "customer_ref": pl.Utf8,
                       "verification_expiry": pl.Date})
    return df, int(total[0]) if total else 0


def verification_by_week(conn: psycopg.Connection, now: datetime, days: int = 90) -> pl.DataFrame:
    """Meters whose verification expires within `days`, counted per ISO week (Monday)."""
    today = now.date()
    rows = conn.execute(
        """SELECT date_trunc('week', verification_expiry)::date AS week, count(*)::int FROM meters
           WHERE verification_expiry >= %s AND verification_expiry < %s
             AND (removal_date IS NULL OR removal_date > %s)
           GROUP BY 1 ORDER BY 1""",
        (today, today + timedelta(days=days), today),
    ).fetchall()
    return _frame(rows, {"week": pl.Date, "meters": pl.Int64})


def dead_letters_by_reason(conn: psycopg.Connection, now: datetime) -> pl.DataFrame:
    """Unresolved dead letters per error code."""
    rows = conn.execute(
        """SELECT error_code, count(*)::int, max(received_at) FROM dead_letters
           WHERE resolved_at IS NULL AND received_at <= %s GROUP BY 1 ORDER BY 2 DESC""",
        (now,),
    ).fetchall()
    return _frame(rows, {"error_code": pl.Utf8, "frames": pl.Int64, "last_at": pl.Datetime("us", "UTC")})


# --------------------------------------------------------------------------------------------- meters


def meter_info(conn: psycopg.Connection, meter_id: str) -> dict[str, Any] | None:
    cur = conn.execute(
        """SELECT m.meter_id, m.manufacturer, m.model, m.district, m.customer_ref, m.premise_ref,
                  m.install_date, m.verification_expiry, h.last_heard, h.gateway_id, m.role, m.removal_date,
                  concat_ws(' ', m.street, m.house_number) || coalesce(', ' || m.city, '') AS address
           FROM meters m LEFT JOIN meter_last_heard h USING (meter_id) WHERE m.meter_id = %s""",
        (meter_id,),
    )
    row = cur.fetchone()
    if row is None:
        return None
    names = [d.name for d in cur.description or []]
    return dict(zip(names, row, strict=True))


def _local_midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day)


def meter_daily(conn: psycopg.Connection, meter_id: str, start: date, end: date,
                tz: str | None = None) -> pl.DataFrame:
    """One row per local day in [start, end): index at the end of the day, consumption (m3), and
    `missing` for days without a bucket (their volume shows up on the next day with data)."""
    tz = tz or rollup_timezone(conn)
    rows = conn.execute(
        """WITH b AS (
               SELECT bucket, last_m3, n_readings FROM consumption_daily
               WHERE meter_id = %(m)s AND bucket >= (%(lo)s::timestamp AT TIME ZONE %(tz)s)
                 AND bucket < (%(hi)s::timestamp AT TIME ZONE %(tz)s)),
           p AS (
               SELECT last_m3 FROM consumption_daily
               WHERE meter_id = %(m)s AND bucket < (%(lo)s::timestamp AT TIME ZONE %(tz)s)
               ORDER BY bucket DESC LIMIT 1)
           SELECT (bucket AT TIME ZONE %(tz)s)::date, last_m3,
                  last_m3 - coalesce(lag(last_m3) OVER (ORDER BY bucket), (SELECT last_m3 FROM p)), n_readings
           FROM b ORDER BY bucket""",
        {"m": meter_id, "lo": _local_midnight(start), "hi": _local_midnight(end), "tz": tz},
    ).fetchall()
    got = _frame(rows, {"day": pl.Date, "index_m3": pl.Float64, "consumption_m3": pl.Float64,
                        "n_readings": pl.Int64})
    return _fill_days(got, start, end)


def _fill_days(got: pl.DataFrame, start: date, end: date) -> pl.DataFrame:
    days = pl.DataFrame({"day": pl.date_range(start, end - timedelta(days=1), "1d", eager=True)})
    df = days.join(got, on="day", how="left")
    df = df.with_columns(
        pl.when(pl.col("consumption_m3") < 0).then(None).otherwise(pl.col("consumption_m3")).alias("consumption_m3"),
        pl.col("index_m3").is_null().alias("missing"),
    )
    # a day with data right after missing days carries their volume too
    return df.with_columns(
        (~pl.col("missing") & pl.col("missing").shift(1, fill_value=False)).alias("after_gap")
    )


def meter_hourly(conn: psycopg.Connection, meter_id: str, start: datetime, end: datetime) -> pl.DataFrame:
    """One row per hour in [start, end) (UTC hours): index and consumption in litres; `missing` hours."""
    lo = start.replace(minute=0, second=0, microsecond=0)
    rows = conn.execute(
        """WITH b AS (
               SELECT bucket, last_m3 FROM consumption_hourly
               WHERE meter_id = %(m)s AND bucket >= %(lo)s AND bucket < %(hi)s),
           p AS (
               SELECT last_m3 FROM consumption_hourly WHERE meter_id = %(m)s AND bucket < %(lo)s
                 AND bucket >= %(lo)s - interval '7 days' ORDER BY bucket DESC LIMIT 1)
           SELECT bucket, last_m3,
                  (last_m3 - coalesce(lag(last_m3) OVER (ORDER BY bucket), (SELECT last_m3 FROM p))) * 1000.0
           FROM b ORDER BY bucket""",
        {"m": meter_id, "lo": lo, "hi": end},
    ).fetchall()
    got = _frame(rows, {"hour": pl.Datetime("us", "UTC"), "index_m3": pl.Float64, "consumption_l": pl.Float64})
    hours = pl.datetime_range(lo, end - timedelta(microseconds=1), "1h", eager=True, time_zone="UTC")
    df = pl.DataFrame({"hour": hours.cast(pl.Datetime("us", "UTC"))}).join(got, on="hour", how="left")
    return df.with_columns(
        pl.when(pl.col("consumption_l") < 0).then(None).otherwise(pl.col("consumption_l")).alias("consumption_l"),
        pl.col("index_m3").is_null().alias("missing"),
    )


def meter_alerts(conn: psycopg.Connection, meter_id: str, start: datetime, end: datetime) -> pl.DataFrame:
    """Alarms and leak alerts of one meter overlapping [start, end)."""
    rows = conn.execute(
        """SELECT kind, severity, state, first_seen, last_seen, rate_l_h, message, id, acknowledged_by, assigned_to,
                  close_reason, closed_by FROM alerts
           WHERE meter_id = %s AND first_seen < %s AND (last_seen >= %s OR state = 'open') ORDER BY first_seen""",
        (meter_id, end, start),
    ).fetchall()
    return _frame(rows, {"kind": pl.Utf8, "severity": pl.Utf8, "state": pl.Utf8,
                         "first_seen": pl.Datetime("us", "UTC"), "last_seen": pl.Datetime("us", "UTC"),
                         "rate_l_h": pl.Float64, "message": pl.Utf8, "id": pl.Int64, "acknowledged_by": pl.Utf8,
                         "assigned_to": pl.Utf8, "close_reason": pl.Utf8, "closed_by": pl.Utf8})


def meter_vee_flags(conn: psycopg.Connection, meter_id: str, start: date, end: date) -> pl.DataFrame:
    """VEE outcome of billing periods overlapping [start, end): quality, exceptions and flags (latest run)."""
    rows = conn.execute(
        """SELECT DISTINCT ON (period_start) period_start, period_end, quality, method,
                  array_to_string(exceptions || flags, ', '), consumption_m3
           FROM billing_results WHERE meter_id = %s AND period_start < %s AND period_end >= %s
           ORDER BY period_start, run_id DESC""",
        (meter_id, end, start),
    ).fetchall()
    return _frame(rows, {"period_start": pl.Date, "period_end": pl.Date, "quality": pl.Utf8, "method": pl.Utf8,
                         "flags": pl.Utf8, "consumption_m3": pl.Float64})


# --------------------------------------------------------------------------------------------- customers


def customer_meters(conn: psycopg.Connection, customer_ref: str) -> list[str]:
    rows = conn.execute("SELECT meter_id FROM meters WHERE customer_ref = %s ORDER BY meter_id", (customer_ref,))
    return [r[0] for r in rows]


def customer_daily(conn: psycopg.Connection, meter_ids: Sequence[str], start: date, end: date,
                   since: date | None = None) -> pl.DataFrame:
    """Daily consumption (m3) summed over the meters; `missing` when any of them has no bucket that day.
    Days before `since` (the customer's move-in) are not shown at all."""
    tz = rollup_timezone(conn)
    if since is not None:
        start = min(max(start, since), end)
    frames = [meter_daily(conn, m, start, end, tz) for m in meter_ids]
    if not frames:
        return _fill_days(_frame([], {"day": pl.Date, "index_m3": pl.Float64, "consumption_m3": pl.Float64,
                                      "n_readings": pl.Int64}), start, end)
    return (
        pl.concat(frames)
        .group_by("day", maintain_order=True)
        .agg(pl.col("consumption_m3").sum(), pl.col("missing").any(), pl.col("after_gap").any())
        .sort("day")
    )


def customer_monthly(conn: psycopg.Connection, meter_ids: Sequence[str], first_month: date,
                     end: date, since: date | None = None) -> pl.DataFrame:
    """Per calendar month from `first_month` to `end` (exclusive): consumption (m3) summed over the meters
    (the month's last index minus the previous month's), the days with data of the least-read meter,
    the days of the month and those of them before `end`. One aggregate query over the daily rollups."""
    tz = rollup_timezone(conn)
    prev_month = add_months(month_start(first_month), -1)
    rows = conn.execute(
        """WITH b AS (
               SELECT meter_id, date_trunc('month', bucket AT TIME ZONE %(tz)s)::date AS month,
                      (array_agg(last_m3 ORDER BY bucket DESC))[1] AS last_m3, count(*)::int AS n
               FROM consumption_daily
               WHERE meter_id = ANY(%(m)s) AND bucket >= (%(lo)s::timestamp AT TIME ZONE %(tz)s)
                 AND bucket < (%(hi)s::timestamp AT TIME ZONE %(tz)s)
               GROUP BY 1, 2)
           SELECT meter_id, month, last_m3 - lag(last_m3) OVER (PARTITION BY meter_id ORDER BY month), n FROM b""",
        {"tz": tz, "m": list(meter_ids), "lo": _local_midnight(max(prev_month, since or prev_month)),
         "hi": _local_midnight(end)},
    ).fetchall()
    got = _frame(rows, {"meter_id": pl.Utf8, "month": pl.Date, "consumption_m3": pl.Float64, "n": pl.Int64})
    months = pl.DataFrame({"month": pl.date_range(first_month, end - timedelta(days=1), "1mo", eager=True)})
    grid = months.join(pl.DataFrame({"meter_id": list(meter_ids)}, schema={"meter_id": pl.Utf8}), how="cross")
    return (
        grid.join(got, on=["meter_id", "month"], how="left")
        .with_columns(pl.when(pl.col("consumption_m3") < 0).then(None).otherwise(pl.col("consumption_m3"))
                      .alias("consumption_m3"))
        .group_by("month", maintain_order=True)
        .agg(pl.col("consumption_m3").sum(), pl.col("n").fill_null(0).min().alias("days_with_data"),
             pl.col("consumption_m3").null_count().alias("nulls"))
        .with_columns(
            pl.when((pl.col("days_with_data") > 0) & (pl.col("nulls") == 0)).then(pl.col("consumption_m3"))
            .alias("consumption_m3"),
            pl.col("month").dt.month_end().dt.day().cast(pl.Int64).alias("days"),
            # calendar days of the month before `end`: the divisor of the average per day
            ((pl.min_horizontal(pl.col("month").dt.month_end(), pl.lit(end - timedelta(days=1)))
              - pl.col("month")).dt.total_days() + 1).cast(pl.Int64).alias("days_elapsed"),
        )
        .drop("nulls")
        .sort("month")
    )


def leak_status(conn: psycopg.Connection, meter_ids: Sequence[str], now: datetime,
                since: date | None = None) -> pl.DataFrame:
    """Open leak alerts (continuous flow, night flow, burst) of the meters as of `now`, seen since `since`."""
    rows = conn.execute(
        """SELECT meter_id, kind, severity, first_seen, last_seen, rate_l_h FROM alerts
           WHERE meter_id = ANY(%s) AND state = 'open' AND kind = ANY(%s) AND first_seen <= %s
             AND last_seen >= %s
           ORDER BY first_seen""",
        (list(meter_ids), list(LEAK_KINDS), now, datetime.combine(since or date(1970, 1, 1), datetime.min.time(), UTC)),
    ).fetchall()
    return _frame(rows, {"meter_id": pl.Utf8, "kind": pl.Utf8, "severity": pl.Utf8,
                         "first_seen": pl.Datetime("us", "UTC"), "last_seen": pl.Datetime("us", "UTC"),
                         "rate_l_h": pl.Float64})


# --------------------------------------------------------------------------------------------- refresh


def _night_buckets(d0: date, d1: date, tz: str) -> tuple[list[datetime], list[datetime]]:
    """The hourly buckets starting at NIGHT_FIRST_HOUR and two hours later, local time, of days [d0, d1)."""
    zone = ZoneInfo(tz)
    firsts, thirds = [], []
    day = d0
    while day < d1:
        first = datetime(day.year, day.month, day.day, NIGHT_FIRST_HOUR, tzinfo=zone).astimezone(UTC)
        firsts.append(first)
        thirds.append(first + timedelta(hours=2))
        day += timedelta(days=1)
    return firsts, thirds


def refresh_dashboards(conn: psycopg.Connection, start: datetime, end: datetime) -> None:
    """Bring the dashboard tables up to date after `refresh_rollups(conn, start, end)`; the caller commits.

    district_daily: recomputed for the local days touching [start, end) from consumption_daily (and the night
    flow from consumption_hourly); meter_last_heard: updated from readings in [start, end); heard_hourly:
    rebuilt from meter_last_heard (about 0.5 s for 100,000 meters)."""
    tz = rollup_timezone(conn)
    row = conn.execute(
        "SELECT (%s::timestamptz AT TIME ZONE %s)::date, (%s::timestamptz AT TIME ZONE %s)::date + 1",
        (start, tz, end, tz),
    ).fetchone()
    assert row is not None
    d0, d1 = row
    firsts, thirds = _night_buckets(d0, d1, tz)
    conn.execute("SET LOCAL work_mem = '256MB'")
    conn.execute("SET LOCAL jit = off")
    params = {"d0": d0, "d1": d1, "tz": tz, "firsts": firsts, "thirds": thirds}
    conn.execute("DELETE FROM district_daily WHERE day >= %(d0)s AND day < %(d1)s", params)
    conn.execute(
        """WITH bounds AS (
               SELECT (%(d0)s::date::timestamp AT TIME ZONE %(tz)s) AS lo,
                      (%(d1)s::date::timestamp AT TIME ZONE %(tz)s) AS hi),
           d AS (
               SELECT c.meter_id, c.bucket,
                      c.last_m3 - lag(c.last_m3) OVER (PARTITION BY c.meter_id ORDER BY c.bucket) AS cons
               FROM consumption_daily c
               WHERE c.bucket >= (SELECT lo FROM bounds) - interval '3 days' AND c.bucket < (SELECT hi FROM bounds)),
           dd AS (
               SELECT m.district, (d.bucket AT TIME ZONE %(tz)s)::date AS day,
                      sum(d.cons) FILTER (WHERE d.cons >= 0 AND m.role = 'main') AS cons,
                      count(*) FILTER (WHERE m.role = 'main')::int AS n,
                      sum(d.cons) FILTER (WHERE d.cons >= 0 AND m.role = 'inlet') AS input,
                      count(*) FILTER (WHERE m.role = 'inlet')::int AS n_inlets
               FROM d JOIN meters m USING (meter_id)
               WHERE d.bucket >= (SELECT lo FROM bounds) AND m.district IS NOT NULL GROUP BY 1, 2),
           h1 AS (SELECT meter_id, bucket, last_m3, last_time FROM consumption_hourly WHERE bucket = ANY(%(firsts)s)),
           h3 AS (SELECT meter_id, bucket - interval '2 hours' AS bucket, last_m3, last_time
                  FROM consumption_hourly WHERE bucket = ANY(%(thirds)s)),
           h AS (
               SELECT h1.meter_id, (h1.bucket AT TIME ZONE %(tz)s)::date AS day,
                      (h3.last_m3 - h1.last_m3) * 1000.0
                        / nullif(extract(epoch FROM h3.last_time - h1.last_time) / 3600.0, 0) AS l_h
               FROM h1 JOIN h3 USING (meter_id, bucket)),
           n AS (
               SELECT m.district, h.day, sum(h.l_h) AS l_h, count(*)::int AS n
               FROM h JOIN meters m USING (meter_id)
               WHERE h.l_h >= 0 AND m.district IS NOT NULL AND m.role = 'main' GROUP BY 1, 2)
           INSERT INTO district_daily (district, day, consumption_m3, n_meters, night_flow_l_h, n_night, input_m3,
                                       n_inlets)
           SELECT district, day, dd.cons, coalesce(dd.n, 0), n.l_h, coalesce(n.n, 0), dd.input,
                  coalesce(dd.n_inlets, 0)
           FROM dd FULL JOIN n USING (district, day)
           WHERE day >= %(d0)s AND day < %(d1)s""",
        params,
    )
    _refresh_input_night_flow(conn, params)
    # heard = heard by radio: a manual or imported read neither credits a gateway nor hides a no-read
    conn.execute(
        """INSERT INTO meter_last_heard (meter_id, gateway_id, last_heard)
           SELECT DISTINCT ON (meter_id) meter_id, gateway_id, time FROM readings_between(%s, %s)
           WHERE source NOT IN ('manual', 'import') ORDER BY meter_id, time DESC
           ON CONFLICT (meter_id) DO UPDATE
             SET gateway_id = coalesce(excluded.gateway_id, meter_last_heard.gateway_id),
                 last_heard = excluded.last_heard
             WHERE excluded.last_heard > meter_last_heard.last_heard""",
        (start, end),
    )
    refresh_heard_hourly(conn)
    conn.execute(
        """INSERT INTO meterflow_meta (key, value) VALUES ('dashboards_refreshed_at', now()::text)
           ON CONFLICT (key) DO UPDATE SET value = excluded.value""")


def _refresh_input_night_flow(conn: psycopg.Connection, params: dict[str, Any]) -> None:
    """Minimum night flow of each district's input: the smallest hourly inflow (L/h, summed over the district's
    inlet meters) of the hours starting 02:00 and 03:00 local, per day."""
    conn.execute(
        """WITH bounds AS (
               SELECT (%(d0)s::date::timestamp AT TIME ZONE %(tz)s) AS lo,
                      (%(d1)s::date::timestamp AT TIME ZONE %(tz)s) AS hi),
           ih AS (
               SELECT m.district, c.bucket,
                      (c.last_m3 - lag(c.last_m3) OVER w) * 1000.0
                        / nullif(extract(epoch FROM c.last_time - lag(c.last_time) OVER w) / 3600.0, 0) AS l_h
               FROM consumption_hourly c JOIN meters m USING (meter_id)
               WHERE m.role = 'inlet' AND m.district IS NOT NULL
                 AND c.bucket >= (SELECT lo FROM bounds) - interval '3 hours' AND c.bucket < (SELECT hi FROM bounds)
               WINDOW w AS (PARTITION BY c.meter_id ORDER BY c.bucket)),
           hours AS (
               SELECT district, bucket, sum(l_h) AS l_h FROM ih
               WHERE extract(hour FROM bucket AT TIME ZONE %(tz)s) IN (2, 3) AND l_h >= 0
                 AND bucket >= (SELECT lo FROM bounds)
               GROUP BY 1, 2)
           INSERT INTO district_daily (district, day, input_mnf_l_h)
           SELECT district, (bucket AT TIME ZONE %(tz)s)::date, min(l_h) FROM hours GROUP BY 1, 2
           ON CONFLICT (district, day) DO UPDATE SET input_mnf_l_h = excluded.input_mnf_l_h""",
        params,
    )


def refresh_heard_hourly(conn: psycopg.Connection) -> None:
    """Rebuild heard_hourly from meter_last_heard and the installed meters."""
    conn.execute("DELETE FROM heard_hourly")
    conn.execute(
        """WITH m AS (
               SELECT m.meter_id, coalesce(m.district, '(none)') AS district, h.gateway_id,
                      coalesce(date_trunc('hour', h.last_heard), '-infinity') AS hour
               FROM meters m LEFT JOIN meter_last_heard h USING (meter_id)
               WHERE m.removal_date IS NULL OR m.removal_date > current_date)
           INSERT INTO heard_hourly (dim, key, hour, meters)
           SELECT 'district', district, hour, count(*) FROM m GROUP BY district, hour
           UNION ALL
           SELECT 'gateway', coalesce(gateway_id, '(direct)'), hour, count(*) FROM m
           WHERE hour > '-infinity' GROUP BY coalesce(gateway_id, '(direct)'), hour"""
    )
