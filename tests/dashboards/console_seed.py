"""The dispatcher's console on top of dash_seed: addresses, a removed meter, a manual read on a meter never
heard by radio, a meter that reads zero, and district inlet meters (one with a network leak).

As of NOW: North's inlet IN-N measures M1 + M2 plus 20 L/h that no customer meter sees; West holds M7 (its
register has not moved for 10 days, heard hourly through GW2) and the inlet IN-W (a constant 50 L/h).
M6 (South) was removed a month ago and never heard; M4 got a manual read an hour ago (no radio).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta

import psycopg
import pytest
from dash_seed import NOW, Seeded, seed

from storage.chart_queries import refresh_dashboards
from storage.flavor import refresh_rollups

WINDOW = NOW - timedelta(days=15)
NETWORK_LEAK_L_H = 20.0
WEST_INLET_L_H = 50.0
ADDRESSES = {"M1": ("Lipowa", "1"), "M2": ("Lipowa", "3"), "M3": ("Polna", "7"), "M4": ("Polna", "9"),
             "M5": ("Ogrodowa", "2")}


def seed_console(conn: psycopg.Connection) -> None:
    seed(conn)
    for meter_id, (street, number) in ADDRESSES.items():
        conn.execute("UPDATE meters SET street = %s, house_number = %s, city = 'Gdańsk' WHERE meter_id = %s",
                     (street, number, meter_id))
    conn.execute(
        "INSERT INTO meters (meter_id, customer_ref, premise_ref, district, street, house_number, city, role,"
        " removal_date) VALUES"
        " ('M6', 'C-E', 'P-M6', 'South', 'Polna', '11', 'Gdańsk', 'main', %s),"
        " ('M7', 'C-F', 'P-M7', 'West', 'Leśna', '5', 'Gdańsk', 'main', NULL),"
        " ('IN-N', NULL, NULL, 'North', NULL, NULL, NULL, 'inlet', NULL),"
        " ('IN-W', NULL, NULL, 'West', NULL, NULL, NULL, 'inlet', NULL)",
        (date(2026, 2, 1),),
    )
    # M7: heard every hour, register stuck at 55.5 m3; IN-W: 50 L/h; IN-N: M1 + M2 + 20 L/h
    conn.execute(
        """INSERT INTO readings (meter_id, time, total_m3, gateway_id, received_at, source)
           SELECT 'M7', t, 55.5, 'GW2', t, 'wmbus' FROM generate_series(%(lo)s, %(now)s, interval '1 hour') t
           UNION ALL
           SELECT 'IN-W', t, 1000 + %(w)s * extract(epoch FROM t - %(lo)s) / 3600.0 / 1000.0, 'GW-INLET', t, 'modbus'
           FROM generate_series(%(lo)s, %(now)s, interval '1 hour') t
           UNION ALL
           SELECT 'IN-N', time, 5000 + sum(total_m3) + %(n)s * extract(epoch FROM time - %(lo)s) / 3600.0 / 1000.0,
                  'GW-INLET', time, 'modbus'
           FROM readings WHERE meter_id IN ('M1', 'M2') AND time >= %(lo)s AND time <= %(now)s
           GROUP BY time HAVING count(*) = 2""",
        {"lo": WINDOW, "now": NOW, "w": WEST_INLET_L_H, "n": NETWORK_LEAK_L_H},
    )
    # a customer's self-read on M4, never heard by radio: it must not make M4 "heard"
    conn.execute("INSERT INTO readings (meter_id, time, total_m3, gateway_id, received_at, source)"
                 " VALUES ('M4', %s, 12.0, NULL, %s, 'manual')", (NOW - timedelta(hours=1), NOW))
    refresh_rollups(conn, WINDOW - timedelta(days=1), NOW + timedelta(hours=1))
    refresh_dashboards(conn, WINDOW - timedelta(days=1), NOW + timedelta(hours=1))
    conn.commit()


@pytest.fixture(scope="module")
def console_seeded(database_url: str) -> Iterator[Seeded]:
    with psycopg.connect(database_url) as conn:
        seed_console(conn)
    yield Seeded(database_url, NOW)
