"""The alerts table: the one store of per-meter incidents (leak incidents, burst, backflow, stuck, silent, meter
alarms), kept by the detector and read by the pages, the list command and the dispatcher's workflow.

`sync` applies one detection run: every detection of the window is stored, open or closed. A detection updates
the stored row of its meter and kind that it overlaps (the same incident seen again, its span grown), else it
is a new row. The detector closes rows itself (state 'resolved', close_reason flow_stopped / meter_exchanged /
..., closed_by 'detector'); a row a dispatcher closed (closed_by = a person) is never touched again, and the
detector starts evidence after that close as a new incident (see `dispatcher_closes`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl
import psycopg

DETECTOR = "detector"  # closed_by of the rows the detector closed itself
ALERT_COLUMNS = ("id", "meter_id", "kind", "severity", "state", "first_seen", "last_seen", "opened_at",
                 "updated_at", "resolved_at", "rate_l_h", "volume_m3", "message", "details", "close_reason",
                 "closed_by")
SEVERITIES = {"info": 0, "warning": 1, "critical": 2}
PAGE_DAYS = 30  # pages show open incidents and those closed in the last PAGE_DAYS days
# what a customer can act on (continuous_flow / night_flow: leak alerts stored before leak incidents existed)
CUSTOMER_KINDS = ["leak", "burst", "meter_alarm:leak", "meter_alarm:burst", "continuous_flow", "night_flow"]


@dataclass
class SyncResult:
    opened: int = 0
    updated: int = 0
    closed: int = 0
    stored: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"opened": self.opened, "updated": self.updated, "closed": self.closed, "stored": self.stored}


def _match(conn: psycopg.Connection, r: dict[str, Any], slack: timedelta) -> tuple[int, str, str | None] | None:
    """The stored row of the detection's meter and kind that it overlaps (id, state, closed_by); a row a dispatcher
    closed before the detection began is not the same incident."""
    row = conn.execute(
        """SELECT id, state, closed_by FROM alerts
           WHERE meter_id = %(m)s AND kind = %(k)s AND first_seen <= %(end)s AND last_seen + %(slack)s >= %(start)s
             AND NOT (closed_by IS NOT NULL AND closed_by <> %(det)s AND resolved_at <= %(start)s)
           ORDER BY (closed_by IS NOT NULL AND closed_by <> %(det)s), first_seen DESC LIMIT 1""",
        {"m": r["meter_id"], "k": r["kind"], "end": r["end"], "slack": slack, "start": r["start"],
         "det": DETECTOR}).fetchone()
    return (int(row[0]), str(row[1]), row[2]) if row else None


def sync(conn: psycopg.Connection, detections: pl.DataFrame, as_of: datetime, meters: list[str] | None = None,
         slack_hours: int = 3) -> SyncResult:
    """Store every detection (open or closed; the columns of analytics.leaks DETECTION_SCHEMA plus `message`, the
    text for people) and close the open rows of `meters` that no detection supports any more. Commits."""
    out = SyncResult()
    seen: set[int] = set()
    slack = timedelta(hours=slack_hours)
    with conn.transaction():
        for r in detections.sort("start").iter_rows(named=True):
            is_open = r["state"] == "open"
            details = json.dumps({**json.loads(r["details"] or "{}"), "detected_at": r["detected_at"].isoformat()})
            message = r.get("message")
            last_seen = min(r["end"], as_of)
            values = (r["severity"], "open" if is_open else "resolved", r["start"], last_seen, r["rate_l_h"],
                      r["volume_m3"], message, details, None if is_open else r["closed_at"],
                      None if is_open else r["close_reason"], None if is_open else DETECTOR)
            hit = _match(conn, r, slack)
            if hit is not None and hit[2] is not None and hit[2] != DETECTOR:
                seen.add(hit[0])  # a dispatcher closed it: theirs now
                continue
            if is_open:  # one open row per meter and kind (alerts_one_open_idx): an older open one has ended
                conn.execute(
                    """UPDATE alerts SET state = 'resolved', resolved_at = %s, close_reason = 'flow_stopped',
                              closed_by = %s, updated_at = now()
                       WHERE meter_id = %s AND kind = %s AND state = 'open' AND id <> %s""",
                    (r["start"], DETECTOR, r["meter_id"], r["kind"], hit[0] if hit else -1))
            if hit is None:
                new = conn.execute(
                    """INSERT INTO alerts (severity, state, first_seen, last_seen, rate_l_h, volume_m3, message,
                                          details, resolved_at, close_reason, closed_by, meter_id, kind)
                       VALUES (%s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s, %s, %s, %s) RETURNING id""",
                    (*values, r["meter_id"], r["kind"])).fetchone()
                assert new is not None
                seen.add(int(new[0]))
                out.opened += is_open
                out.closed += not is_open
            else:
                # an incident older than the loaded history is seen truncated: keep the larger volume then
                conn.execute(
                    """UPDATE alerts SET severity = %s, state = %s, first_seen = LEAST(first_seen, %s),
                              last_seen = GREATEST(last_seen, %s), rate_l_h = %s,
                              volume_m3 = CASE WHEN first_seen < %s THEN GREATEST(volume_m3, %s) ELSE %s END,
                              message = %s, details = %s::jsonb, resolved_at = %s, close_reason = %s,
                              closed_by = %s, updated_at = now()
                       WHERE id = %s""", (*values[:5], r["start"], values[5], *values[5:], hit[0]))
                seen.add(hit[0])
                out.updated += is_open or hit[1] != "open"
                out.closed += (not is_open) and hit[1] == "open"
            out.stored += 1
        scope = meters if meters is not None else sorted(set(detections.get_column("meter_id").to_list()))
        if scope:
            stale = conn.execute(
                """UPDATE alerts SET state = 'resolved', resolved_at = %s, close_reason = 'flow_stopped',
                          closed_by = %s, updated_at = now()
                   WHERE state = 'open' AND meter_id = ANY(%s) AND NOT (id = ANY(%s)) RETURNING id""",
                (as_of, DETECTOR, scope, sorted(seen))).fetchall()
            out.closed += len(stale)
    conn.commit()  # the block above is only a savepoint when the caller had a transaction open
    return out


# ---- reading what the detector needs --------------------------------------------------------------------------


def load_input(conn: psycopg.Connection, start: datetime, end: datetime) -> pl.DataFrame:
    """Detector input for [start, end) from the hourly rollup (one pseudo-reading per meter and hour: the
    last index and its time) plus every reading that carries alarm words. Refresh the rollup first. A district's
    inlet (bulk) meters are left out: water always flows through them, and their losses are the water balance's
    business (chart_queries.water_balance), not a customer leak."""
    rows = conn.execute(
        """SELECT meter_id, last_time, last_m3 FROM consumption_hourly
           WHERE bucket >= %s AND bucket < %s
             AND meter_id NOT IN (SELECT meter_id FROM meters WHERE role = 'inlet')
           ORDER BY meter_id, bucket""", (start, end)).fetchall()
    alarms = conn.execute(
        """SELECT meter_id, time, total_m3, alarms FROM readings_between(%s, %s)
           WHERE alarms <> '{}' ORDER BY meter_id, time""", (start, end)).fetchall()
    cols = {"meter_id": pl.String(), "time": pl.Datetime("us", "UTC"), "total_m3": pl.Float64(),
            "alarms": pl.List(pl.String())}
    hourly = pl.DataFrame([(*r, []) for r in rows], schema=cols, orient="row")
    alarm_rows = pl.DataFrame(alarms, schema=cols, orient="row")
    # an alarm reading and the hour's pseudo-reading at the same time: keep the one with the alarms
    return (pl.concat([hourly, alarm_rows])
            .sort("meter_id", "time", pl.col("alarms").list.len(), descending=[False, False, True])
            .unique(subset=["meter_id", "time"], keep="first").sort("meter_id", "time"))


def data_span(conn: psycopg.Connection) -> tuple[datetime, datetime] | None:
    """First and last reading time in the database (the default window of `leaks detect`)."""
    row = conn.execute("SELECT first_time, last_time FROM reading_span()").fetchone()
    return (row[0].astimezone(UTC), row[1].astimezone(UTC)) if row and row[0] is not None else None


def registry_context(conn: psycopg.Connection, meters: list[str], tz: str) -> tuple[dict[str, int],
                                                                                  dict[str, list[datetime]]]:
    """From the registry: register digits per meter (rollovers) and the times a meter was exchanged (its
    install date after its first reading, or its removal date; local midnight)."""
    rows = conn.execute(
        """SELECT m.meter_id, m.register_digits, m.install_date, m.removal_date,
                  (SELECT first_time FROM reading_span(m.meter_id))
           FROM meters m WHERE m.meter_id = ANY(%s)""", (meters,)).fetchall()
    zone = ZoneInfo(tz)
    digits: dict[str, int] = {}
    swaps: dict[str, list[datetime]] = {}
    for m, d, installed, removed, first in rows:
        if d:
            digits[m] = int(d)
        for day in (installed, removed):
            t = datetime.combine(day, time(0), zone).astimezone(UTC) if day else None
            if t is not None and (day is removed or (first is not None and t > first)):
                swaps.setdefault(m, []).append(t)
    return digits, swaps


def removal_times(conn: psycopg.Connection, meters: list[str], tz: str) -> dict[str, datetime]:
    """Local midnight of each removed meter's removal date: a removed meter falls silent, it is not a no-read."""
    rows = conn.execute("SELECT meter_id, removal_date FROM meters WHERE removal_date IS NOT NULL"
                        " AND meter_id = ANY(%s)", (meters,)).fetchall()
    zone = ZoneInfo(tz)
    return {m: datetime.combine(day, time(0), zone).astimezone(UTC) for m, day in rows}


