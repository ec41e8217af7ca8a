"""The VEE rules applied to one meter's billing period, one function per rule (numbers as in README.md).

`compute_billing` (core.py) turns the frames into one summary row per meter and a `Period` (what every meter
shares: boundaries, thresholds, history, tariff dates); `bill_meter` then runs the rules below in order on a
`MeterBill`, the meter's bill under construction, and appends its result rows and audit rows to the period.

Each rule reads the summary row (`bill.s`) and what earlier rules decided (start and end index, quality), and
records its verdict through `MeterBill.flag`, `MeterBill.exception` and `MeterBill.audit`. A new rule is a new
function here and one line in `bill_meter`; splitting a period (rule 13) happens last, in `segments`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from analytics.vee.config import VeeConfig
from analytics.vee.profile import boundary_index
from meterflow.periods import add_months, local_midnight

# summary column with a per-meter count of interval events -> name, and whether it is an exception
EVENT_NAMES = (
    ("n_decrease", "INDEX_DECREASE", True), ("n_rollover", "ROLLOVER", False), ("n_jump", "JUMP", False),
    ("n_spike", "SPIKE", True), ("n_gap_short", "GAP_INTERPOLATED", False), ("n_gap_long", "GAP_SIMILAR_DAYS", False),
    ("n_clock_step", "CLOCK_STEP", False), ("n_scientific", "SCIENTIFIC_NOTATION", False),
    ("n_dst_repeat", "DST_REPEATED_HOUR", False),
)
REJECTED_AS_EXCEPTION = ("DUPLICATE_CONFLICT", "FUTURE_TIME")


@dataclass
class Period:
    """What every meter of one billing computation shares, and where the results and audit rows go."""

    start: date
    end: date
    b0: datetime  # local midnight of start, in UTC
    b1: datetime  # local midnight of end, in UTC
    config: VeeConfig
    timezone: str
    rejected: dict[str, dict[str, int]]  # meter -> reason -> rejected reads in the period
    history: dict[str, list[dict[str, Any]]]  # meter -> earlier billed periods
    tariff_dates: dict[str, list[date]]  # tariff group ("*": every group) -> its changes strictly inside the period
    day_reads: dict[tuple[str, date], float]  # (meter, tariff change day) -> that day's first unwrapped index
    profiles: dict[str, list[float]]  # meter -> use per local hour (only meters with a boundary in a gap)
    premises: dict[str, list[str]]  # premise_ref -> its meters
    results: list[dict[str, Any]] = field(default_factory=list)
    audit: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def bump(self, key: str, n: int = 1) -> None:
        if n:
            self.counts[key] = self.counts.get(key, 0) + n


class MeterBill:
    """One meter's bill under construction: indexes (unwrapped across rollovers), quality and findings."""

    __slots__ = ("active_from", "active_to", "consumption", "details", "end_u", "exceptions", "flags", "history",
                 "meter_id", "methods", "nd", "period", "pre_vee", "quality", "removed", "s", "span", "start_u",
                 "tariff_group")

    def __init__(self, period: Period, summary_row: dict[str, Any]) -> None:
        s = summary_row
        self.period = period
        self.s = s  # the meter's summary row
        self.meter_id: str = s["meter_id"]
        self.tariff_group: str = s.get("tariff_group") or "default"
        self.span = 10.0 ** int(s["register_digits"] or 5)  # the register range: where the index rolls over
        self.history: list[dict[str, Any]] = period.history.get(self.meter_id, [])
        install: date | None = s["install_date"]
        removal: date | None = s["removal_date"]
        self.active_from: date = max(period.start, install) if install else period.start
        self.active_to: date = min(period.end, removal) if removal else period.end
        self.removed = bool(removal and removal < period.end)  # the removal index closes the period (rule 2)
        self.nd = period.config.decimals
        self.exceptions: list[str] = []
        self.flags: list[str] = []
        self.details: dict[str, Any] = {}
        self.methods: list[str] = []
        self.quality = "ACTUAL"
        self.start_u: float | None = None
        self.end_u: float | None = None
        self.consumption: float | None = None
        self.pre_vee: float | None = None

    def rounded(self, value: float) -> float:
        return round(value, self.nd)

    def audit(self, rule: str, action: str, before: Any, after: Any, reason: str) -> None:
        self.period.audit.append({"meter_id": self.meter_id, "rule": rule, "action": action,
                                  "before": json.dumps(before, default=str), "after": json.dumps(after, default=str),
                                  "reason": reason})

    def flag(self, name: str) -> None:
        if name not in self.flags:
            self.flags.append(name)

    def exception(self, name: str, rule: str, before: Any, after: Any, reason: str) -> None:
        """Hold the bill for review: the exception, its fleet count and its audit row."""
        self.exceptions.append(name)
        self.period.bump(name)
        self.audit(rule, "exception", before, after, reason)

    def estimated(self) -> None:
        self.quality = "ESTIMATED"
        self.period.bump("ESTIMATED")


