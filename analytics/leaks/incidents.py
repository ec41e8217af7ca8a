"""Leak incidents: one per meter per leak, from the evidence of continuous flow, night flow and meter alarms.

Evidence (per meter, from hourly use):
- a *wet hour* has a flow of at least `leak_min_l_h`: its use, or, inside a gap between readings (up to 24 h),
  the gap's mean rate — a leak of that rate keeps every interval's mean above it, so gaps do not hide it;
- a *flow night*: every hour of the local night window is wet and the flow is steady (max hour <=
  night_steady_factor x floor + night_steady_extra_l); its floor (the smallest hour) is the leak rate seen;
- *continuous flow*: a run of wet hours.

An incident opens (is an alert) on the first of these triggers, `detected_at` being when the rule could know:
- continuous flow for `continuous_hours` (24 h) with at least `continuous_min_known` hours read exactly, holding
  a flow night (`continuous_needs_night`), or for `continuous_fallback_hours` (48 h) without one;
- a flow night inside a run of wet hours at least `early_hours` long (the night shows it is not use);
- flow nights on `night_consecutive` (2) nights in a row;
- a meter-reported leak alarm.
Evidence closer than `incident_gap_hours` (72 h) is one incident: it stays open through shorter pauses. A
single flow night is evidence on an incident, never an incident by itself. Rate: the median floor of the
incident's flow nights (else the smallest wet-run floor); volume lost: that rate over the hours covered by
evidence, counted once. An incident whose evidence ended more than the gap before `as_of` is closed
(`flow_stopped`); one on a meter removed from service (registry) is closed `meter_exchanged`.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import polars as pl

from analytics.leaks.config import LeakConfig
from analytics.leaks.hourly import UTC_TIME

DETECTION_SCHEMA: dict[str, pl.DataType] = {
    "meter_id": pl.String(),
    "kind": pl.String(),
    "severity": pl.String(),
    "start": UTC_TIME,
    "end": UTC_TIME,
    "detected_at": UTC_TIME,
    "valid_until": UTC_TIME,
    "rate_l_h": pl.Float64(),
    "volume_m3": pl.Float64(),
    "details": pl.String(),
    "state": pl.String(),  # open | closed
    "close_reason": pl.String(),  # flow_stopped | meter_exchanged | ... (null while open)
    "closed_at": UTC_TIME,
}
EVIDENCE_SCHEMA: dict[str, pl.DataType] = {
    "meter_id": pl.String(),
    "source": pl.String(),  # continuous_flow | night_flow | meter_alarm:leak
    "start": UTC_TIME,
    "end": UTC_TIME,
    "trigger_at": UTC_TIME,  # when this evidence alone opens an incident (null: supporting evidence only)
    "floor_l_h": pl.Float64(),
}
H = timedelta(hours=1)


def flow_hours(hourly: pl.DataFrame, cfg: LeakConfig, tz: str) -> pl.DataFrame:
    """Per meter and hour: `lo` (use, else the gap's mean rate), `wet`, the wet run it belongs to, its length so
    far, the local night it belongs to and whether that night is a flow night."""
    a, b = cfg.night_start_hour, cfg.night_end_hour
    local = pl.col("hour").dt.convert_time_zone(tz)
    h = hourly.sort("meter_id", "hour").with_columns(
        pl.coalesce("use_l", "avg_l").alias("lo"),
        local.dt.hour().alias("lh"),
        local.dt.date().alias("night"),
    ).with_columns(
        (pl.col("lo") >= cfg.leak_min_l_h).fill_null(False).alias("wet"),
        (pl.col("lo") >= cfg.support_min_l_h).fill_null(False).alias("damp"),
        ((pl.col("lh") >= a) & (pl.col("lh") < b)).alias("in_night"),
    ).with_columns(
        (pl.col("wet") != pl.col("wet").shift(1).over("meter_id")).fill_null(True).cum_sum().over("meter_id")
        .alias("run"),
    ).with_columns(
        pl.int_range(1, pl.len() + 1).over("meter_id", "run").alias("wet_len"),
        pl.col("use_l").is_not_null().cast(pl.Int32()).rolling_sum(cfg.continuous_hours, min_samples=1)
        .over("meter_id").alias("known_w"),
    )
    nights = (
        h.filter(pl.col("in_night"))
        .group_by("meter_id", "night")
        .agg(pl.col("lo").min().alias("floor"), pl.col("lo").max().alias("peak"), pl.len().alias("hours"),
             pl.col("lo").median().alias("mid"),
             pl.col("wet").all().alias("all_wet"), pl.col("damp").all().alias("all_damp"),
             pl.col("use_l").is_not_null().sum().alias("known"),
             pl.col("hour").max().alias("last_hour"))
        .with_columns(
            (pl.col("all_wet") & (pl.col("hours") >= b - a - 1) & (pl.col("known") >= 1)
             & (pl.col("peak") <= cfg.night_steady_factor * pl.col("floor") + cfg.night_steady_extra_l)
             & (pl.col("mid") <= cfg.night_median_factor * pl.col("floor") + cfg.night_median_extra_l))
            .alias("flow_night"),
            (pl.col("all_damp") & (pl.col("hours") >= b - a - 1) & (pl.col("known") >= 1)).alias("damp_night"))
    )
    return h.join(nights.select("meter_id", "night", "flow_night", "damp_night", "floor", "last_hour"),
                  on=["meter_id", "night"], how="left").sort("meter_id", "hour")


def evidence(hourly: pl.DataFrame, cfg: LeakConfig, tz: str, alarms: pl.DataFrame | None = None) -> pl.DataFrame:
    """The evidence rows (EVIDENCE_SCHEMA) of every meter: wet runs that trigger, flow nights, leak alarms."""
    if hourly.is_empty():
        return pl.DataFrame(schema=EVIDENCE_SCHEMA)
    h = flow_hours(hourly, cfg, tz)
    night_end = pl.col("hour") == pl.col("last_hour")
    h = h.with_columns((night_end & pl.col("flow_night").fill_null(False)).alias("night_ok")).with_columns(
        pl.col("night_ok").cast(pl.Int32()).cum_max().over("meter_id", "run").cast(pl.Boolean()).alias("night_seen"),
    ).with_columns(
        (pl.col("wet") & (((pl.col("wet_len") >= cfg.continuous_hours)
                           & (pl.col("known_w") >= cfg.continuous_min_known)
                           & (pl.col("night_seen") | pl.lit(not cfg.continuous_needs_night)))
                          | (pl.col("night_seen") & (pl.col("wet_len") >= cfg.early_hours))
                          | ((pl.col("wet_len") >= cfg.continuous_fallback_hours)
                             & (pl.col("known_w") >= cfg.continuous_min_known)))).alias("trig"),
    )
    runs = (
        h.filter(pl.col("wet"))
        .group_by("meter_id", "run")
        .agg(pl.col("hour").min().alias("start"), (pl.col("hour").max() + H).alias("end"),
             (pl.col("hour").filter(pl.col("trig")).min() + H).alias("trigger_at"),
             pl.col("lo").quantile(0.1).alias("floor_l_h"))
        .filter(pl.col("trigger_at").is_not_null())
        .select("meter_id", pl.lit("continuous_flow").alias("source"), "start", "end", "trigger_at", "floor_l_h")
    )
    n = (
        h.filter(pl.col("night_ok"))
        .select("meter_id", "night", "hour", "floor")
        .sort("meter_id", "night")
        .with_columns(((pl.col("night") - pl.col("night").shift(1).over("meter_id")).dt.total_days() != 1)
                      .fill_null(True).cum_sum().over("meter_id").alias("streak"))
        .with_columns(pl.int_range(1, pl.len() + 1).over("meter_id", "streak").alias("k"))
    )
    a, b = cfg.night_start_hour, cfg.night_end_hour
    nights = n.select(
        "meter_id", pl.lit("night_flow").alias("source"), (pl.col("hour") - (b - a - 1) * H).alias("start"),
        (pl.col("hour") + H).alias("end"),
        pl.when(pl.col("k") >= cfg.night_consecutive).then(pl.col("hour") + H).otherwise(None).alias("trigger_at"),
        pl.col("floor").alias("floor_l_h"))
    damp = h.filter((pl.col("hour") == pl.col("last_hour")) & pl.col("damp_night").fill_null(False)
                    & ~pl.col("night_ok")).select(
        "meter_id", pl.lit("damp_night").alias("source"), (pl.col("hour") - (b - a - 1) * H).alias("start"),
        (pl.col("hour") + H).alias("end"), pl.lit(None, dtype=UTC_TIME).alias("trigger_at"),
        pl.col("floor").alias("floor_l_h"))
    parts = [runs, nights, damp]
    if alarms is not None and not alarms.is_empty():
        parts.append(alarms.filter(pl.col("kind") == "meter_alarm:leak").select(
            "meter_id", pl.lit("meter_alarm:leak").alias("source"), "start", (pl.col("end") + H).alias("end"),
            pl.col("start").alias("trigger_at"), pl.lit(None, dtype=pl.Float64()).alias("floor_l_h")))
    return pl.concat([p.select([pl.col(c).cast(t) for c, t in EVIDENCE_SCHEMA.items()]) for p in parts])


def incidents(ev: pl.DataFrame, cfg: LeakConfig, as_of: datetime | None = None,
              exchanged: dict[str, list[datetime]] | None = None,
              breaks: dict[str, list[datetime]] | None = None) -> pl.DataFrame:
    """Group evidence into incidents (DETECTION_SCHEMA, kind 'leak'); only groups with a trigger are incidents.

    `exchanged`: when meters were exchanged (an incident running then closes `meter_exchanged`); `breaks`: times
    no incident continues across (exchanges, a dispatcher's close). `details`: the evidence counts, the rule
    that opened the incident and the hours covered by evidence."""
    if ev.is_empty():
        return pl.DataFrame(schema=DETECTION_SCHEMA)
    gap = timedelta(hours=cfg.incident_gap_hours)
    g = _group(ev, gap, breaks)
    if cfg.recurrence_days > 0:
        g = _recurrences(g, timedelta(days=cfg.recurrence_days), cfg)
    inc = (
        g.group_by("meter_id", "grp")
        .agg(pl.col("start").min(), pl.col("end").max(), pl.col("trigger_at").min().alias("detected_at"),
             pl.col("source").filter(pl.col("trigger_at").is_not_null()).sort_by(
                 pl.col("trigger_at").filter(pl.col("trigger_at").is_not_null())).first().alias("opened_by"),
             _rate_expr().alias("rate"),
             (pl.col("source") == "night_flow").sum().alias("nights"),
             (pl.col("source") == "continuous_flow").sum().alias("runs"),
             (pl.col("source") == "meter_alarm:leak").sum().alias("alarms"),
             pl.struct("start", "end").alias("spans"))
        .filter(pl.col("detected_at").is_not_null())
    )
    if inc.is_empty():
        return pl.DataFrame(schema=DETECTION_SCHEMA)
    rows = []
    for r in inc.sort("meter_id", "start").iter_rows(named=True):
        rate = r["rate"]
        hours = _covered_hours([(s["start"], s["end"]) for s in r["spans"]])
        state, reason, closed_at = "open", None, None
        swap = [t for t in (exchanged or {}).get(r["meter_id"], []) if r["start"] < t and (as_of is None or t <= as_of)]
        if swap and min(swap) <= r["end"] + gap:
            state, reason, closed_at = "closed", "meter_exchanged", min(swap)
        elif as_of is not None and r["end"] + gap <= as_of:
            state, reason, closed_at = "closed", "flow_stopped", r["end"] + gap
        details = {"opened_by": r["opened_by"],
                   "evidence": {"nights": r["nights"], "continuous_runs": r["runs"], "alarms": r["alarms"]},
                   "evidence_hours": round(hours, 1)}
        rows.append({"meter_id": r["meter_id"], "kind": "leak",
                     "severity": "critical" if (rate or 0.0) >= cfg.critical_rate_l_h else "warning",
                     "start": r["start"], "end": r["end"], "detected_at": r["detected_at"],
                     "valid_until": r["end"] + gap, "rate_l_h": rate,
                     "volume_m3": None if rate is None else rate * hours / 1000.0, "details": json.dumps(details),
                     "state": state, "close_reason": reason, "closed_at": closed_at})
    return pl.DataFrame(rows, schema=DETECTION_SCHEMA)


def _with_era(ev: pl.DataFrame, breaks: dict[str, list[datetime]] | None) -> pl.DataFrame:
    """Add `era`: how many of the meter's breaks (an exchange, a dispatcher's close) lie at or before each
    evidence start; evidence of different eras never joins one incident."""
    if not breaks:
        return ev.with_columns(pl.lit(0, dtype=pl.UInt32()).alias("era"))
    b = pl.DataFrame([(m, t) for m, ts in breaks.items() for t in ts],
                     schema={"meter_id": pl.String(), "_t": UTC_TIME}, orient="row")
    counts = (
        ev.with_row_index("_i").select("_i", "meter_id", "start")
        .join(b, on="meter_id", how="left")
        .group_by("_i").agg((pl.col("_t") <= pl.col("start")).sum().cast(pl.UInt32()).alias("era"))
    )
    return ev.with_row_index("_i").join(counts, on="_i", how="left").drop("_i")


def _group(ev: pl.DataFrame, gap: timedelta, breaks: dict[str, list[datetime]] | None) -> pl.DataFrame:
    """Number evidence groups per meter: a new group after a pause longer than `gap` or across a break."""
    return (
        _with_era(ev, breaks).sort("meter_id", "start")
        .with_columns(pl.col("end").cum_max().shift(1).over("meter_id", "era").alias("prev_end"))
        .with_columns(((pl.col("start") - pl.col("prev_end")) > gap).fill_null(True).cum_sum().over("meter_id")
                      .alias("g0"))
        .with_columns(pl.struct("era", "g0").rank("dense").over("meter_id").alias("grp"))
    )


def _rate_expr() -> pl.Expr:
    """A group's leak rate: the median floor of its flow nights, else the smallest wet-run floor."""
    night = pl.col("floor_l_h").filter(pl.col("source") == "night_flow").median()
    return pl.coalesce(night, pl.col("floor_l_h").min())


def _same_rate(before: float | None, now: float | None, cfg: LeakConfig) -> bool:
    """Flow resuming at about the rate it stopped at (not much more: a larger flow is another leak)."""
    if before is None or now is None:
        return True
    return now <= cfg.recurrence_rate_factor * before + cfg.leak_min_l_h


def _recurrences(g: pl.DataFrame, within: timedelta, cfg: LeakConfig) -> pl.DataFrame:
    """The same leak resuming: a group that starts within `within` of the end of an earlier incident of the
    meter (a group with a trigger), in the same era (no exchange or dispatcher's close between them), at not
    much more than its rate, joins that incident."""
    spans = (
        g.group_by("meter_id", "grp")
        .agg(pl.col("start").min(), pl.col("end").max(), pl.col("trigger_at").is_not_null().any().alias("trig"),
             pl.col("era").first(), _rate_expr().alias("rate"))
        .sort("meter_id", "start")
    )
    remap: dict[tuple[str, int], int] = {}
    last: dict[str, tuple[int, datetime, int, float | None]] = {}
    for m, grp, start, end, trig, era, rate in spans.iter_rows():
        prev = last.get(m)
        if prev is not None and prev[2] == era and start - prev[1] <= within and _same_rate(prev[3], rate, cfg):
            remap[(m, grp)] = prev[0]
            last[m] = (prev[0], max(prev[1], end), era, prev[3])
        elif trig:
            last[m] = (grp, end, era, rate)
        else:
            last.pop(m, None)
    if not remap:
        return g
    keys = pl.DataFrame([(m, k, v) for (m, k), v in remap.items()],
                        schema={"meter_id": pl.String(), "grp": g.schema["grp"], "to": g.schema["grp"]}, orient="row")
    return g.join(keys, on=["meter_id", "grp"], how="left").with_columns(pl.coalesce("to", "grp").alias("grp"))


def _covered_hours(spans: list[tuple[datetime, datetime]]) -> float:
    """Hours covered by the union of the spans (overlapping evidence counted once)."""
    total, cur_s, cur_e = 0.0, None, None
    for s, e in sorted(spans):
        if cur_e is None or s > cur_e:
            if cur_e is not None and cur_s is not None:
                total += (cur_e - cur_s).total_seconds()
            cur_s, cur_e = s, e
        else:
            cur_e = max(cur_e, e)
    if cur_e is not None and cur_s is not None:
        total += (cur_e - cur_s).total_seconds()
    return total / 3600.0