def dispatcher_closes(conn: psycopg.Connection, meters: list[str], kind: str = "leak") -> dict[str, list[datetime]]:
    """When a dispatcher closed a meter's incident: evidence after it is a new incident."""
    rows = conn.execute(
        """SELECT meter_id, resolved_at FROM alerts WHERE kind = %s AND state = 'resolved' AND meter_id = ANY(%s)
           AND closed_by IS NOT NULL AND closed_by <> %s AND resolved_at IS NOT NULL""",
        (kind, meters, DETECTOR)).fetchall()
    out: dict[str, list[datetime]] = {}
    for m, t in rows:
        out.setdefault(m, []).append(t)
    return out


# ---- reading incidents: the list command and the pages ---------------------------------------------------------

INCIDENT_COLUMNS = ("id", "meter_id", "district", "kind", "severity", "state", "first_seen", "last_seen",
                    "rate_l_h", "volume_m3", "close_reason", "closed_by", "resolved_at", "message", "detected_at")


def list_incidents(conn: psycopg.Connection, state: str | None = None, district: str | None = None,
                   kinds: list[str] | None = None, since: datetime | None = None, meters: list[str] | None = None,
                   min_severity: str = "warning", limit: int | None = None) -> list[dict[str, Any]]:
    """Stored incidents, newest first. `state`: open | closed; `since`: still going or ended at or after it;
    `min_severity`: warning (what a dispatcher acts on) or info (also the silent meters)."""
    where = ["CASE a.severity WHEN 'critical' THEN 2 WHEN 'warning' THEN 1 ELSE 0 END >= %s"]
    args: list[Any] = [SEVERITIES.get(min_severity, 1)]
    if state is not None:
        where.append("a.state = %s")
        args.append("open" if state == "open" else "resolved")
    if district is not None:
        where.append("m.district = %s")
        args.append(district)
    if kinds:
        where.append("a.kind = ANY(%s)")
        args.append(kinds)
    if since is not None:
        where.append("(a.state = 'open' OR a.last_seen >= %s OR a.resolved_at >= %s)")
        args += [since, since]
    if meters is not None:
        where.append("a.meter_id = ANY(%s)")
        args.append(meters)
    sql = (f"SELECT a.id, a.meter_id, m.district, a.kind, a.severity, CASE a.state WHEN 'open' THEN 'open' ELSE"
           f" 'closed' END, a.first_seen, a.last_seen, a.rate_l_h, a.volume_m3, a.close_reason, a.closed_by,"
           f" a.resolved_at, a.message, (a.details->>'detected_at')::timestamptz"
           f" FROM alerts a LEFT JOIN meters m USING (meter_id)"
           f" WHERE {' AND '.join(where)} ORDER BY (a.state = 'open') DESC, a.first_seen DESC, a.id")
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return [dict(zip(INCIDENT_COLUMNS, r, strict=True)) for r in conn.execute(sql, args).fetchall()]