# ---- reference use from history (rules 7 and 11)

@dataclass
class Reference:
    daily: float | None  # m3 per day
    method: str


def _avg_daily(rows: list[dict[str, Any]]) -> float | None:
    days: int = sum((r["period_end"] - r["period_start"]).days for r in rows)
    if days <= 0:
        return None
    return float(sum(r["consumption_m3"] for r in rows)) / days


def _usable(hist: list[dict[str, Any]], ps: date) -> list[dict[str, Any]]:
    return [h for h in hist if h["consumption_m3"] is not None and h["period_end"] <= ps]


def _same_period_last_year(usable: list[dict[str, Any]], ps: date, pe: date) -> list[dict[str, Any]]:
    ly_s, ly_e = add_months(ps, -12), add_months(pe, -12)
    return [h for h in usable if h["period_start"] < ly_e and h["period_end"] > ly_s]


def _first_reference(candidates: list[tuple[list[dict[str, Any]], str]]) -> Reference:
    for rows, method in candidates:
        daily = _avg_daily(rows) if rows else None
        if daily is not None:
            return Reference(daily, method)
    return Reference(None, "")


def estimate_reference(hist: list[dict[str, Any]], ps: date, pe: date, config: VeeConfig) -> Reference:
    """Rule 11: the average daily use to estimate from: the previous estimate_lookback_months months, else the
    same period last year, else last year's monthly average."""
    usable = _usable(hist, ps)
    lookback = add_months(ps, -config.estimate_lookback_months)
    last_year = add_months(ps, -12)
    return _first_reference([
        ([h for h in usable if h["period_start"] >= lookback], "avg_prev_3_months"),
        (_same_period_last_year(usable, ps, pe), "same_period_last_year"),
        ([h for h in usable if h["period_start"] >= last_year], "last_year_monthly_average"),
    ])


def check_reference(hist: list[dict[str, Any]], ps: date, pe: date) -> Reference:
    """Rule 7: the average daily use to compare with: the same period last year, else the last 3 periods."""
    usable = _usable(hist, ps)
    return _first_reference([
        (_same_period_last_year(usable, ps, pe), "same_period_last_year"),
        (sorted(usable, key=lambda h: h["period_start"])[-3:], "earlier_periods"),
    ])


def trailing_estimates(hist: list[dict[str, Any]], ps: date) -> int:
    """How many periods directly before ps were estimated, in an unbroken row."""
    n = 0
    expected_end = ps
    for h in sorted(hist, key=lambda h: h["period_start"], reverse=True):
        if h["period_end"] != expected_end or h["quality"] != "ESTIMATED":
            break
        n += 1
        expected_end = h["period_start"]
    return n


# ---- the rules, in the order bill_meter applies them

def rejected_reads(bill: MeterBill) -> None:
    """Rules 5 and 6 (rows): duplicates, conflicting duplicates, future and out-of-order reads."""
    for reason, n in sorted(bill.period.rejected.get(bill.meter_id, {}).items()):
        bill.details[f"n_{reason.lower()}"] = n
        bill.period.bump(reason, n)
        (bill.exceptions if reason in REJECTED_AS_EXCEPTION else bill.flags).append(reason)
        bill.audit("5" if reason.startswith("DUPLICATE") else "6", "rejected_reads", {"reads": n}, None,
                   f"{n} read(s) rejected: {reason}")


def interval_events(bill: MeterBill) -> None:
    """Events found on the intervals (rules 3, 4, 6, 9, 10): counted, flagged, decreases and spikes audited."""
    s = bill.s
    for key, name, is_exception in EVENT_NAMES:
        n = int(s[key] or 0)
        if n:
            bill.details[key] = n
            bill.period.bump(name, n)
            (bill.exceptions if is_exception else bill.flags).append(name)
    if s["n_decrease"]:  # rule 4
        bill.details["decrease_m3"] = bill.rounded(float(s["decrease_m3"]))
        bill.audit("4", "not_billed", {"decreases": int(s["n_decrease"])}, None,
                   f"index decreased {int(s['n_decrease'])} time(s) by {bill.details['decrease_m3']} m3 in total; "
                   "reverse flow is not billed")
    if s["n_spike"]:  # rule 9
        bill.audit("9", "exception", None, None, f"{int(s['n_spike'])} interval(s) far above the usual maximum")


