"""Who was the customer of a meter from when to when (`meter_customers`), so a customer sees a meter's data
only from their own move-in date and never the previous tenant's history.

Tenancies come from `meterflow meters tenancies FILE` (meter_id,customer_ref,move_in[,move_out]) and from
`meters import`: a row that names a new customer for a meter closes the old tenancy and opens a new one
(move-in from the row's `move_in` column, else the day of the import).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import psycopg

TENANCY_COLUMNS = ("meter_id", "customer_ref", "move_in", "move_out")


def customer_tenancies(conn: psycopg.Connection, customer_ref: str,
                       at: datetime) -> dict[str, tuple[date, date | None]]:
    """meter_id -> (move_in, move_out) of this customer's latest tenancy of each meter begun by `at`.
    A meter without any tenancy rows belongs to the customer_ref of its registry row, with all its history (the
    first customer of a meter sees it all; only a change of customer starts a new tenancy)."""
    rows = conn.execute(
        "SELECT DISTINCT ON (meter_id) meter_id, move_in, move_out FROM ("
        " SELECT meter_id, move_in, move_out FROM meter_customers WHERE customer_ref = %s AND move_in <= %s::date"
        " UNION ALL SELECT m.meter_id, DATE '2000-01-01', NULL FROM meters m"
        " WHERE m.customer_ref = %s AND NOT EXISTS (SELECT 1 FROM meter_customers c WHERE c.meter_id = m.meter_id)"
        ") t ORDER BY meter_id, move_in DESC",
        (customer_ref, at, customer_ref),
    ).fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


def move_in(conn: psycopg.Connection, meter_id: str, customer_ref: str, day: date,
            first_from: date | None = None) -> bool:
    """Make `customer_ref` the customer of `meter_id` from `day` on, closing the tenancy in force then
    (a meter without any tenancy yet gets its first one from `first_from` when given).
    False (nothing changed) when that customer already holds the meter on that day."""
    if first_from is not None and not conn.execute(
            "SELECT 1 FROM meter_customers WHERE meter_id = %s LIMIT 1", (meter_id,)).fetchone():
        day = min(day, first_from)
    current = conn.execute(
        "SELECT customer_ref, move_in FROM meter_customers WHERE meter_id = %s AND move_in <= %s"
        " AND (move_out IS NULL OR move_out > %s) ORDER BY move_in DESC LIMIT 1", (meter_id, day, day)
    ).fetchone()
    if current is not None and current[0] == customer_ref:
        return False
    if current is not None:
        if current[1] == day:
            conn.execute("DELETE FROM meter_customers WHERE meter_id = %s AND move_in = %s", (meter_id, day))
        else:
            conn.execute("UPDATE meter_customers SET move_out = %s WHERE meter_id = %s AND move_in = %s",
                         (day, meter_id, current[1]))
    later = conn.execute("SELECT min(move_in) FROM meter_customers WHERE meter_id = %s AND move_in > %s",
                         (meter_id, day)).fetchone()
    conn.execute(
        "INSERT INTO meter_customers (meter_id, customer_ref, move_in, move_out) VALUES (%s, %s, %s, %s)"
        " ON CONFLICT (meter_id, move_in) DO UPDATE SET customer_ref = excluded.customer_ref,"
        " move_out = excluded.move_out", (meter_id, customer_ref, day, later[0] if later else None),
    )
    return True


def import_tenancies(conn: psycopg.Connection, rows: list[dict[str, Any]]) -> int:
    """Store explicit tenancies (replacing any with the same meter and move-in); commits."""
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO meter_customers (meter_id, customer_ref, move_in, move_out) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (meter_id, move_in) DO UPDATE SET customer_ref = excluded.customer_ref,"
            " move_out = excluded.move_out",
            [(r["meter_id"], r["customer_ref"], r["move_in"], r.get("move_out")) for r in rows],
        )
    conn.commit()
    return len(rows)
