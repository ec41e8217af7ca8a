"""Leak detection measured on real homes: known leaks injected into real indexes, scored against the vendor rule.

Readings come in as a frame (meter_id, time UTC, total_m3); the DAIAD export is read by the one reader of
`readings import --preset daiad` (decoders.csv_readings.read_frame), at the edge. Real households have no leak
labels, so the evaluation adds leaks of known rate, start and end to their real
cumulative indexes (the volume is added from the start on: during the leak the index grows by rate x elapsed
time, afterwards it keeps the added volume) and runs the detectors and the vendor rule on the same readings.

Scoring (one leak = one injected event; one alert = one incident or one vendor alarm episode):
- recall by leak size: a leak is found when a leak alert (warning and above) of its meter overlaps it; leaks
  during which the meter reported in fewer than half of the hours are not counted (nothing could see them);
- time to detection: the alert's `detected_at` minus the leak start (0 when an alert was already open);
- false alerts per 100 leak-free meter-months: alerts (warning and above) that overlap no injected leak
  (extended by `match_slack`), per 100 x the meter-months of data outside the injected leaks.
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import polars as pl

from analytics.leaks.config import LeakConfig
from analytics.leaks.detectors import alerts_only, detect_all
from analytics.leaks.hourly import UTC_TIME, hourly_use

DAYS_PER_MONTH = 30.4375
DAIAD_TZ = "Europe/Madrid"  # the trial's homes are in Alicante; the export's times are local without offset
SIZE_BINS: tuple[tuple[str, float, float], ...] = (
    ("3-5 L/h", 0.0, 5.0), ("5-10 L/h", 5.0, 10.0), ("10-20 L/h", 10.0, 20.0), ("20-40 L/h", 20.0, 1e9))
TRUTH_SCHEMA: dict[str, pl.DataType] = {"meter_id": pl.String(), "start": UTC_TIME, "end": UTC_TIME,
                                        "rate_l_h": pl.Float64()}


@dataclass(frozen=True)
class InjectionPlan:
    """Leaks injected into real homes (the issue's protocol)."""

    seed: int = 7
    share: float = 0.4  # of the homes' calendar quarters with data get one leak
    min_rate_l_h: float = 3.0
    max_rate_l_h: float = 40.0
    min_days: float = 3.0
    max_days: float = 20.0


def plan_leaks(readings: pl.DataFrame, plan: InjectionPlan) -> pl.DataFrame:
    """One leak in about `share` of each meter's calendar quarters (with at least min_days of data in it): rate
    log-uniform in [min, max] L/h, duration uniform in [min_days, max_days], start uniform at any minute such
    that the leak lies within the meter's data. Deterministic for a seed."""
    span = readings.group_by("meter_id").agg(pl.col("time").min().alias("lo"), pl.col("time").max().alias("hi"))
    rng = random.Random(plan.seed)
    rows: list[dict[str, Any]] = []
    for m, lo, hi in sorted(span.iter_rows()):
        q = datetime(lo.year, 3 * ((lo.month - 1) // 3) + 1, 1, tzinfo=lo.tzinfo)
        while q < hi:
            nq = datetime(q.year + (q.month == 10), (q.month + 2) % 12 + 1, 1, tzinfo=q.tzinfo)
            a, b = max(q, lo), min(nq, hi)
            draw = rng.random()
            rate = math.exp(rng.uniform(math.log(plan.min_rate_l_h), math.log(plan.max_rate_l_h)))
            days = rng.uniform(plan.min_days, plan.max_days)
            where = rng.random()
            room = (b - a).total_seconds() / 86400.0 - days
            if draw < plan.share and room > 0:
                start = a + timedelta(minutes=round(where * room * 1440))
                rows.append({"meter_id": m, "start": start, "end": start + timedelta(days=days),
                             "rate_l_h": round(rate, 2)})
            q = nq
    return pl.DataFrame(rows, schema=TRUTH_SCHEMA)


def inject(readings: pl.DataFrame, truth: pl.DataFrame) -> pl.DataFrame:
    """Add each leak's volume to the meter's real index from its start on (rate x elapsed time, capped at the
    end), rounded down to the register's 1 L resolution as a real register would show it."""
    r = readings.with_row_index("_i")
    added = (
        r.select("_i", "meter_id", "time").join(truth, on="meter_id", how="inner")
        .with_columns(((pl.min_horizontal(pl.col("time"), pl.col("end")) - pl.col("start")).dt.total_seconds()
                       .clip(lower_bound=0) / 3600.0 * pl.col("rate_l_h")).alias("add_l"))
        .group_by("_i").agg(pl.col("add_l").sum())
    )
    return (
        r.join(added, on="_i", how="left")
        .with_columns((pl.col("total_m3") + (pl.col("add_l").fill_null(0.0)).floor() / 1000.0).alias("total_m3"))
        .drop("_i", "add_l")
    )


def reporting_share(readings: pl.DataFrame, truth: pl.DataFrame) -> pl.DataFrame:
    """Per leak: the share of its hours in which the meter sent at least one reading."""
    hours = readings.select("meter_id", pl.col("time").dt.truncate("1h").alias("hour")).unique()
    t = truth.with_row_index("eid")
    got = (
        hours.join(t, on="meter_id", how="inner")
        .filter((pl.col("hour") >= pl.col("start").dt.truncate("1h")) & (pl.col("hour") < pl.col("end")))
        .group_by("eid").agg(pl.len().alias("reported"))
    )
    return (
        t.join(got, on="eid", how="left")
        .with_columns((pl.col("reported").fill_null(0)
                       / ((pl.col("end") - pl.col("start").dt.truncate("1h")).dt.total_seconds() / 3600.0).ceil())
                      .alias("reported_share"))
        .drop("reported")
    )


def vendor_rule(hourly: pl.DataFrame, hours: int = 24) -> pl.DataFrame:
    """The meter vendors' continuous-flow alarm: on while no hour of the last `hours` has zero flow.

    An hour without a reading is not a zero-flow hour; the alarm needs at least half of the hours read. One
    alert per alarm episode: meter_id, kind, severity, start (the first hour of the first window), end (when the
    alarm clears), detected_at (when it went on)."""
    h = hourly.sort("meter_id", "hour").with_columns(
        (pl.col("use_l") <= 0.0).fill_null(False).cast(pl.Int32()).alias("zero"),
        pl.col("use_l").is_not_null().cast(pl.Int32()).alias("known"),
    ).with_columns(
        pl.col("zero").rolling_sum(hours, min_samples=hours).over("meter_id").alias("zeros"),
        pl.col("known").rolling_sum(hours, min_samples=hours).over("meter_id").alias("knowns"),
    ).with_columns(((pl.col("zeros") == 0) & (pl.col("knowns") >= hours // 2)).fill_null(False).alias("on"))
    runs = h.with_columns(
        (pl.col("on") != pl.col("on").shift(1).over("meter_id")).fill_null(True).cum_sum().over("meter_id")
        .alias("run")).filter(pl.col("on"))
    return (
        runs.group_by("meter_id", "run")
        .agg((pl.col("hour").min() - timedelta(hours=hours - 1)).alias("start"),
             (pl.col("hour").max() + timedelta(hours=1)).alias("end"),
             (pl.col("hour").min() + timedelta(hours=1)).alias("detected_at"))
        .select("meter_id", pl.lit("vendor_continuous_flow").alias("kind"), pl.lit("warning").alias("severity"),
                "start", "end", "detected_at")
        .sort("meter_id", "start")
    )


def meter_months(readings: pl.DataFrame) -> float:
    span = readings.group_by("meter_id").agg((pl.col("time").max() - pl.col("time").min()).dt.total_seconds()
                                             .alias("s"))
    return float(span.get_column("s").sum()) / 86400.0 / DAYS_PER_MONTH


def score(alerts: pl.DataFrame, truth: pl.DataFrame, readings: pl.DataFrame,
          match_slack: timedelta = timedelta(hours=24), min_reported: float = 0.5) -> dict[str, Any]:
    """Recall by size, median delay and false alerts per 100 leak-free meter-months (see module docstring).

    `alerts`: meter_id, start, end, detected_at (warning and above only); `truth`: TRUTH_SCHEMA;
    `readings`: the readings the alerts came from (for the reporting share and the meter-months)."""
    t = reporting_share(readings, truth)
    a = alerts.select("meter_id", "start", "end", "detected_at").with_row_index("aid")
    pairs = (
        a.join(t.select("eid", "meter_id", pl.col("start").alias("ev_start"), pl.col("end").alias("ev_end")),
               on="meter_id", how="inner")
        .filter((pl.col("start") < pl.col("ev_end") + match_slack) & (pl.col("end") > pl.col("ev_start")))
        .with_columns(((pl.col("detected_at") - pl.col("ev_start")).dt.total_seconds() / 3600.0)
                      .clip(lower_bound=0.0).alias("delay_h"))
    )
    delay = pairs.group_by("eid").agg(pl.col("delay_h").min())
    ev = t.join(delay, on="eid", how="left").filter(pl.col("reported_share") >= min_reported)
    leak_months = float(t.select(((pl.col("end") - pl.col("start")).dt.total_seconds()).sum()).item() or 0.0)
    free_months = meter_months(readings) - leak_months / 86400.0 / DAYS_PER_MONTH
    false = a.height - pairs.get_column("aid").n_unique()
    by_size = []
    for label, lo, hi in SIZE_BINS:
        sub = ev.filter((pl.col("rate_l_h") >= lo) & (pl.col("rate_l_h") < hi))
        by_size.append(_recall_row(label, sub))
    target = _recall_row(">= 5 L/h", ev.filter(pl.col("rate_l_h") >= 5.0))
    return {"leaks": t.height, "leaks_counted": ev.height, "by_size": by_size, "target": target,
            "alerts": a.height, "false_alerts": false, "leak_free_meter_months": round(free_months, 1),
            "false_per_100_meter_months": round(100.0 * false / free_months, 2) if free_months > 0 else None}


def _recall_row(label: str, sub: pl.DataFrame) -> dict[str, Any]:
    found = sub.filter(pl.col("delay_h").is_not_null())
    med = found.get_column("delay_h").median() if found.height else None
    return {"size": label, "leaks": sub.height, "found": found.height,
            "recall": round(found.height / sub.height, 3) if sub.height else None,
            "median_delay_h": None if med is None else round(float(med), 1)}  # type: ignore[arg-type]


def half_of(meter_id: str, salt: str = "meterflow") -> str:
    """Stable split of homes into halves 'A' (tuning) and 'B' (held out), by a hash of the meter id."""
    return "A" if hashlib.sha256(f"{salt}:{meter_id}".encode()).digest()[0] % 2 == 0 else "B"


def leak_alerts(incidents: pl.DataFrame) -> pl.DataFrame:
    """The dispatcher-facing leak alerts of a detection frame: leak incidents of severity warning and above."""
    return incidents.filter((pl.col("kind") == "leak") & pl.col("severity").is_in(["warning", "critical"]))


def evaluate_real_homes(readings: pl.DataFrame, cfg: LeakConfig, tz: str = DAIAD_TZ,
                        plan: InjectionPlan | None = None) -> dict[str, Any]:
    """Inject leaks, run meterflow (leak incidents, warning and above) and the vendor rule on the same readings,
    and score both on all homes and on the halves A (tuned on) and B (held out)."""
    plan = plan or InjectionPlan()
    truth = plan_leaks(readings, plan)
    leaky = inject(readings, truth)
    det = detect_all(leaky, cfg, tz)
    ours = leak_alerts(det)
    vendor = vendor_rule(hourly_use(leaky), cfg.continuous_hours)
    out: dict[str, Any] = {"seed": plan.seed, "meters": readings.get_column("meter_id").n_unique(),
                           "meter_months": round(meter_months(readings), 1), "injected": truth.height,
                           "other_alerts": {k: n for k, n in alerts_only(det).filter(pl.col("kind") != "leak")
                                            .group_by("kind").len().sort("kind").iter_rows()}}
    halves = {m: half_of(m) for m in readings.get_column("meter_id").unique().to_list()}
    for part in ("all", "A", "B"):
        keep = [m for m, h in halves.items() if part in ("all", h)]

        def sub(df: pl.DataFrame, keep: list[str] = keep) -> pl.DataFrame:
            return df.filter(pl.col("meter_id").is_in(keep))

        out[part] = {"homes": len(keep), "meterflow": score(sub(ours), sub(truth), sub(leaky)),
                     "vendor": score(sub(vendor), sub(truth), sub(leaky))}
    all_kinds = score(alerts_only(det), truth, leaky)
    out["all"]["meterflow_all_kinds_false_per_100"] = all_kinds["false_per_100_meter_months"]
    return out


def format_real_homes(rep: dict[str, Any]) -> str:
    """The side-by-side table of `meterflow eval leaks --daiad` (meterflow | vendor rule)."""
    lines = [f"real homes: {rep['meters']} meters, {rep['meter_months']} meter-months, {rep['injected']} leaks "
             f"injected (seed {rep['seed']})"]
    for part, title in (("all", "all homes"), ("A", "half A (tuned on)"), ("B", "half B (held out)")):
        p = rep[part]
        ours, ven = p["meterflow"], p["vendor"]
        lines += ["", f"{title}: {p['homes']} homes, {ours['leak_free_meter_months']} leak-free meter-months",
                  f"{'':26} {'meterflow':>22} {'vendor rule':>22}"]
        for a, b in zip(ours["by_size"] + [ours["target"]], ven["by_size"] + [ven["target"]], strict=True):
            label = f"recall {a['size']} (n={a['leaks']})"
            lines.append(f"{label:26} {_rec(a):>22} {_rec(b):>22}")
        lines.append(f"{'false alerts /100 l-f m-m':26} {_num(ours['false_per_100_meter_months']):>22} "
                     f"{_num(ven['false_per_100_meter_months']):>22}")
        pair = [f"{x['alerts']} ({x['false_alerts']} false)" for x in (ours, ven)]
        lines.append(f"{'alerts':26} {pair[0]:>22} {pair[1]:>22}")
    lines.append("")
    lines.append(f"other alerts (warning and above): {rep['other_alerts']}; false alerts of every kind per 100 "
                 f"leak-free meter-months: {rep['all']['meterflow_all_kinds_false_per_100']}")
    return "\n".join(lines)


def _rec(row: dict[str, Any]) -> str:
    if row["recall"] is None:
        return "-"
    med = "-" if row["median_delay_h"] is None else f"{row['median_delay_h']:.1f} h"
    return f"{row['recall']:.3f}  median {med}"


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"
