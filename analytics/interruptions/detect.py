"""Supply interruptions and communication outages from meter readings: pure polars, no I/O.

A cut-off shows in the meters of a street or district as a collective standstill: they keep reporting,
but no index moves. Idle homes stand still too (at night, at work), so a standstill is judged by how
rare it is FOR THOSE METERS AT THAT HOUR: per meter, local hour and weekday/weekend, the share of past
runs of the same length that stood still (learnt from the history handed in, that hour pooled with its
neighbours, smoothed towards the meter's all-days rate and the fleet's rate). The evidence of a group at
hour t is the sum over its meters that stand still of -ln P(standstill of the run's length ending at that
hour); a home that drew no water in the day before the run (away) is no evidence. An interruption opens
when the evidence reaches `threshold_nats` with at least `min_meters` meters, or when meters raise
dry/empty-pipe alarms.
Groups are each street and each district; a district interruption absorbs the street ones it covers.

A communication outage (most of a district's live meters silent for hours: a gateway or its backhaul)
is its own kind; silent hours are never evidence of a supply interruption.

Result (INTERRUPTION_SCHEMA), one row per interruption:
  district, street      street is null for a district-wide interruption (and every communication outage)
  kind                  supply | communication
  cause                 standstill | dry_alarm | silence
  start, end            first hour, and the hour it was over (null: ongoing at the end of the data)
  detected_at           end of the hour whose data first sufficed
  meters                the meters of the street or district (communication: those that fell silent)
  score                 evidence in nats when it opened (communication: hours silent)
"""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl

from analytics.interruptions.config import InterruptionConfig
from analytics.leaks.hourly import UTC_TIME, hourly_use, normalise_readings

INTERRUPTION_SCHEMA: dict[str, pl.DataType] = {
    "district": pl.String(),
    "street": pl.String(),
    "kind": pl.String(),
    "cause": pl.String(),
    "start": UTC_TIME,
    "end": UTC_TIME,
    "detected_at": UTC_TIME,
    "meters": pl.List(pl.String()),
    "score": pl.Float64(),
}
PREMISES_SCHEMA: dict[str, pl.DataType] = {"meter_id": pl.String(), "district": pl.String(),
                                           "street": pl.String()}
HOUR = timedelta(hours=1)


def empty() -> pl.DataFrame:
    return pl.DataFrame(schema=INTERRUPTION_SCHEMA)


def groups_of(premises: pl.DataFrame) -> pl.DataFrame:
    """Membership (gid, district, street, meter_id, home_street): one group per street and one per district."""
    p = premises.select([pl.col(c).cast(t) for c, t in PREMISES_SCHEMA.items()]).filter(
        pl.col("district").is_not_null()).unique("meter_id").with_columns(pl.col("street").alias("home_street"))
    streets = p.filter(pl.col("street").is_not_null())
    districts = p.with_columns(pl.lit(None, dtype=pl.String()).alias("street"))
    both = pl.concat([streets, districts])
    return both.with_columns(
        (pl.col("district") + pl.lit("\x1f") + pl.col("street").fill_null("")).alias("gid"))


def holiday_dates(cfg: InterruptionConfig, first_year: int, last_year: int) -> list[date]:
    """Public holidays (they behave like Sundays: people sleep in) of the configured country."""
    if not cfg.holiday_country:
        return []
    import holidays

    cal = holidays.country_holidays(cfg.holiday_country, subdiv=cfg.holiday_subdiv,
                                    years=range(first_year, last_year + 1))
    return sorted(cal.keys())