def use_on_inactive_meter(bill: MeterBill) -> None:
    """Rule 8 on a meter not installed during the period: any use is an exception, nothing is billed."""
    s = bill.s
    used = (s["last_u"] or 0) - (s["first_u"] or 0) if s["first_u"] is not None else 0.0
    if used <= 0:
        return
    bill.exception("USE_ON_INACTIVE", "8", None, {"use_m3": bill.rounded(used)}, "use recorded on an inactive meter")
    p = bill.period
    p.results.append({"meter_id": bill.meter_id, "premise_ref": s["premise_ref"], "customer_ref": s["customer_ref"],
                      "tariff_group": bill.tariff_group, "role": s["role"] or "main", "period_start": p.start,
                      "period_end": p.end, "segment_start": p.start, "segment_end": p.end,
                      "start_index_m3": None, "end_index_m3": None, "consumption_m3": None,
                      "pre_vee_consumption_m3": bill.rounded(used), "quality": "ACTUAL", "method": "inactive",
                      "exceptions": bill.exceptions, "flags": bill.flags, "details": json.dumps(bill.details)})


def start_index(bill: MeterBill) -> None:
    """Rules 1, 2, 11 and 12 at the period start: the install index of a new meter, else the previous
    period's end index, else the index at the boundary from the reads (interpolated or estimated)."""
    s, p = bill.s, bill.period
    install: date | None = s["install_date"]
    start_raw: float | None
    if install and install >= p.start:  # rule 2: a meter installed in the period starts at its install index
        start_raw = s["install_index_m3"]
        bill.methods.append("install_index")
        bill.flags.append("METER_EXCHANGE")
    else:
        prev = [h for h in bill.history if h["period_end"] == p.start and h["end_index_m3"] is not None]
        if prev:  # rule 1: continue from the stored period before
            start_raw = prev[-1]["end_index_m3"]
            bill.methods.append("previous_period_end")
        else:
            _start_from_reads(bill)
            start_raw = bill.start_u
    if start_raw is not None and bill.start_u is None:
        _unwrap_start(bill, start_raw)


def _start_from_reads(bill: MeterBill) -> None:
    s, p = bill.s, bill.period
    start_u, how = boundary_index(s["s_t0"], s["s_u0"], s["s_t1"], s["s_u1"], p.b0, p.profiles.get(bill.meter_id),
                                  s["s_usual"], p.config, p.timezone)
    if start_u is None and s["s_t0"] is not None and s["s_u0"] is not None:
        # reads before the start but none after: carry the last one forward at the usual rate (rule 11)
        ref = estimate_reference(bill.history, p.start, p.end, p.config)
        if ref.daily is not None:
            start_u = s["s_u0"] + ref.daily * (p.b0 - s["s_t0"]).total_seconds() / 86400.0
            how = f"estimated:{ref.method}"
            bill.estimated()
            bill.audit("11", "estimated_start_index", None, {"start_index_m3": bill.rounded(start_u % bill.span)},
                       f"no read after the period start; {ref.method} at {ref.daily:.6f} m3/day")
    if start_u is None and s["first_u"] is not None:
        start_u, how = s["first_u"], "first_read_in_period"
        bill.flags.append("START_FROM_FIRST_READ")
    bill.start_u = start_u
    if how:
        bill.methods.append(f"start:{how}")


def _unwrap_start(bill: MeterBill, start_raw: float) -> None:
    """A register value as read -> the unwrapped index scale of the reads (rollovers before b0 are in u)."""
    s, span = bill.s, bill.span
    ref_u = s["s_u0"] if s["s_u0"] is not None else s["first_u"]
    k = math.floor(ref_u / span) if ref_u is not None else 0
    start_u = start_raw + k * span
    if ref_u is not None and start_u > ref_u + span / 2:
        start_u -= span
    bill.start_u = start_u


def end_index(bill: MeterBill) -> None:
    """Rules 2, 8, 11 and 12 at the period end: the removal index of a removed meter (use after it is an
    exception), else the index at the boundary from the reads, else an estimate, else NO_END_READ."""
    if bill.removed:
        _end_at_removal(bill)
        return
    s, p = bill.s, bill.period
    bill.end_u, how = boundary_index(s["e_t0"], s["e_u0"], s["e_t1"], s["e_u1"], p.b1, p.profiles.get(bill.meter_id),
                                     s["e_usual"], p.config, p.timezone)
    if how:
        bill.methods.append(f"end:{how}")
    if bill.end_u is None:
        _estimate_end(bill)


