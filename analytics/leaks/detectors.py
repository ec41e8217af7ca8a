"""Leak and anomaly detectors: pure functions from hourly use (or readings) to detections.

Every detection is one row of DETECTION_SCHEMA (analytics/leaks/incidents.py), one per incident of one meter:
  kind               leak (an incident: continuous flow, night flow and leak alarms as its evidence) | burst |
                     backflow | stuck | silent | meter_alarm:<word>
  start, end         the evidence: first and last (exclusive) hour of the condition
  detected_at        when the detector could first have known (end of the first qualifying window)
  valid_until        until when the verdict holds without new evidence
  state              open | closed (as of the end of the data), with close_reason and closed_at
  rate_l_h           estimated leak or flow rate; volume_m3 estimated volume lost or drawn, counted once
Thresholds come from LeakConfig (analytics/leaks/config.py), where each is documented.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import polars as pl

from analytics.leaks.config import LeakConfig
from analytics.leaks.hourly import UTC_TIME, hourly_use, is_normalised, normalise_readings, unwrap_rollovers
from analytics.leaks.incidents import DETECTION_SCHEMA, evidence, incidents

ALARM_SEVERITY = {"leak": "critical", "burst": "critical", "backflow": "warning", "tamper": "warning",
                  "dry": "warning", "low_battery": "info"}
# why the detector closes an alert of each kind when its condition has ended (leak: incidents.py)
CLOSE_REASONS = {"burst": "flow_stopped", "backflow": "flow_stopped", "stuck": "flowing_again",
                 "silent": "reporting_again"}
SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}


def empty() -> pl.DataFrame:
    return pl.DataFrame(schema=DETECTION_SCHEMA)


def _finish(df: pl.DataFrame, kind: str, severity: pl.Expr, details: pl.Expr | None = None) -> pl.DataFrame:
    """Add kind/severity/details (state is set by `lifecycle`) and select DETECTION_SCHEMA columns in order."""
    if df.is_empty():
        return empty()
    df = df.with_columns(pl.lit(kind).alias("kind"), severity.alias("severity"),
                         (details if details is not None else pl.lit("{}")).alias("details"),
                         pl.lit("open").alias("state"), pl.lit(None, dtype=pl.String()).alias("close_reason"),
                         pl.lit(None, dtype=UTC_TIME).alias("closed_at"))
    return df.select([pl.col(c).cast(t) for c, t in DETECTION_SCHEMA.items()])


def _runs(df: pl.DataFrame, flag: str, by: str = "meter_id") -> pl.DataFrame:
    """Rows where `flag` is true, with a `run` id numbering consecutive true rows per `by` group."""
    return df.with_columns(
        (pl.col(flag) != pl.col(flag).shift(1).over(by)).fill_null(True).cum_sum().over(by).alias("run")
    ).filter(pl.col(flag))


def mark_glitches(hourly: pl.DataFrame, cfg: LeakConfig) -> pl.DataFrame:
    """Add `glitch`: hours of an index excursion that cancels out within glitch_hours (a large change of one
    sign followed by the opposite one, net change under 20 % + 50 L) — a data fault such as two interleaved
    series in an export, not water. Burst and backflow ignore those hours."""
    k_max = cfg.glitch_hours
    u = pl.col("use_l").fill_null(0.0)
    big = u.abs() >= cfg.glitch_min_l
    flags = []
    for k in range(1, k_max + 1):
        window = sum((u.shift(-j).over("meter_id").fill_null(0.0) for j in range(k + 1)), pl.lit(0.0))
        opposite = pl.any_horizontal([(u * u.shift(-j).over("meter_id").fill_null(0.0)) < 0
                                      for j in range(1, k + 1)])
        flags.append((big & opposite & (window.abs() < 0.2 * u.abs() + 50.0)).alias(f"_g{k}"))
    df = hourly.sort("meter_id", "hour").with_columns(flags)
    # keep the shortest cancelling window of each start
    df = df.with_columns([(pl.col(f"_g{k}") & ~pl.any_horizontal([pl.col(f"_g{j}") for j in range(1, k)]))
                          .alias(f"_g{k}") for k in range(2, k_max + 1)])
    # an hour is a glitch when a cancelling excursion of length k starts within the k hours before it
    marks = [pl.col(f"_g{k}").shift(j).over("meter_id").fill_null(False)
             for k in range(1, k_max + 1) for j in range(k + 1)]
    return df.with_columns(pl.any_horizontal(marks).alias("glitch")).drop([f"_g{k}" for k in range(1, k_max + 1)])


def burst(hourly: pl.DataFrame, cfg: LeakConfig, tz: str) -> pl.DataFrame:
    """Flow far above the meter's own history, and sudden large index jumps.

    An hour is a burst when its use is at least burst_rate_l_h for burst_minutes and above
    burst_history_factor times the meter's 99th-percentile hour, or when it exceeds burst_jump_m3.
    A local day is a burst when it is above burst_day_factor times the median of the previous 14 days
    and at least burst_day_min_l above it. An episode is a burst when it lost at least burst_min_m3 above normal
    use (or jumped burst_jump_m3 in an hour). Rate: the largest hour; volume: use of the flagged hours/days."""
    hour_min = cfg.burst_rate_l_h * cfg.burst_minutes / 60.0
    h = mark_glitches(hourly, cfg).with_columns(
        pl.col("use_l").filter(pl.col("use_l") > 0).quantile(0.99).over("meter_id").alias("p99"),
    ).with_columns(
        ((((pl.col("use_l") >= hour_min) & (pl.col("use_l") >= cfg.burst_history_factor * pl.col("p99")))
          | (pl.col("use_l") >= cfg.burst_jump_m3 * 1000.0)) & ~pl.col("glitch")).fill_null(False).alias("q")
    )
    hours = h.filter(pl.col("q")).select(
        "meter_id", pl.col("hour").alias("start"), (pl.col("hour") + timedelta(hours=1)).alias("end"),
        pl.col("use_l").alias("peak"), pl.col("use_l").alias("vol"), pl.lit("hour").alias("why"))
    local = pl.col("hour").dt.convert_time_zone(tz)
    days = (
        h.with_columns(local.dt.date().alias("day"))
        .group_by("meter_id", "day")
        .agg(pl.col("use_l").filter(~pl.col("glitch")).sum().alias("day_l"),
             pl.col("use_l").null_count().alias("unknown"),
             pl.col("hour").min().alias("start"), (pl.col("hour").max() + timedelta(hours=1)).alias("end"),
             pl.col("use_l").max().alias("peak"))
        .sort("meter_id", "day")
        # the typical day ignores empty days (a holiday must not make the return day a burst)
        .with_columns(pl.when(pl.col("day_l") > 0).then(pl.col("day_l")).shift(1)
                      .rolling_median(14, min_samples=7).over("meter_id").alias("typ"))
        .filter((pl.col("unknown") <= 2) & pl.col("typ").is_not_null()
                & (pl.col("day_l") > cfg.burst_day_factor * pl.col("typ"))
                & (pl.col("day_l") - pl.col("typ") >= cfg.burst_day_min_l))
        .select("meter_id", "start", "end", "peak", (pl.col("day_l") - pl.col("typ")).alias("vol"),
                pl.lit("day").alias("why"))
    )
    both = pl.concat([hours, days])
    if both.is_empty():
        return empty()
    eps = (
        both.sort("meter_id", "start")
        .with_columns(pl.col("end").cum_max().shift(1).over("meter_id").alias("prev_end"))
        .with_columns((pl.col("start") > pl.col("prev_end")).fill_null(True).cum_sum().over("meter_id").alias("run"))
        .group_by("meter_id", "run")
        .agg(pl.col("start").min(), pl.col("end").max(), pl.col("peak").max().alias("rate_l_h"),
             (pl.col("vol").sum() / 1000.0).alias("volume_m3"), pl.col("why").unique().sort().alias("why"))
        .with_columns(pl.col("end").alias("detected_at"), pl.col("end").alias("valid_until"))
        .filter((pl.col("volume_m3") >= cfg.burst_min_m3) | (pl.col("rate_l_h") >= cfg.burst_jump_m3 * 1000.0))
    )
    details = pl.format('{{"basis": "{}"}}', pl.col("why").list.join("+"))
    return _finish(eps, "burst", pl.lit("critical"), details)


def backflow(hourly: pl.DataFrame, cfg: LeakConfig) -> pl.DataFrame:
    """The index going backwards by more than backflow_min_l and at most 1 m3: reverse flow. Larger decreases are
    resets or unregistered exchanges (the VEE's business), rollovers are unwrapped before (hourly.py)."""
    h = mark_glitches(hourly, cfg).with_columns(
        ((pl.col("use_l") < -cfg.backflow_min_l) & ~pl.col("glitch")).fill_null(False).alias("q"))
    eps = (
        _runs(h, "q")
        .group_by("meter_id", "run")
        .agg(pl.col("hour").min().alias("start"), (pl.col("hour").max() + timedelta(hours=1)).alias("end"),
             (-pl.col("use_l")).max().alias("rate_l_h"), (-pl.col("use_l").sum() / 1000.0).alias("volume_m3"))
        .with_columns(pl.col("end").alias("detected_at"), pl.col("end").alias("valid_until"))
        .filter(pl.col("volume_m3") <= 1.0)
    )
    return _finish(eps, "backflow", pl.lit("warning"))


def stuck(hourly: pl.DataFrame, cfg: LeakConfig, tz: str) -> pl.DataFrame:
    """Zero use for stuck_days local days on a premise whose median day before was above occupied_min_l_day."""
    local = pl.col("hour").dt.convert_time_zone(tz)
    days = (
        hourly.with_columns(local.dt.date().alias("day"))
        .group_by("meter_id", "day")
        .agg(pl.col("use_l").sum().alias("day_l"), pl.col("use_l").is_not_null().sum().alias("known"),
             pl.col("hour").min().alias("d_start"), (pl.col("hour").max() + timedelta(hours=1)).alias("d_end"))
        .sort("meter_id", "day")
        .with_columns(
            pl.col("day_l").shift(1).rolling_median(28, min_samples=7).over("meter_id").alias("typ"),
            ((pl.col("day_l").abs() < 0.5) & (pl.col("known") >= 12)).alias("q"),
        )
    )
    eps = (
        _runs(days, "q")
        .group_by("meter_id", "run")
        .agg(pl.col("d_start").min().alias("start"), pl.col("d_end").max().alias("end"),
             pl.col("typ").first().alias("typ"), pl.len().alias("days"),
             pl.col("d_end").sort().get(cfg.stuck_days - 1, null_on_oob=True).alias("detected_at"))
        .filter((pl.col("days") >= cfg.stuck_days) & (pl.col("typ") > cfg.occupied_min_l_day))
        .with_columns(pl.col("end").alias("valid_until"), (pl.col("typ") / 24.0).alias("rate_l_h"),
                      (pl.col("typ") * pl.col("days") / 1000.0).alias("volume_m3"))
    )
    details = pl.format('{{"days": {}, "typical_l_day": {}}}', pl.col("days"), pl.col("typ").round(1))
    return _finish(eps, "stuck", pl.lit("warning"), details)


def silent(readings: pl.DataFrame, cfg: LeakConfig, as_of: datetime) -> pl.DataFrame:
    """No telegram for silent_hours: gaps between readings, and the time since the last one until as_of."""
    r = (readings if is_normalised(readings) else normalise_readings(readings)).select("meter_id", "time")
    if r.is_empty():
        return empty()
    tail = r.group_by("meter_id").agg(pl.col("time").max()).with_columns(
        pl.lit(as_of).cast(UTC_TIME).alias("next"))
    gaps = (
        r.with_columns(pl.col("time").shift(-1).over("meter_id").alias("next"))
        .filter(pl.col("next").is_not_null())
    )
    eps = (
        pl.concat([gaps.select("meter_id", "time", "next"), tail.select("meter_id", "time", "next")])
        .filter((pl.col("next") - pl.col("time")) >= timedelta(hours=cfg.silent_hours))
        .select("meter_id", pl.col("time").alias("start"), pl.col("next").alias("end"),
                (pl.col("time") + timedelta(hours=cfg.silent_hours)).alias("detected_at"),
                pl.col("next").alias("valid_until"),
                pl.lit(None, dtype=pl.Float64()).alias("rate_l_h"), pl.lit(None, dtype=pl.Float64()).alias("volume_m3"))
    )
    details = pl.format('{{"hours": {}}}', ((pl.col("end") - pl.col("start")).dt.total_minutes() / 60.0).round(1))
    return _finish(eps, "silent", pl.lit("info"), details)


def meter_alarms(readings: pl.DataFrame) -> pl.DataFrame:
    """Alarm words reported by the meter (readings.alarms), one episode per run of readings carrying the word.

    start/end: first and last reading with the word; the duration is end - start."""
    r = readings if is_normalised(readings) else normalise_readings(readings)
    if r.is_empty() or not r.get_column("alarms").list.len().gt(0).any():
        return empty()
    r = r.with_columns(pl.int_range(pl.len()).over("meter_id").alias("i"))
    x = r.select("meter_id", "time", "i", "alarms").explode("alarms").filter(pl.col("alarms").is_not_null())
    if x.is_empty():
        return empty()
    x = x.rename({"alarms": "word"}).with_columns(pl.col("word").str.to_lowercase()).sort("meter_id", "word", "i")
    eps = (
        x.with_columns(
            ((pl.col("i") - pl.col("i").shift(1).over("meter_id", "word")) != 1).fill_null(True)
            .cum_sum().over("meter_id", "word").alias("run"))
        .group_by("meter_id", "word", "run")
        .agg(pl.col("time").min().alias("start"), pl.col("time").max().alias("end"), pl.len().alias("readings"))
        .with_columns(pl.col("start").alias("detected_at"), pl.col("end").alias("valid_until"),
                      pl.lit(None, dtype=pl.Float64()).alias("rate_l_h"),
                      pl.lit(None, dtype=pl.Float64()).alias("volume_m3"),
                      ("meter_alarm:" + pl.col("word")).alias("kind"),
                      pl.col("word").replace_strict(ALARM_SEVERITY, default="warning").alias("severity"),
                      pl.lit("open").alias("state"), pl.lit(None, dtype=pl.String()).alias("close_reason"),
                      pl.lit(None, dtype=UTC_TIME).alias("closed_at"),
                      pl.format('{{"readings": {}, "hours": {}}}', pl.col("readings"),
                                ((pl.col("end") - pl.col("start")).dt.total_minutes() / 60.0).round(2))
                      .alias("details"))
    )
    return eps.select([pl.col(c).cast(t) for c, t in DETECTION_SCHEMA.items()])


def merge(det: pl.DataFrame, gap_hours: int) -> pl.DataFrame:
    """One row per continuing condition: episodes of one meter and kind closer than gap_hours are merged.

    The merged rate is that of the latest episode (the current state); volumes add up."""
    if det.is_empty():
        return empty()
    gap = timedelta(hours=gap_hours)
    out = (
        det.sort("meter_id", "kind", "start")
        .with_columns(pl.col("end").cum_max().shift(1).over("meter_id", "kind").alias("prev_end"))
        .with_columns(((pl.col("start") - pl.col("prev_end")) > gap).fill_null(True)
                      .cum_sum().over("meter_id", "kind").alias("grp"))
        .group_by("meter_id", "kind", "grp")
        .agg(
            pl.col("severity").sort_by(pl.col("severity").replace_strict(SEVERITY_RANK, default=0)).last(),
            pl.col("start").min(), pl.col("end").max(), pl.col("detected_at").min(),
            pl.col("valid_until").max(), pl.col("rate_l_h").sort_by("start").last(),
            pl.when(pl.col("volume_m3").is_not_null().any()).then(pl.col("volume_m3").sum())
            .otherwise(None).alias("volume_m3"),
            pl.col("details").sort_by("start").last(), pl.col("state").last(), pl.col("close_reason").last(),
            pl.col("closed_at").last(),
        )
    )
    return out.select([pl.col(c).cast(t) for c, t in DETECTION_SCHEMA.items()]).sort("meter_id", "kind", "start")


def lifecycle(det: pl.DataFrame, as_of: datetime, slack_hours: int) -> pl.DataFrame:
    """State of the non-leak kinds as of `as_of`: open while valid (with slack), else closed with the kind's reason
    at valid_until. Leak incidents carry their own state (incidents.py)."""
    ended = (pl.col("kind") != "leak") & (pl.col("valid_until") < as_of - timedelta(hours=slack_hours))
    reason = pl.col("kind").replace_strict(CLOSE_REASONS, default="alarm_cleared", return_dtype=pl.String())
    return det.with_columns(
        pl.when(ended).then(pl.lit("closed")).otherwise(pl.col("state")).alias("state"),
        pl.when(ended).then(reason).otherwise(pl.col("close_reason")).alias("close_reason"),
        pl.when(ended).then(pl.col("valid_until")).otherwise(pl.col("closed_at")).alias("closed_at"),
    )


def detect_hourly(hourly: pl.DataFrame, cfg: LeakConfig, tz: str, as_of: datetime | None = None,
                  alarms: pl.DataFrame | None = None, breaks: dict[str, list[datetime]] | None = None,
                  dispatcher_closes: dict[str, list[datetime]] | None = None) -> pl.DataFrame:
    """Leak incidents (with the meters' leak alarms as evidence) and the burst, backflow and stuck detectors.

    `breaks`: meter exchanges (an incident open at one closes `meter_exchanged`, a new one may follow);
    `dispatcher_closes`: when a dispatcher closed a meter's leak incident (later evidence is a new incident)."""
    ev = evidence(hourly, cfg, tz, alarms)
    splits = {m: sorted([*(breaks or {}).get(m, []), *(dispatcher_closes or {}).get(m, [])])
              for m in set(breaks or {}) | set(dispatcher_closes or {})}
    leaks = incidents(ev, cfg, as_of, exchanged=breaks, breaks=splits)
    others = merge(pl.concat([burst(hourly, cfg, tz), backflow(hourly, cfg), stuck(hourly, cfg, tz)]),
                   cfg.merge_gap_hours)
    return pl.concat([leaks, others])


def detect_all(readings: pl.DataFrame, cfg: LeakConfig, tz: str, as_of: datetime | None = None,
               hourly: pl.DataFrame | None = None, digits: dict[str, int] | None = None,
               breaks: dict[str, list[datetime]] | None = None,
               dispatcher_closes: dict[str, list[datetime]] | None = None) -> pl.DataFrame:
    """Every detector on a frame of readings; `as_of` (default: the last reading) ends the silent check and
    decides which alerts are still open. `digits`: register digits per meter (registry) for rollovers."""
    r = readings if is_normalised(readings) else normalise_readings(readings)
    if r.is_empty():
        return empty()
    r = unwrap_rollovers(r, digits, cfg.rollover_window)
    h = hourly if hourly is not None else hourly_use(r, breaks=breaks)
    if as_of is None:
        last = r.get_column("time").max()
        assert isinstance(last, datetime)
        as_of = last
    as_of = as_of.astimezone(UTC)
    alarms = meter_alarms(r)
    parts = [detect_hourly(h, cfg, tz, as_of, alarms, breaks, dispatcher_closes),
             merge(pl.concat([silent(r, cfg, as_of), alarms.filter(pl.col("kind") != "meter_alarm:leak")]),
                   cfg.merge_gap_hours)]
    return lifecycle(pl.concat(parts), as_of, cfg.active_slack_hours).sort("meter_id", "kind", "start")


def alerts_only(det: pl.DataFrame, min_severity: str = "warning") -> pl.DataFrame:
    """The detections a dispatcher sees: severity `min_severity` and above (silent meters are 'info')."""
    rank = SEVERITY_RANK.get(min_severity, 1)
    return det.filter(pl.col("severity").replace_strict(SEVERITY_RANK, default=0) >= rank)


def to_json_rows(det: pl.DataFrame, tz: str = "UTC") -> list[dict[str, object]]:
    """Detections as plain JSON-able dicts (times ISO 8601 with the offset of `tz`), the `leaks detect --json`
    lines."""
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(tz)
    rows: list[dict[str, object]] = []
    for row in det.iter_rows(named=True):
        out: dict[str, object] = {}
        for k in ("meter_id", "kind", "severity", "state", "start", "end", "detected_at", "rate_l_h", "volume_m3",
                  "close_reason", "closed_at"):
            v = row[k]
            if isinstance(v, datetime):
                v = v.astimezone(zone).isoformat()
            elif isinstance(v, float):
                v = round(v, 3)
            out[k] = v
        out["details"] = json.loads(row["details"] or "{}")
        rows.append(out)
    return rows