def meter_hours(readings: pl.DataFrame, meters: list[str], cfg: InterruptionConfig, tz: str,
                end: datetime | None = None) -> pl.DataFrame:
    """One row per meter and UTC hour on a complete grid up to `end` (exclusive): heard, reported (use known),
    stood still, moved, dry alarm, `state` (hours since the meter last moved, capped) and `present`."""
    data = normalise_readings(readings).filter(pl.col("meter_id").is_in(meters))
    hourly = hourly_use(data, max_spread_hours=cfg.spread_hours)
    if hourly.is_empty():
        return pl.DataFrame()
    lo = hourly.get_column("hour").min()
    hi = hourly.get_column("hour").max()
    assert isinstance(lo, datetime) and isinstance(hi, datetime)
    if end is not None:
        hi = (end - timedelta(microseconds=1)).replace(minute=0, second=0, microsecond=0)
    hours = pl.datetime_range(lo, hi, "1h", eager=True, time_zone="UTC").cast(UTC_TIME).alias("hour")
    grid = pl.DataFrame({"meter_id": sorted(set(data.get_column("meter_id").to_list()))}).join(
        hours.to_frame(), how="cross")
    dry = (data.filter(pl.col("alarms").list.eval(pl.element().is_in(cfg.dry_words)).list.any())
           .select("meter_id", pl.col("time").dt.truncate("1h").alias("hour")).unique()
           .with_columns(pl.lit(True).alias("dry")))
    local = pl.col("hour").dt.convert_time_zone(tz)
    days_off = holiday_dates(cfg, lo.year, hi.year)
    since = (pl.col("hour") - pl.col("last_move").shift(1).over("meter_id")).dt.total_hours() - 1
    return (grid.join(hourly, on=["meter_id", "hour"], how="left")
            .join(dry, on=["meter_id", "hour"], how="left")
            .sort("meter_id", "hour")
            .with_columns(pl.col("n").fill_null(0), pl.col("dry").fill_null(False),
                          local.dt.hour().cast(pl.Int8()).alias("hod"),
                          ((local.dt.weekday() >= 6) | local.dt.date().is_in(days_off)).alias("weekend"))
            .with_columns((pl.col("n") > 0).alias("heard"),
                          ((pl.col("n") > 0) & pl.col("use_l").is_not_null()).alias("rep"),
                          (pl.col("use_l") >= cfg.zero_l).fill_null(False).alias("moved"))
            .with_columns((pl.col("rep") & ~pl.col("moved")).alias("still"),
                          pl.when(pl.col("moved")).then(pl.col("hour")).otherwise(None)
                          .forward_fill().over("meter_id").alias("last_move"),
                          (pl.col("moved").cast(pl.Int32()).rolling_sum(cfg.presence_hours, min_samples=1)
                           .shift(1).over("meter_id").fill_null(0) > 0).alias("present"),
                          pl.col("heard").cast(pl.Int32()).rolling_sum(cfg.live_hours, min_samples=1)
                          .shift(1).over("meter_id").fill_null(0).alias("heard_recent"))
            .with_columns(since.clip(0, cfg.streak_states).fill_null(cfg.streak_states).cast(pl.Int8())
                          .alias("state"))
            .drop("last_move"))


def standstill_rates(mh: pl.DataFrame, cfg: InterruptionConfig) -> tuple[pl.DataFrame, ...]:
    """P(a present meter stands still at local hour hod | hours since it last moved), per fleet, per meter,
    per meter and day type; each smoothed towards the broader one by prior_weight pseudo-hours. Each hour's
    rate is learnt from the hours within pool_hours of it too: habits drift by the hour, not at its edges,
    and the pooled hours give the short history of the hourly flow several times the data per rate."""
    base = mh.filter(pl.col("rep") & pl.col("present")).select("meter_id", "hod", "weekend", "state", "still")
    base = pl.concat([base.with_columns(((pl.col("hod") + (d + 24)) % 24).cast(pl.Int8()).alias("hod"))
                      for d in range(-cfg.pool_hours, cfg.pool_hours + 1)])
    a = cfg.prior_weight
    fleet = base.group_by("hod", "state").agg(((pl.col("still").sum() + 1.0) / (pl.len() + 2.0)).alias("pg"))
    meter = (base.group_by("meter_id", "hod", "state").agg(pl.col("still").sum().alias("s"), pl.len().alias("c"))
             .join(fleet, on=["hod", "state"], how="left")
             .select("meter_id", "hod", "state", ((pl.col("s") + a * pl.col("pg")) / (pl.col("c") + a)).alias("pm")))
    day = (base.group_by("meter_id", "hod", "weekend", "state")
           .agg(pl.col("still").sum().alias("s"), pl.len().alias("c"))
           .join(meter, on=["meter_id", "hod", "state"], how="left")
           .select("meter_id", "hod", "weekend", "state",
                   ((pl.col("s") + a * pl.col("pm")) / (pl.col("c") + a)).alias("pd")))
    return fleet, meter, day


