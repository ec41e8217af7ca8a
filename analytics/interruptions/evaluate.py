"""Measured quality of the interruption detector on real homes with injected interruptions.

Real homes are grouped into districts of two streets; interruptions (daytime, 2-8 h, a whole district
or one street) and communication outages (every reading of a district missing, 2-8 h) are injected:
an interrupted meter keeps reporting but its index stands still, and the water not delivered is never
drawn later (every later index is lowered by it). Events go only where at least `min_meters` meters of
the scope reported in the day before (a cut where no meter reports cannot be seen by any method).

Matching: a true interruption is found when a supply detection of its district at its level (the same
street, or district-wide) overlaps it and starts no later than `max_late` after the true start. A supply
detection that matches no true interruption at any level is false; one overlapping a communication outage
is a communication outage reported as supply. The plain rule (every reporting meter of a district at zero
for 2 h in daytime) runs on the same data as the baseline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import polars as pl

from analytics.interruptions.detect import INTERRUPTION_SCHEMA, empty
from analytics.leaks.hourly import UTC_TIME, hourly_use

TRUTH_SCHEMA: dict[str, pl.DataType] = {"district": pl.String(), "street": pl.String(), "kind": pl.String(),
                                        "start": UTC_TIME, "end": UTC_TIME}
HOUR = timedelta(hours=1)
DAYS_PER_YEAR = 365.25


def make_districts(meter_ids: list[str], street_size: int = 5, seed: int = 1) -> pl.DataFrame:
    """Shuffle the homes (seeded) into streets of `street_size` and districts of two streets; leftover
    homes join the last street. Returns meter_id, district, street."""
    ids = sorted(meter_ids)
    order = np.random.default_rng(seed).permutation(len(ids)).tolist()
    per_district = 2 * street_size
    n_districts = max(len(ids) // per_district, 1)
    rows = []
    for rank, i in enumerate(order):
        d = min(rank // per_district, n_districts - 1)
        s = 0 if rank - d * per_district < street_size else 1
        rows.append((ids[i], f"D{d + 1:02d}", f"D{d + 1:02d} street {'AB'[s]}"))
    return pl.DataFrame(rows, schema=["meter_id", "district", "street"], orient="row")


def plan_events(readings: pl.DataFrame, premises: pl.DataFrame, tz: str, seed: int = 1,
                every_days: float = 14.0, min_meters: int = 3,
                mix: tuple[float, float, float] = (0.4, 0.2, 0.4)) -> pl.DataFrame:
    """True events (TRUTH_SCHEMA): per district, one event about every `every_days` days, drawn with
    probabilities `mix` among a district cut, a street cut and a communication outage; 2-8 h; cuts start 07:00-16:00
    local time; events at least 3 days apart."""
    rng = np.random.default_rng(seed)
    heard = (readings.join(premises, on="meter_id")
             .select("district", "street", "meter_id", pl.col("time").dt.truncate("1h").alias("hour")).unique())
    out: list[tuple[Any, ...]] = []
    for d in sorted(premises.get_column("district").unique().to_list()):
        dh = heard.filter(pl.col("district") == d)
        if dh.is_empty():
            continue
        lo, hi = dh.get_column("hour").min(), dh.get_column("hour").max()
        assert isinstance(lo, datetime) and isinstance(hi, datetime)
        streets = sorted(premises.filter(pl.col("district") == d).get_column("street").unique().to_list())
        t = lo + timedelta(days=10)
        while True:
            t = t + timedelta(days=float(rng.uniform(0.5, 1.5) * every_days))
            if t > hi - timedelta(days=2):
                break
            kind = str(rng.choice(["district", "street", "communication"], p=list(mix)))
            hours = int(rng.integers(2, 9))
            day = t.astimezone(_zone(tz)).replace(hour=0, minute=0, second=0, microsecond=0)
            start_local = day + timedelta(hours=int(rng.integers(7, 17)) if kind != "communication"
                                          else int(rng.integers(0, 24)))
            start = start_local.astimezone(_zone("UTC"))
            street = str(rng.choice(streets)) if kind == "street" else None
            scope = dh if street is None else dh.filter(pl.col("street") == street)
            before = scope.filter((pl.col("hour") >= start - timedelta(hours=24)) & (pl.col("hour") < start))
            if before.get_column("meter_id").n_unique() < min_meters:
                continue
            out.append((d, street, "communication" if kind == "communication" else "supply", start,
                        start + hours * HOUR))
            t = start + timedelta(days=3)
    return pl.DataFrame(out, schema=TRUTH_SCHEMA, orient="row")


def _zone(tz: str) -> Any:
    from zoneinfo import ZoneInfo

    return ZoneInfo(tz)


def inject(readings: pl.DataFrame, premises: pl.DataFrame, truth: pl.DataFrame) -> pl.DataFrame:
    """Apply the true events to the readings (meter_id, time, total_m3): standstill with the undelivered
    water never drawn later, or readings removed."""
    df = readings.select("meter_id", "time", "total_m3").sort("meter_id", "time")
    for ev in truth.iter_rows(named=True):
        scope = premises.filter(pl.col("district") == ev["district"])
        if ev["street"] is not None:
            scope = scope.filter(pl.col("street") == ev["street"])
        ids = scope.get_column("meter_id").to_list()
        s, e = ev["start"], ev["end"]
        hit = pl.col("meter_id").is_in(ids)
        if ev["kind"] == "communication":
            df = df.filter(~(hit & (pl.col("time") >= s) & (pl.col("time") < e)))
            continue
        at = _index_at(df.filter(hit), s).rename({"idx": "i_s"}).join(
            _index_at(df.filter(hit), e).rename({"idx": "i_e"}), on="meter_id")
        df = (df.join(at, on="meter_id", how="left")
              .with_columns(pl.when(pl.col("i_s").is_null()).then(pl.col("total_m3"))
                            .when((pl.col("time") >= s) & (pl.col("time") < e)).then(pl.col("i_s"))
                            .when(pl.col("time") >= e).then(pl.col("total_m3") - (pl.col("i_e") - pl.col("i_s")))
                            .otherwise(pl.col("total_m3")).alias("total_m3"))
              .drop("i_s", "i_e"))
    return df


def _index_at(df: pl.DataFrame, t: datetime) -> pl.DataFrame:
    """The index of each meter at time t, interpolated linearly between the readings around it."""
    before = df.filter(pl.col("time") <= t).group_by("meter_id").agg(pl.col("time").last().alias("t0"),
                                                                    pl.col("total_m3").last().alias("v0"))
    after = df.filter(pl.col("time") > t).group_by("meter_id").agg(pl.col("time").first().alias("t1"),
                                                                  pl.col("total_m3").first().alias("v1"))
    both = before.join(after, on="meter_id", how="inner")
    frac = ((pl.lit(t) - pl.col("t0")).dt.total_seconds() / (pl.col("t1") - pl.col("t0")).dt.total_seconds())
    return both.select("meter_id", (pl.col("v0") + (pl.col("v1") - pl.col("v0")).clip(0.0, None) * frac)
                       .alias("idx"))


def detect_causal(data: pl.DataFrame, premises: pl.DataFrame, cfg: Any, tz: str, history_days: int = 56,
                  step_days: int = 7, skip_days: int = 28) -> tuple[pl.DataFrame, datetime]:
    """Detections as the hourly flow makes them: each `step_days` window is detected with only the
    `history_days` before it (and itself) as history, keeping the interruptions that start in it; the first
    `skip_days` (no history yet) are left out. Returns the detections and the first time covered."""
    from analytics.interruptions.detect import detect_interruptions

    lo, hi = data.get_column("time").min(), data.get_column("time").max()
    assert isinstance(lo, datetime) and isinstance(hi, datetime)
    first = lo + timedelta(days=skip_days)
    parts, t = [empty()], first
    while t < hi:
        end = t + timedelta(days=step_days)
        window = data.filter((pl.col("time") >= t - timedelta(days=history_days)) & (pl.col("time") < end))
        det = detect_interruptions(window, premises, cfg, tz, end=end)
        parts.append(det.filter((pl.col("start") >= t) & (pl.col("start") < end)))
        t = end
    return pl.concat(parts), first


def plain_rule(readings: pl.DataFrame, premises: pl.DataFrame, tz: str, hours: int = 2,
               day_from: int = 7, day_to: int = 20) -> pl.DataFrame:
    """The baseline: every reporting meter of a district at zero for `hours` hours in a row, in daytime."""
    h = hourly_use(readings.join(premises.select("meter_id"), on="meter_id"), max_spread_hours=1)
    h = h.join(premises, on="meter_id").filter(pl.col("n") > 0)
    lh = pl.col("hour").dt.convert_time_zone(tz).dt.hour()
    g = (h.group_by("district", "hour").agg(pl.len().alias("n_rep"), (pl.col("use_l") >= 0.5).sum().alias("moved"),
                                            pl.col("use_l").is_null().sum().alias("unknown"))
         .with_columns(((pl.col("moved") == 0) & (pl.col("unknown") == 0) & (lh >= day_from) & (lh < day_to))
                       .alias("zero"))
         .sort("district", "hour"))
    lo, hi = g.get_column("hour").min(), g.get_column("hour").max()
    assert isinstance(lo, datetime) and isinstance(hi, datetime)
    full = g.select("district").unique().join(
        pl.DataFrame({"hour": pl.datetime_range(lo, hi, "1h", eager=True, time_zone="UTC").cast(UTC_TIME)}),
        how="cross")
    g = full.join(g, on=["district", "hour"], how="left").with_columns(pl.col("zero").fill_null(False)).sort(
        "district", "hour")
    g = g.with_columns((pl.col("zero") != pl.col("zero").shift(1).over("district")).fill_null(True)
                       .cum_sum().over("district").alias("run")).filter(pl.col("zero"))
    runs = g.group_by("district", "run").agg(pl.col("hour").min().alias("start"),
                                            pl.col("hour").max().alias("last"), pl.len().alias("n"))
    runs = runs.filter(pl.col("n") >= hours)
    if runs.is_empty():
        return empty()
    out = runs.with_columns(pl.lit(None, dtype=pl.String()).alias("street"), pl.lit("supply").alias("kind"),
                            pl.lit("plain_rule").alias("cause"), (pl.col("last") + HOUR).alias("end"),
                            (pl.col("start") + hours * HOUR).alias("detected_at"),
                            pl.lit([], dtype=pl.List(pl.String())).alias("meters"),
                            pl.col("n").cast(pl.Float64()).alias("score"))
    return out.select([pl.col(c).cast(t) for c, t in INTERRUPTION_SCHEMA.items()])


@dataclass
class Score:
    method: str
    interruptions: int
    found: int
    recall: float
    street_events: int
    street_found: int
    district_events: int
    district_found: int
    median_delay_h: float | None  # detected_at - true start, found events
    false_supply: int
    false_per_district_year: float
    comm_events: int
    comm_found: int
    comm_as_supply: int
    details: list[dict[str, Any]] = field(default_factory=list)
    delays: list[float] = field(default_factory=list)
    district_years: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("details", "delays")}


def combine(scores: list[Score]) -> Score:
    """One score over several runs (groupings and injections): counts added, rates recomputed."""
    first = scores[0]
    total: dict[str, Any] = {k: sum(getattr(s, k) for s in scores) for k in (
        "interruptions", "found", "street_events", "street_found", "district_events", "district_found",
        "false_supply", "comm_events", "comm_found", "comm_as_supply", "district_years")}
    delays = [d for s in scores for d in s.delays]
    years = total["district_years"]
    return Score(method=first.method, recall=round(total["found"] / total["interruptions"], 3)
                 if total["interruptions"] else 1.0,
                 median_delay_h=round(float(np.median(delays)), 1) if delays else None,
                 false_per_district_year=round(total["false_supply"] / years, 2) if years else 0.0,
                 details=[d for s in scores for d in s.details], delays=delays, **total)


def score(method: str, det: pl.DataFrame, truth: pl.DataFrame, district_years: float,
          max_late: timedelta = timedelta(hours=3)) -> Score:
    """Recall (level and start within max_late), false supply interruptions per district-year, comm outages."""
    far = datetime(9999, 1, 1, tzinfo=_zone("UTC"))
    sup = det.filter(pl.col("kind") == "supply").with_row_index("did").with_columns(
        pl.col("end").fill_null(far).alias("d_end"), pl.col("street").fill_null("").alias("d_street"))
    tr = truth.with_row_index("tid").with_columns(pl.col("street").fill_null("").alias("t_street"))
    pairs = sup.join(tr.select("tid", "district", "t_street", pl.col("kind").alias("t_kind"),
                               pl.col("start").alias("t_start"), pl.col("end").alias("t_end")), on="district")
    overl = pairs.filter((pl.col("start") < pl.col("t_end")) & (pl.col("d_end") > pl.col("t_start")))
    cuts = overl.filter(pl.col("t_kind") == "supply")
    right = cuts.filter((pl.col("d_street") == pl.col("t_street"))
                        & (pl.col("start") <= pl.col("t_start") + max_late))
    found_ids = set(right.get_column("tid").to_list())
    delay = right.group_by("tid").agg(((pl.col("detected_at") - pl.col("t_start")).dt.total_minutes() / 60.0)
                                      .min().alias("h"))
    explained = set(cuts.get_column("did").to_list())
    comm_hits = overl.filter(pl.col("t_kind") == "communication")
    comm_as_supply = set(comm_hits.get_column("did").to_list()) - explained
    false_ids = set(sup.get_column("did").to_list()) - explained
    cut_truth = tr.filter(pl.col("kind") == "supply")
    street_t = cut_truth.filter(pl.col("t_street") != "")
    comm_t = tr.filter(pl.col("kind") == "communication")
    com = det.filter(pl.col("kind") == "communication")
    comm_found = 0
    for ev in comm_t.iter_rows(named=True):
        hit = com.filter((pl.col("district") == ev["district"]) & (pl.col("start") < ev["end"])
                         & (pl.col("end").fill_null(far) > ev["start"]))
        comm_found += int(hit.height > 0)
    d = delay.get_column("h").to_list()
    n = cut_truth.height
    return Score(
        method=method, interruptions=n, found=len(found_ids), recall=round(len(found_ids) / n, 3) if n else 1.0,
        street_events=street_t.height,
        street_found=len(found_ids & set(street_t.get_column("tid").to_list())),
        district_events=n - street_t.height,
        district_found=len(found_ids - set(street_t.get_column("tid").to_list())),
        median_delay_h=round(float(np.median(d)), 1) if d else None,
        false_supply=len(false_ids), false_per_district_year=round(len(false_ids) / district_years, 2)
        if district_years else 0.0,
        comm_events=comm_t.height, comm_found=comm_found, comm_as_supply=len(comm_as_supply),
        details=[r for r in sup.filter(pl.col("did").is_in(sorted(false_ids))).drop("did", "d_end", "d_street")
                 .iter_rows(named=True)],
        delays=[float(x) for x in d], district_years=round(district_years, 3),
    )


def district_years(readings: pl.DataFrame, premises: pl.DataFrame) -> float:
    """Sum over districts of the span of their data, in years."""
    span = readings.join(premises, on="meter_id").group_by("district").agg(
        (pl.col("time").max() - pl.col("time").min()).dt.total_hours().alias("h"))
    return float(span.get_column("h").sum()) / 24.0 / DAYS_PER_YEAR