def _page_incidents(conn: psycopg.Connection, now: datetime, meters: list[str] | None, days: int,
                    limit: int | None, kinds: list[str] | None = None) -> list[dict[str, Any]]:
    rows = list_incidents(conn, since=now - timedelta(days=days), meters=meters, limit=limit, kinds=kinds)
    return [r for r in rows if r["first_seen"] <= now]


def fleet_incidents(conn: psycopg.Connection, now: datetime, days: int = PAGE_DAYS,
                    limit: int | None = 200) -> list[dict[str, Any]]:
    """The fleet page's incident table: every meter's incidents (warning and above) open at `now` or closed in
    the `days` before it, open first then newest; each with its volume lost (`volume_m3`, counted once)."""
    return _page_incidents(conn, now, None, days, limit)


def meter_incidents(conn: psycopg.Connection, meter_id: str, now: datetime,
                    days: int = PAGE_DAYS) -> list[dict[str, Any]]:
    """The meter page's incidents: open at `now` or closed in the `days` before it."""
    return _page_incidents(conn, now, [meter_id], days, None)


def customer_incidents(conn: psycopg.Connection, meter_ids: list[str], now: datetime,
                       days: int = PAGE_DAYS) -> list[dict[str, Any]]:
    """The customer page's leaks and bursts on the customer's meters (CUSTOMER_KINDS): open at `now` or closed in
    the `days` before it."""
    return _page_incidents(conn, now, list(meter_ids), days, None, CUSTOMER_KINDS)


def incident_totals(incidents: list[dict[str, Any]]) -> dict[str, Any]:
    """Open and recently closed counts and the volume lost, each incident counted once (for the pages' KPIs)."""
    return {"open": sum(r["state"] == "open" for r in incidents),
            "closed": sum(r["state"] == "closed" for r in incidents),
            "volume_lost_m3": round(sum(r["volume_m3"] or 0.0 for r in incidents), 3)}
