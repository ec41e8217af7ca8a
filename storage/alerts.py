"""The alerts table lifecycle (opened, updated, resolved) and the detectors' input from the database.

`sync` applies one run of the detectors: a detection that is still valid at `as_of` opens an alert
or updates the open one of its (meter, kind) — a continuing condition stays one row, kept unique by
the partial index alerts_one_open_idx — and an open alert of a meter in scope that no detection
supports any more is resolved.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import polars as pl
import psycopg

from analytics.leaks.detectors import DETECTION_SCHEMA
from analytics.leaks.hourly import READINGS_SCHEMA
from analytics.leaks.messages import describe

ALERT_COLUMNS = ("id", "meter_id", "kind", "severity", "state", "first_seen", "last_seen", "opened_at",
                 "updated_at", "resolved_at", "rate_l_h", "volume_m3", "message", "details")


@dataclass
class SyncResult:
    opened: int = 0
    updated: int = 0
    resolved: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"opened": self.opened, "updated": self.updated, "resolved": self.resolved}


def sync(conn: psycopg.Connection, detections: pl.DataFrame, as_of: datetime, meters: list[str] | None = None,
         slack_hours: int = 3, tz: str = "UTC") -> SyncResult:
    """Open/update alerts for detections valid at as_of; resolve open alerts of `meters` (default: the
    meters of the detections) that are no longer supported. Commits."""
    out = SyncResult()
    active = detections.filter(pl.col("valid_until") >= as_of - timedelta(hours=slack_hours))
    keep: set[tuple[str, str]] = set()
    with conn.transaction():
        for r in active.iter_rows(named=True):
            last_seen = min(r["end"], as_of)
            row = conn.execute(
                """INSERT INTO alerts (meter_id, kind, severity, first_seen, last_seen, rate_l_h, volume_m3,
                                       message, details)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb)
                   ON CONFLICT (meter_id, kind) WHERE state = 'open' DO UPDATE SET
                       severity = excluded.severity,
                       first_seen = LEAST(alerts.first_seen, excluded.first_seen),
                       last_seen = GREATEST(alerts.last_seen, excluded.last_seen),
                       rate_l_h = excluded.rate_l_h, volume_m3 = excluded.volume_m3,
                       message = excluded.message, details = excluded.details, updated_at = now()
                   RETURNING (xmax = 0)""",
                (r["meter_id"], r["kind"], r["severity"], r["start"], last_seen, r["rate_l_h"], r["volume_m3"],
                 describe(r["meter_id"], r["kind"], r["start"], r["rate_l_h"], tz),
                 json.dumps({**json.loads(r["details"] or "{}"), "detected_at": r["detected_at"].isoformat()})),
            ).fetchone()
            if row and row[0]:
                out.opened += 1
            else:
                out.updated += 1
            keep.add((r["meter_id"], r["kind"]))
        scope = meters if meters is not None else sorted(set(detections.get_column("meter_id").to_list()))
        if scope:
            rows = conn.execute(
                "SELECT id, meter_id, kind FROM alerts WHERE state = 'open' AND meter_id = ANY(%s)", (scope,)
            ).fetchall()
            stale = [i for i, m, k in rows if (m, k) not in keep]
            if stale:
                conn.execute("UPDATE alerts SET state = 'resolved', resolved_at = now(), updated_at = now()"
                             " WHERE id = ANY(%s)", (stale,))
                out.resolved = len(stale)
    conn.commit()  # the block above is only a savepoint when the caller had a transaction open
    return out


def list_alerts(conn: psycopg.Connection, start: datetime | None = None, end: datetime | None = None,
                state: str | None = None, kinds: list[str] | None = None) -> list[dict[str, Any]]:
    """Alerts whose [first_seen, last_seen] overlaps [start, end), newest first."""
    where: list[str] = ["true"]
    args: list[Any] = []
    if start is not None:
        where.append("last_seen >= %s")
        args.append(start)
    if end is not None:
        where.append("first_seen < %s")
        args.append(end)
    if state is not None:
        where.append("state = %s")
        args.append(state)
    if kinds:
        where.append("kind = ANY(%s)")
        args.append(kinds)
    cur = conn.execute(f"SELECT {', '.join(ALERT_COLUMNS)} FROM alerts WHERE {' AND '.join(where)}"
                       " ORDER BY first_seen DESC, id", args)
    return [dict(zip(ALERT_COLUMNS, r, strict=True)) for r in cur.fetchall()]


def load_input(conn: psycopg.Connection, start: datetime, end: datetime) -> pl.DataFrame:
    """Detector input for [start, end) from the hourly rollup (one pseudo-reading per meter and hour: the
    last index and its time) plus every reading that carries alarm words. Refresh the rollup first."""
    rows = conn.execute(
        """SELECT meter_id, last_time, last_m3 FROM consumption_hourly
           WHERE bucket >= %s AND bucket < %s ORDER BY meter_id, bucket""", (start, end)).fetchall()
    alarms = conn.execute(
        """SELECT meter_id, time, total_m3, alarms FROM readings
           WHERE time >= %s AND time < %s AND alarms <> '{}' ORDER BY meter_id, time""", (start, end)).fetchall()
    frames = [pl.DataFrame(schema=READINGS_SCHEMA)]
    if rows:
        frames.append(pl.DataFrame(rows, schema=["meter_id", "time", "total_m3"], orient="row")
                      .with_columns(pl.lit([], dtype=pl.List(pl.String())).alias("alarms")))
    if alarms:
        frames.append(pl.DataFrame(alarms, schema=list(READINGS_SCHEMA), orient="row"))
    df = pl.concat([f.select([pl.col(c).cast(t) for c, t in READINGS_SCHEMA.items()]) for f in frames])
    # an alarm reading and the hour's pseudo-reading at the same time: keep the one with the alarms
    return (df.sort("meter_id", "time", pl.col("alarms").list.len(), descending=[False, False, True])
            .unique(subset=["meter_id", "time"], keep="first").sort("meter_id", "time"))


def empty_detections() -> pl.DataFrame:
    return pl.DataFrame(schema=DETECTION_SCHEMA)
