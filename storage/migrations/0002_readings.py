"""The readings table: partitioned (PostgreSQL) or a hypertable (TimescaleDB)."""

from __future__ import annotations

import psycopg

from storage.flavor import Flavor, create_readings


def upgrade(conn: psycopg.Connection, flavor: Flavor, timezone: str) -> None:
    create_readings(conn, flavor)
