"""Measured quality of the leak detectors against the simulated fleet's ground truth (real homes: realhomes.py).

Matching: a leak alert (a `leak` incident, warning or above) is a true positive when it is on a meter with a
true leak (leak or intermittent_leak) and its span overlaps the leak's span (extended by `match_slack`).
An event is detected when a true-positive alert exists; its delay is the first `detected_at` of those
alerts at or after the event start, minus the start (0 when an alert was already open).
False alerts per 100 meter-months: leak alerts that match no true leak, per 100 x (meters x days / 30.44).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import polars as pl

LEAK_ALERT_KINDS = ("leak",)

SIZE_BINS: tuple[tuple[str, float, float], ...] = (
    ("2-5 L/h", 0.0, 5.0), ("5-10 L/h", 5.0, 10.0), ("10-30 L/h", 10.0, 30.0), ("30-50+ L/h", 30.0, 1e9))
TRUE_LEAKS = ("leak", "intermittent_leak")
DAYS_PER_MONTH = 30.4375


@dataclass
class Report:
    meters: int
    days: float
    alerts: int
    true_alerts: int
    precision: float
    recall_target: float  # continuous leaks >= 5 L/h lasting >= 48 h
    target_events: int
    median_delay_h_target: float | None
    false_per_100_meter_months: float
    by_size: list[dict[str, Any]] = field(default_factory=list)
    false_by_trap: dict[str, int] = field(default_factory=dict)
    other_kinds: dict[str, dict[str, Any]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    pos = q * (len(s) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def evaluate(alerts: pl.DataFrame, truth: pl.DataFrame, meters: int, days: float,
             match_slack: timedelta = timedelta(hours=24)) -> Report:
    """Precision, recall and delays of leak alerts against the truth events (fixtures.usage schema)."""
    leak_alerts = alerts.filter(pl.col("kind").is_in(LEAK_ALERT_KINDS)).with_row_index("aid")
    leaks = truth.filter(pl.col("kind").is_in(TRUE_LEAKS)).with_row_index("eid")
    pairs = leak_alerts.join(leaks.select("meter_id", "eid", pl.col("kind").alias("ev_kind"),
                                          pl.col("start").alias("ev_start"), pl.col("end").alias("ev_end"),
                                          pl.col("rate_l_h").alias("ev_rate")), on="meter_id", how="inner")
    pairs = pairs.filter((pl.col("start") < pl.col("ev_end") + match_slack) & (pl.col("end") > pl.col("ev_start")))
    tp_ids = set(pairs.get_column("aid").to_list())
    delays: dict[int, float] = {}
    for row in pairs.iter_rows(named=True):
        d = max((row["detected_at"] - row["ev_start"]).total_seconds() / 3600.0, 0.0)
        e = int(row["eid"])
        delays[e] = min(delays.get(e, d), d)
    n_alerts = leak_alerts.height
    precision = len(tp_ids) / n_alerts if n_alerts else 1.0
    meter_months = meters * days / DAYS_PER_MONTH
    fp = leak_alerts.filter(~pl.col("aid").is_in(list(tp_ids)))
    trap_of = truth.group_by("meter_id").agg(pl.col("kind").first().alias("trap"))
    fp_traps = fp.join(trap_of, on="meter_id", how="left").with_columns(pl.col("trap").fill_null("none"))
    false_by_trap = {str(r["trap"]): int(r["len"]) for r in fp_traps.group_by("trap").len().iter_rows(named=True)}

    ev = leaks.with_columns(((pl.col("end") - pl.col("start")).dt.total_hours()).alias("hours"))
    by_size: list[dict[str, Any]] = []
    groups: list[tuple[str, pl.DataFrame]] = []
    for label, lo, hi in SIZE_BINS:
        sub = ev.filter((pl.col("kind") == "leak") & (pl.col("rate_l_h") >= lo) & (pl.col("rate_l_h") < hi))
        groups.append((f"leak {label}", sub))
    groups.append(("intermittent 5-30 L/h", ev.filter(pl.col("kind") == "intermittent_leak")))
    target = ev.filter((pl.col("kind") == "leak") & (pl.col("rate_l_h") >= 5.0) & (pl.col("hours") >= 48))
    groups.append(("TARGET leak >=5 L/h, >=48 h", target))
    recall_target = 1.0
    median_target: float | None = None
    for label, sub in groups:
        ids = sub.get_column("eid").to_list()
        got = [delays[i] for i in ids if i in delays]
        row = {"group": label, "events": len(ids), "detected": len(got),
               "recall": round(len(got) / len(ids), 4) if ids else None,
               "median_delay_h": _round(_quantile(got, 0.5)), "p90_delay_h": _round(_quantile(got, 0.9))}
        by_size.append(row)
        if label.startswith("TARGET"):
            recall_target = len(got) / len(ids) if ids else 1.0
            median_target = _round(_quantile(got, 0.5))
    other: dict[str, dict[str, Any]] = {}
    on_event = alerts.join(trap_of, on="meter_id", how="left").with_columns(pl.col("trap").fill_null("none"))
    for r in alerts.group_by("kind").len().sort("kind").iter_rows(named=True):
        k = str(r["kind"])
        hits = on_event.filter(pl.col("kind") == k).group_by("trap").len().sort("trap")
        other[k] = {"alerts": int(r["len"]),
                    "per_100_meter_months": round(100.0 * int(r["len"]) / meter_months, 2),
                    "on_meters_with": {str(x["trap"]): int(x["len"]) for x in hits.iter_rows(named=True)}}
    return Report(meters=meters, days=days, alerts=n_alerts, true_alerts=len(tp_ids), precision=round(precision, 4),
                  recall_target=round(recall_target, 4), target_events=target.height,
                  median_delay_h_target=median_target,
                  false_per_100_meter_months=round(100.0 * fp.height / meter_months, 3) if meter_months else 0.0,
                  by_size=by_size, false_by_trap=false_by_trap, other_kinds=other)


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 1)


def format_report(rep: Report) -> str:
    lines = [
        f"fleet: {rep.meters} meters x {rep.days:g} days = {rep.meters * rep.days / DAYS_PER_MONTH:.0f} meter-months",
        f"leak alerts: {rep.alerts} ({rep.true_alerts} true)   precision: {rep.precision:.3f}",
        f"recall (leaks >= 5 L/h lasting >= 48 h, n={rep.target_events}): {rep.recall_target:.3f}   "
        f"median delay: {rep.median_delay_h_target} h",
        f"false leak alerts per 100 meter-months: {rep.false_per_100_meter_months}   by trap: {rep.false_by_trap}",
        "",
        f"{'group':30} {'events':>7} {'found':>6} {'recall':>7} {'median h':>9} {'p90 h':>7}",
    ]
    for r in rep.by_size:
        lines.append(f"{r['group']:30} {r['events']:>7} {r['detected']:>6} {_fmt(r['recall']):>7} "
                     f"{_fmt(r['median_delay_h']):>9} {_fmt(r['p90_delay_h']):>7}")
    lines += ["", f"{'alert kind':20} {'alerts':>7} {'per 100 meter-months':>21}  on meters whose true event is"]
    for k, v in rep.other_kinds.items():
        where = ", ".join(f"{t} {n}" for t, n in v.get("on_meters_with", {}).items())
        lines.append(f"{k:20} {int(v['alerts']):>7} {v['per_100_meter_months']:>21}  {where}")
    return "\n".join(lines)


def _fmt(v: object) -> str:
    return "-" if v is None else str(v)
