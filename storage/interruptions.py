"""Interruptions, planned works and street subscriptions in the database (migration 0140).

`sync` applies one detector run: each detected interruption upserts the row of its (kind, district,
street) that is open, or that started at the same time; an open row the run no longer supports is
closed at `as_of`. Planned works whose window has begun become interruptions of cause 'planned' (closed
when the window ends); a detected supply interruption overlapping planned works of its street or district
is labelled with them (planned_id, expected_end) instead of opening a second row. Each change residents
should hear about (opened, expected end moved, closed) bumps `version`; notices go once per version.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

COLUMNS = ("id", "kind", "cause", "district", "street", "state", "start_at", "end_at", "expected_end",
           "detected_at", "meters", "score", "planned_id", "version", "opened_at", "updated_at")
PLANNED_COLUMNS = ("id", "district", "streets", "starts_at", "ends_at", "note", "created_by", "created_at",
                   "cancelled_at")


@dataclass
class SyncResult:
    opened: int = 0
    updated: int = 0
    closed: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"opened": self.opened, "updated": self.updated, "closed": self.closed}


def load_premises(conn: psycopg.Connection) -> list[tuple[str, str | None, str | None]]:
    """(meter_id, district, street) of every meter in service."""
    return conn.execute("SELECT meter_id, district, street FROM meters WHERE removal_date IS NULL"
                        " AND role <> 'inlet' ORDER BY meter_id").fetchall()


def _planned_for(conn: psycopg.Connection, district: str, street: str | None, start: datetime,
                 end: datetime | None) -> tuple[int, datetime] | None:
    row = conn.execute(
        """SELECT id, ends_at FROM planned_works
           WHERE cancelled_at IS NULL AND district = %s
             AND starts_at < coalesce(%s::timestamptz, 'infinity'::timestamptz) AND ends_at > %s
             AND (streets = '{}' OR %s::text = ANY(streets) OR %s::text IS NULL)
           ORDER BY starts_at LIMIT 1""", (district, end, start, street, street)).fetchone()
    return (int(row[0]), row[1]) if row else None


def sync(conn: psycopg.Connection, detections: list[dict[str, Any]], as_of: datetime) -> SyncResult:
    """Apply detections (INTERRUPTION_SCHEMA rows, UTC) and planned works at as_of. Commits."""
    out = SyncResult()
    seen: set[int] = set()
    with conn.transaction():
        res = apply_planned(conn, as_of)  # first, so that a detection finds the planned row of its street
        out.opened += res.opened
        out.closed += res.closed
        for d in detections:
            street = d.get("street")
            planned = _planned_for(conn, d["district"], street, d["start"], d["end"]) \
                if d["kind"] == "supply" else None
            row = conn.execute(
                """SELECT id, state, end_at, expected_end, planned_id FROM interruptions
                   WHERE kind = %s AND district = %s AND coalesce(street, '') = coalesce(%s, '')
                     AND (state = 'open' OR start_at = %s OR (planned_id IS NOT NULL AND planned_id = %s))
                   ORDER BY (state = 'open') DESC, id DESC LIMIT 1""",
                (d["kind"], d["district"], street, d["start"], planned[0] if planned else None)).fetchone()
            expected = planned[1] if planned else None
            state = "open" if d["end"] is None else "closed"
            if row is None:
                new = conn.execute(
                    """INSERT INTO interruptions (kind, cause, district, street, state, start_at, end_at,
                           expected_end, detected_at, meters, score, planned_id)
                       VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id""",
                    (d["kind"], d["cause"], d["district"], street, state, d["start"], d["end"], expected,
                     d["detected_at"], list(d["meters"] or []), d["score"], planned[0] if planned else None),
                ).fetchone()
                assert new is not None
                seen.add(int(new[0]))
                out.opened += 1
                continue
            iid, old_state, old_end, old_expected, _ = row
            seen.add(int(iid))
            changed = (old_state != state) or (old_expected != expected and expected is not None)
            if old_state == "closed" and state == "closed" and old_end == d["end"]:
                continue
            conn.execute(
                """UPDATE interruptions SET state = %s, end_at = %s, start_at = LEAST(start_at, %s),
                       expected_end = coalesce(%s, expected_end), meters = %s, score = coalesce(%s, score),
                       planned_id = coalesce(%s, planned_id),
                       cause = CASE WHEN cause = 'planned' THEN cause ELSE %s END,
                       version = version + %s, updated_at = now() WHERE id = %s""",
                (state, d["end"], d["start"], expected, list(d["meters"] or []), d["score"],
                 planned[0] if planned else None, d["cause"], 1 if changed else 0, iid))
            if state == "closed" and old_state == "open":
                out.closed += 1
            else:
                out.updated += 1
        stale = conn.execute(
            """SELECT id FROM interruptions WHERE state = 'open' AND cause <> 'planned' AND NOT (id = ANY(%s))""",
            (sorted(seen),)).fetchall()
        for (iid,) in stale:
            conn.execute("UPDATE interruptions SET state = 'closed', end_at = %s, version = version + 1,"
                         " updated_at = now() WHERE id = %s", (as_of, iid))
            out.closed += 1
    conn.commit()
    return out


def apply_planned(conn: psycopg.Connection, as_of: datetime) -> SyncResult:
    """Open an interruption per street (or the district) of planned works whose window has begun; close
    them when the window is over or the works were cancelled."""
    out = SyncResult()
    works = conn.execute(
        """SELECT id, district, streets, starts_at, ends_at FROM planned_works
           WHERE cancelled_at IS NULL AND starts_at <= %s AND ends_at > %s""", (as_of, as_of)).fetchall()
    for wid, district, streets, starts, ends in works:
        for street in (streets or [None]):
            exists = conn.execute(
                """SELECT 1 FROM interruptions WHERE planned_id = %s AND coalesce(street, '') = coalesce(%s, '')""",
                (wid, street)).fetchone()
            if exists:
                continue
            meters = [r[0] for r in conn.execute(
                "SELECT meter_id FROM meters WHERE district = %s AND (%s::text IS NULL OR street = %s) ORDER BY 1",
                (district, street, street))]
            busy = conn.execute(
                """UPDATE interruptions SET planned_id = %s, expected_end = %s, version = version + 1,
                       updated_at = now()
                   WHERE state = 'open' AND kind = 'supply' AND district = %s
                     AND coalesce(street, '') = coalesce(%s, '') RETURNING id""",
                (wid, ends, district, street)).fetchone()
            if busy:
                continue
            conn.execute(
                """INSERT INTO interruptions (kind, cause, district, street, start_at, expected_end, meters,
                       planned_id) VALUES ('supply', 'planned', %s, %s, %s, %s, %s, %s)""",
                (district, street, starts, ends, meters, wid))
            out.opened += 1
    ended = conn.execute(
        """UPDATE interruptions i SET state = 'closed', end_at = LEAST(w.ends_at, %s), version = i.version + 1,
               updated_at = now()
           FROM planned_works w
           WHERE i.planned_id = w.id AND i.state = 'open' AND i.cause = 'planned'
             AND (w.ends_at <= %s OR w.cancelled_at IS NOT NULL) RETURNING i.id""", (as_of, as_of)).fetchall()
    out.closed += len(ended)
    return out


def add_planned(conn: psycopg.Connection, district: str, streets: list[str], starts_at: datetime,
                ends_at: datetime, note: str, actor: str) -> int:
    """Record planned works; returns their id. Commits."""
    if ends_at <= starts_at:
        raise ValueError("the works must end after they start")
    row = conn.execute(
        """INSERT INTO planned_works (district, streets, starts_at, ends_at, note, created_by)
           VALUES (%s, %s, %s, %s, %s, %s) RETURNING id""",
        (district, streets, starts_at, ends_at, note, actor)).fetchone()
    conn.commit()
    assert row is not None
    return int(row[0])


def list_planned(conn: psycopg.Connection, start: datetime | None = None) -> list[dict[str, Any]]:
    rows = conn.execute(f"SELECT {', '.join(PLANNED_COLUMNS)} FROM planned_works"
                        " WHERE cancelled_at IS NULL AND ends_at > coalesce(%s, '-infinity'::timestamptz)"
                        " ORDER BY starts_at", (start,)).fetchall()
    return [dict(zip(PLANNED_COLUMNS, r, strict=True)) for r in rows]


def list_interruptions(conn: psycopg.Connection, start: datetime | None = None, end: datetime | None = None,
                       state: str | None = None, kind: str | None = None) -> list[dict[str, Any]]:
    """Interruptions overlapping [start, end), newest first; planned ones carry their note."""
    rows = conn.execute(
        f"""SELECT {', '.join('i.' + c for c in COLUMNS)}, w.note FROM interruptions i
            LEFT JOIN planned_works w ON w.id = i.planned_id
            WHERE (%(start)s::timestamptz IS NULL OR coalesce(i.end_at, 'infinity') > %(start)s)
              AND (%(end)s::timestamptz IS NULL OR i.start_at < %(end)s)
              AND (%(state)s::text IS NULL OR i.state = %(state)s)
              AND (%(kind)s::text IS NULL OR i.kind = %(kind)s)
            ORDER BY i.start_at DESC, i.id""", {"start": start, "end": end, "state": state, "kind": kind}).fetchall()
    return [dict(zip((*COLUMNS, "planned_note"), r, strict=True)) for r in rows]


def street_interruption(conn: psycopg.Connection, customer_ref: str) -> dict[str, Any] | None:
    """The open supply interruption of a customer's street (or district), for the customer page."""
    row = conn.execute(
        """SELECT i.street, i.district, i.start_at, i.expected_end, i.planned_id IS NOT NULL, m.street
           FROM meters m JOIN interruptions i ON i.district = m.district
                AND (i.street IS NULL OR i.street = m.street)
           WHERE m.customer_ref = %s AND i.state = 'open' AND i.kind = 'supply'
           ORDER BY i.start_at LIMIT 1""", (customer_ref,)).fetchone()
    if row is None:
        return None
    return {"street": row[0] or row[5], "district": row[1], "since": row[2], "expected_end": row[3],
            "planned": bool(row[4]), "whole_district": row[0] is None}


