"""TimescaleDB: the continuous aggregates are compressed like readings (segmented by meter, after 30 days)."""

from __future__ import annotations

import psycopg

from storage.flavor import ROLLUPS, Flavor, compress_rollup


def upgrade(conn: psycopg.Connection, flavor: Flavor, timezone: str) -> None:
    if flavor == "timescale":
        for name in ROLLUPS:
            compress_rollup(conn, name)