def meter_costs(mh: pl.DataFrame, cfg: InterruptionConfig, district_of: pl.DataFrame) -> pl.DataFrame:
    """Evidence per present meter-hour that stands still: -ln P(standing still then), tempered by how the
    rest of the fleet behaves in that hour: weight w = (movers in the other districts + 1) / (movers expected
    there + 1), capped at 1. A morning when the whole town sleeps in (a holiday, a heat wave, the clock
    change) weighs little; a district whose neighbours draw water as usual weighs fully."""
    fleet, meter, day = standstill_rates(mh, cfg)
    p = pl.coalesce("pd", "pm", "pg", pl.lit(0.5)).clip(cfg.p_floor, 1.0)
    rows = (mh.filter(pl.col("rep") & pl.col("present"))
            .select("meter_id", "hour", "hod", "weekend", "state", "still", "moved")
            .join(day, on=["meter_id", "hod", "weekend", "state"], how="left")
            .join(meter, on=["meter_id", "hod", "state"], how="left")
            .join(fleet, on=["hod", "state"], how="left")
            .with_columns(p.alias("p"))
            .join(district_of, on="meter_id", how="left"))
    if cfg.fleet_tempering:
        per = rows.group_by("hour", "district").agg(pl.col("moved").sum().alias("mv"),
                                                    (1.0 - pl.col("p")).sum().alias("ex"))
        per = per.with_columns(
            (((pl.col("mv").sum().over("hour") - pl.col("mv") + 1.0)
              / (pl.col("ex").sum().over("hour") - pl.col("ex") + 1.0)).clip(0.0, 1.0)).alias("w"))
        rows = rows.join(per.select("hour", "district", "w"), on=["hour", "district"], how="left")
    else:
        rows = rows.with_columns(pl.lit(1.0).alias("w"))
    return rows.filter(pl.col("still")).select("meter_id", "hour", (-pl.col("p").log() * pl.col("w")).alias("cost"))


def _group_hours(mh: pl.DataFrame, members: pl.DataFrame) -> pl.DataFrame:
    streets = members.group_by("gid").agg(pl.col("home_street").drop_nulls().n_unique().clip(1, 2)
                                          .alias("dry_streets_needed"))
    return (members.select("gid", "meter_id", "home_street")
            .join(mh.select("meter_id", "hour", "rep", "moved", "dry", "heard", "heard_recent"), on="meter_id")
            .group_by("gid", "hour")
            .agg(pl.col("rep").sum().alias("n_rep"), pl.col("moved").sum().alias("n_moved"),
                 pl.col("dry").sum().alias("n_dry"),
                 pl.col("home_street").filter(pl.col("dry")).drop_nulls().n_unique().alias("dry_streets"),
                 (pl.col("heard_recent") > 0).sum().alias("n_live"),
                 ((pl.col("heard_recent") > 0) & ~pl.col("heard")).sum().alias("n_silent"),
                 pl.col("meter_id").filter((pl.col("heard_recent") > 0) & ~pl.col("heard")).alias("silent"))
            .join(streets, on="gid", how="left")
            .sort("gid", "hour"))