def map_points(conn: psycopg.Connection) -> list[dict[str, Any]]:
    """Premises with coordinates and whether an open supply interruption covers them."""
    rows = conn.execute(
        """SELECT m.meter_id, m.street, m.house_number, m.district, m.lat, m.lon,
                  (SELECT i.id FROM interruptions i WHERE i.state = 'open' AND i.kind = 'supply'
                     AND i.district = m.district AND (i.street IS NULL OR i.street = m.street) LIMIT 1),
                  (SELECT count(*) FROM alerts a WHERE a.meter_id = m.meter_id AND a.state = 'open')
           FROM meters m WHERE m.lat IS NOT NULL AND m.lon IS NOT NULL AND m.removal_date IS NULL
           ORDER BY m.district, m.street, m.meter_id""").fetchall()
    cols = ("meter_id", "street", "house_number", "district", "lat", "lon", "interruption_id", "open_alerts")
    return [dict(zip(cols, r, strict=True)) for r in rows]


# ---- subscriptions --------------------------------------------------------------------------------------------

def subscribe(conn: psycopg.Connection, street: str, phone: str | None, email: str | None, source: str,
              actor: str = "") -> int:
    """Subscribe a phone and/or e-mail to a street (re-activates an earlier one). Commits."""
    if not (phone or email):
        raise ValueError("a subscription needs a phone number or an e-mail address")
    row = conn.execute(
        """INSERT INTO notice_subscriptions (street, phone, email, source, created_by) VALUES (%s, %s, %s, %s, %s)
           ON CONFLICT (lower(street), coalesce(phone, ''), coalesce(email, ''))
           DO UPDATE SET active = true RETURNING id""", (street.strip(), phone, email, source, actor)).fetchone()
    conn.commit()
    assert row is not None
    return int(row[0])


