"""Hourly and daily consumption rollups: tables (PostgreSQL) or continuous aggregates (TimescaleDB)."""

from __future__ import annotations

import psycopg

from storage.flavor import Flavor, create_rollups


def upgrade(conn: psycopg.Connection, flavor: Flavor, timezone: str) -> None:
    create_rollups(conn, flavor, timezone)