def _runs(df: pl.DataFrame, flag: str) -> pl.DataFrame:
    """Rows where `flag` holds, numbered by run (`run`) and position in the run from 1 (`pos`)."""
    return (df.with_columns((pl.col(flag) != pl.col(flag).shift(1).over("gid")).fill_null(True)
                            .cum_sum().over("gid").alias("run"))
            .filter(pl.col(flag))
            .with_columns(pl.int_range(1, pl.len() + 1).over("gid", "run").alias("pos")))


def detect_supply(mh: pl.DataFrame, members: pl.DataFrame, cfg: InterruptionConfig,
                  gh: pl.DataFrame | None = None) -> pl.DataFrame:
    """Standstill and dry-alarm interruptions per group (street and district), before absorption.

    A group's run: consecutive hours in which none of its meters moved and some reported. Its evidence
    at hour t: the sum of the meter-hour costs of the run up to t."""
    gh = _group_hours(mh, members) if gh is None else gh
    last_hour = mh.get_column("hour").max()
    runs = _runs(gh.with_columns(((pl.col("n_moved") == 0) & ((pl.col("n_rep") > 0) | (pl.col("n_dry") > 0)))
                                 .alias("still")), "still")
    hourly = (runs.select("gid", "hour").join(members.select("gid", "meter_id"), on="gid")
              .join(meter_costs(mh, cfg, members.filter(pl.col("street").is_null()).select("meter_id", "district")),
                    on=["meter_id", "hour"], how="inner")
              .group_by("gid", "hour").agg(pl.col("cost").sum().alias("h1"), pl.len().alias("k_h")))
    runs = (runs.join(hourly, on=["gid", "hour"], how="left")
            .with_columns(pl.col("h1").fill_null(0.0), pl.col("k_h").fill_null(0))
            .sort("gid", "hour")
            .with_columns(pl.col("h1").cum_sum().over("gid", "run").alias("score"),
                          pl.col("k_h").cum_max().over("gid", "run").alias("k"))
            .with_columns(((pl.col("n_dry") >= cfg.dry_min_meters)  # a district needs dry alarms in 2 streets
                           & (pl.col("dry_streets") >= pl.col("dry_streets_needed"))).alias("by_dry"))
            .with_columns((((pl.col("score") >= cfg.threshold_nats) & (pl.col("k") >= cfg.min_meters))
                           | pl.col("by_dry")).alias("trig")))
    per_run = (runs.group_by("gid", "run").agg(
        pl.col("hour").min().alias("run_start"),
        pl.col("hour").max().alias("run_last"),
        pl.col("hour").filter(pl.col("trig")).min().alias("trig_hour"),
        pl.col("hour").filter(pl.col("h1") >= cfg.start_nats).min().alias("first_odd"),
        pl.col("score").filter(pl.col("trig")).first().alias("score"),
        pl.col("by_dry").filter(pl.col("trig")).first().alias("by_dry"),
    ).filter(pl.col("trig_hour").is_not_null()))
    if per_run.is_empty():
        return empty()
    names = members.group_by("gid").agg(pl.col("district").first(), pl.col("street").first(),
                                        pl.col("meter_id").sort().alias("meters"))
    out = per_run.join(names, on="gid").with_columns(
        pl.lit("supply").alias("kind"),
        pl.when(pl.col("by_dry")).then(pl.lit("dry_alarm")).otherwise(pl.lit("standstill")).alias("cause"),
        pl.when(pl.col("first_odd") <= pl.col("trig_hour")).then(pl.col("first_odd"))
        .otherwise(pl.col("run_start")).alias("start"),
        pl.when(pl.col("run_last") >= last_hour).then(None).otherwise(pl.col("run_last") + HOUR).alias("end"),
        (pl.col("trig_hour") + HOUR).alias("detected_at"),
    )
    return out.select([pl.col(c).cast(t) for c, t in INTERRUPTION_SCHEMA.items()])