def _end_at_removal(bill: MeterBill) -> None:
    s, span, start_u = bill.s, bill.span, bill.start_u
    removal: date = s["removal_date"]
    end_raw = s["removal_index_m3"]
    if end_raw is not None and start_u is not None:
        end_u = end_raw + math.floor(start_u / span) * span
        if end_u < start_u - span / 2:
            end_u += span
        bill.end_u = end_u
    bill.methods.append("removal_index")
    bill.flag("METER_EXCHANGE")
    gone = local_midnight(removal, bill.period.timezone)
    if (bill.end_u is not None and s["last_t"] is not None and s["last_t"] > gone
            and s["last_u"] > bill.end_u + 1e-9):
        bill.exception("USE_ON_INACTIVE", "8", {"removal_index_m3": end_raw}, {"last_read_m3": s["last_u"] % span},
                       f"use recorded after the removal on {removal}")


def _estimate_end(bill: MeterBill) -> None:
    """Rule 11: no read after the period end: the last read plus the reference use for the days left."""
    s, p = bill.s, bill.period
    ref = estimate_reference(bill.history, p.start, p.end, p.config)
    base_t, base_u = s["last_t"], s["last_u"]
    if base_t is None or base_t < p.b0:
        base_t, base_u = p.b0, bill.start_u
    if ref.daily is None or base_u is None:
        bill.methods.append("end:missing")
        bill.exception("NO_END_READ", "11", None, None, "no end read and no history to estimate from")
        return
    days_left = (p.b1 - base_t).total_seconds() / 86400.0
    bill.end_u = base_u + ref.daily * days_left
    bill.estimated()
    bill.methods.append(f"end:estimated:{ref.method}")
    bill.details["estimate_m3_per_day"] = round(ref.daily, 6)
    bill.audit("11", "estimated_end_index", None, {"end_index_m3": bill.rounded(bill.end_u % bill.span)},
               f"no read after the period end; {ref.method} at {ref.daily:.6f} m3/day")


def consumption(bill: MeterBill) -> None:
    """Rule 1: end index - start index; beside it the naive figure, last minus first read as read."""
    s = bill.s
    if bill.start_u is not None and bill.end_u is not None:
        bill.consumption = bill.end_u - bill.start_u
    if s["first_u"] is not None and s["last_u"] is not None:
        bill.pre_vee = bill.rounded(s["last_u"] % bill.span - s["first_u"] % bill.span)


def rollover(bill: MeterBill) -> None:
    """Rule 3: a rolled-over register is billed across the rollover; the figure is EDITED."""
    s = bill.s
    if not s["n_rollover"] or bill.consumption is None:
        return
    bill.quality = "EDITED" if bill.quality == "ACTUAL" else bill.quality
    bill.methods.append("rollover")
    bill.audit("3", "edited", {"consumption_m3": bill.pre_vee}, {"consumption_m3": bill.rounded(bill.consumption)},
               f"register of {int(s['register_digits'] or 5)} digits rolled over")


def high_low_use(bill: MeterBill) -> None:
    """Rule 7: average daily use far above or below the reference (an implausible rollover when above)."""
    p, cfg = bill.period, bill.period.config
    if bill.consumption is None or bill.quality == "ESTIMATED":
        return
    avg = bill.consumption / ((bill.active_to - bill.active_from).days or 1)
    ref = check_reference(bill.history, p.start, p.end)
    if ref.daily is None:
        return
    bill.details["reference_m3_per_day"] = round(ref.daily, 6)
    bill.details["reference"] = ref.method
    bad = ""
    if max(avg, ref.daily) >= cfg.high_low_min_m3_per_day:
        if (ref.daily > 0 and avg > cfg.high_factor * ref.daily) or (ref.daily == 0 and avg > 0):
            bad = "HIGH_USE"
        elif avg < cfg.low_factor * ref.daily:
            bad = "LOW_USE"
    if bad:
        name = "ROLLOVER_IMPLAUSIBLE" if bill.s["n_rollover"] and bad == "HIGH_USE" else bad
        bill.exception(name, "7", {"reference_m3_per_day": round(ref.daily, 6)}, {"m3_per_day": round(avg, 6)},
                       f"{name}: {avg:.4f} m3/day vs {ref.daily:.4f} ({ref.method})")


def stuck(bill: MeterBill) -> None:
    """Rule 8: an index unchanged for stuck_days on an active meter."""
    days = bill.s["stuck_days"]
    if days is None or days < bill.period.config.stuck_days:
        return
    bill.details["zero_use_days"] = round(float(days), 2)
    bill.exception("STUCK", "8", None, None, f"no use for {days:.1f} days on an active meter")