def unsubscribe_phone(conn: psycopg.Connection, phone: str) -> int:
    """STOP: every subscription of this phone number ends. Commits; returns how many."""
    n = conn.execute("UPDATE notice_subscriptions SET active = false WHERE phone = %s AND active", (phone,)).rowcount
    conn.commit()
    return n


def known_street(conn: psycopg.Connection, text: str) -> str | None:
    """The registry's spelling of a street named in free text (case and spacing ignored)."""
    row = conn.execute("SELECT street FROM meters WHERE lower(regexp_replace(street, '\\s+', ' ', 'g'))"
                       " = lower(regexp_replace(%s, '\\s+', ' ', 'g')) LIMIT 1", (text.strip(),)).fetchone()
    return str(row[0]) if row else None


def subscribe_consenting(conn: psycopg.Connection) -> int:
    """Premises whose contact consented are subscribed to their own street. Commits; returns new ones."""
    n = conn.execute(
        """INSERT INTO notice_subscriptions (street, phone, email, source)
           SELECT DISTINCT street, phone, email, 'consent' FROM meters
           WHERE notice_consent AND street IS NOT NULL AND (phone IS NOT NULL OR email IS NOT NULL)
           ON CONFLICT DO NOTHING""").rowcount
    conn.commit()
    return n


def subscribers_of(conn: psycopg.Connection, district: str, street: str | None) -> list[dict[str, Any]]:
    """Active subscriptions of a street, or of every street of a district."""
    rows = conn.execute(
        """SELECT s.id, s.street, s.phone, s.email FROM notice_subscriptions s
           WHERE s.active AND EXISTS (SELECT 1 FROM meters m WHERE m.district = %s
                 AND lower(m.street) = lower(s.street) AND (%s::text IS NULL OR lower(m.street) = lower(%s)))
           ORDER BY s.id""", (district, street, street)).fetchall()
    return [dict(zip(("id", "street", "phone", "email"), r, strict=True)) for r in rows]