def detect_communication(gh: pl.DataFrame, members: pl.DataFrame, cfg: InterruptionConfig,
                         last_hour: datetime) -> pl.DataFrame:
    """Districts whose live meters fall silent together for comm_min_hours or longer."""
    d = gh.join(members.filter(pl.col("street").is_null()).select("gid", "district").unique(), on="gid")
    flag = (pl.col("n_live") >= cfg.comm_min_meters) & (pl.col("n_silent") >= cfg.comm_share * pl.col("n_live"))
    runs = _runs(d.with_columns(flag.alias("off")), "off")
    per = runs.group_by("gid", "run").agg(
        pl.col("district").first(), pl.col("hour").min().alias("start"), pl.col("hour").max().alias("last"),
        pl.len().alias("hours"), pl.col("silent").first().list.sort().alias("meters"),
    ).filter(pl.col("hours") >= cfg.comm_min_hours)
    if per.is_empty():
        return empty()
    out = per.with_columns(
        pl.lit(None, dtype=pl.String()).alias("street"), pl.lit("communication").alias("kind"),
        pl.lit("silence").alias("cause"),
        pl.when(pl.col("last") >= last_hour).then(None).otherwise(pl.col("last") + HOUR).alias("end"),
        (pl.col("start") + cfg.comm_min_hours * HOUR).alias("detected_at"),
        pl.col("hours").cast(pl.Float64()).alias("score"),
    )
    return out.select([pl.col(c).cast(t) for c, t in INTERRUPTION_SCHEMA.items()])


def absorb(supply: pl.DataFrame) -> pl.DataFrame:
    """Drop street interruptions that a district interruption of the same district covers in time (it
    overlaps them and lasts at least as long)."""
    dist = supply.filter(pl.col("street").is_null())
    streets = supply.filter(pl.col("street").is_not_null())
    if dist.is_empty() or streets.is_empty():
        return supply
    far = datetime(9999, 1, 1, tzinfo=ZoneInfo("UTC"))
    cover = (streets.with_row_index("sid")
             .join(dist.select("district", pl.col("start").alias("d_start"), pl.col("end").alias("d_end")),
                   on="district")
             .filter((pl.col("start") < pl.col("d_end").fill_null(far))
                     & (pl.col("end").fill_null(far) > pl.col("d_start"))
                     & (pl.col("d_end").fill_null(far) >= pl.col("end").fill_null(far)))
             .get_column("sid").unique().to_list())
    kept = streets.with_row_index("sid").filter(~pl.col("sid").is_in(cover)).drop("sid")
    return pl.concat([dist, kept])


def detect_interruptions(readings: pl.DataFrame, premises: pl.DataFrame, cfg: InterruptionConfig, tz: str,
                         end: datetime | None = None) -> pl.DataFrame:
    """Supply interruptions (standstill, dry alarms) and communication outages; see the module docstring.
    `premises`: meter_id, district, street. `end`: the exclusive end of the data (now, in the hourly flow)."""
    members = groups_of(premises)
    meters = members.get_column("meter_id").unique().to_list()
    mh = meter_hours(readings, meters, cfg, tz, end)
    if mh.is_empty():
        return empty()
    members = members.filter(pl.col("meter_id").is_in(mh.get_column("meter_id").unique().to_list()))
    gh = _group_hours(mh, members)
    last = mh.get_column("hour").max()
    assert isinstance(last, datetime)
    supply = absorb(detect_supply(mh, members, cfg, gh))
    comm = detect_communication(gh, members, cfg, last)
    return pl.concat([supply, comm]).sort("start", "district", "street", nulls_last=False)


def to_json_rows(df: pl.DataFrame, tz: str) -> list[dict[str, Any]]:
    """Rows as JSON-ready dicts, times in `tz` with their offset."""
    zone = ZoneInfo(tz)
    out: list[dict[str, Any]] = []
    for r in df.iter_rows(named=True):
        row = {k: (v.astimezone(zone).isoformat() if isinstance(v, datetime) else v) for k, v in r.items()}
        sc = r.get("score")
        if isinstance(sc, float):
            row["score"] = None if math.isnan(sc) else round(sc, 2)
        out.append(row)
    return out