def consecutive_estimates(bill: MeterBill) -> None:
    """Rule 14: too many estimated periods in a row need a real read."""
    if bill.quality != "ESTIMATED":
        return
    n_est = trailing_estimates(bill.history, bill.period.start) + 1
    bill.details["consecutive_estimates"] = n_est
    if n_est >= bill.period.config.max_consecutive_estimates:
        bill.exception("CONSECUTIVE_ESTIMATES", "14", None, {"consecutive": n_est},
                       f"{n_est} consecutive estimated periods; a real read is needed")


def premise_meters(bill: MeterBill) -> None:
    """Rule 2: an exchanged meter's result names every meter of its premise."""
    premise = bill.s["premise_ref"]
    if "METER_EXCHANGE" in bill.flags and premise:
        bill.details["premise_meters"] = sorted(bill.period.premises.get(premise, []))


Segment = tuple[date, date, float | None, float | None, float | None, str]  # start, end, index0, index1, m3, method


def segments(bill: MeterBill) -> list[Segment]:
    """Rule 13: the active period, split at each change of the meter's own tariff group inside it (at that day's
    first read, else prorated by days); one segment when there is none or the indexes are unknown."""
    p = bill.period
    method = ";".join(bill.methods)
    a, b = bill.active_from, bill.active_to
    start_u, end_u, used = bill.start_u, bill.end_u, bill.consumption
    own = {*p.tariff_dates.get("*", []), *p.tariff_dates.get(bill.tariff_group, [])}  # only its own group's
    splits = sorted(d for d in own if a < d < b)
    if not splits or used is None or start_u is None or end_u is None:
        return [(a, b, start_u, end_u, used, method)]
    cuts: list[tuple[date, float, str]] = []
    for d in splits:
        if (bill.meter_id, d) in p.day_reads:
            cuts.append((d, p.day_reads[(bill.meter_id, d)], "tariff_split:read"))
        else:
            frac = (d - a).days / (b - a).days
            cuts.append((d, start_u + used * frac, "tariff_split:prorated_days"))
    bounds = [(a, start_u), *[(d, u) for d, u, _ in cuts], (b, end_u)]
    parts: list[Segment] = []
    for i in range(len(bounds) - 1):
        (d0, u0), (d1, u1) = bounds[i], bounds[i + 1]
        parts.append((d0, d1, u0, u1, u1 - u0, f"{method};{cuts[min(i, len(cuts) - 1)][2]}"))
    p.bump("TARIFF_SPLIT")
    bill.audit("13", "split", {"consumption_m3": bill.rounded(used)}, {"parts": len(splits) + 1},
               f"tariff change on {', '.join(str(d) for d in splits)}")
    return parts


def result_rows(bill: MeterBill, parts: list[Segment]) -> None:
    """One result row per segment; consumption is exactly the difference of the printed (rounded) indexes."""
    base = {"meter_id": bill.meter_id, "premise_ref": bill.s["premise_ref"], "customer_ref": bill.s["customer_ref"],
            "tariff_group": bill.tariff_group, "role": bill.s["role"] or "main", "quality": bill.quality,
            "exceptions": bill.exceptions, "flags": bill.flags, "details": json.dumps(bill.details, sort_keys=True)}
    for ps_, pe_, su, eu, c, method in parts:
        su_r = None if su is None else bill.rounded(su)
        eu_r = None if eu is None else bill.rounded(eu)
        c_r = bill.rounded(eu_r - su_r) if su_r is not None and eu_r is not None else (
            None if c is None else bill.rounded(c))
        bill.period.results.append({
            **base, "period_start": ps_, "period_end": pe_, "segment_start": ps_, "segment_end": pe_,
            "start_index_m3": None if su_r is None else bill.rounded(su_r % bill.span),
            "end_index_m3": None if eu_r is None else bill.rounded(eu_r % bill.span),
            "consumption_m3": c_r, "method": method,
            "pre_vee_consumption_m3": bill.pre_vee if len(parts) == 1 else None})


def bill_meter(period: Period, summary_row: dict[str, Any]) -> None:
    """Every rule, in order, on one meter; its result rows and audit rows go to `period`."""
    bill = MeterBill(period, summary_row)
    rejected_reads(bill)
    interval_events(bill)
    if bill.active_from >= bill.active_to:
        use_on_inactive_meter(bill)
        return
    start_index(bill)
    end_index(bill)
    consumption(bill)
    rollover(bill)
    high_low_use(bill)
    stuck(bill)
    consecutive_estimates(bill)
    premise_meters(bill)
    result_rows(bill, segments(bill))

