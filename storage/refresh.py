"""Everything derived from readings for a window: rollups, then the dashboard tables built on them.

Flows call this one function so the charts never lag the rollups they are drawn from."""

from __future__ import annotations

from datetime import datetime

import psycopg

from storage.chart_queries import refresh_dashboards
from storage.flavor import refresh_rollups


def refresh_derived(conn: psycopg.Connection, start: datetime, end: datetime) -> None:
    """Refresh consumption rollups and dashboard tables for readings in [start, end), and commit."""
    refresh_rollups(conn, start, end)
    conn.commit()
    refresh_dashboards(conn, start, end)
    conn.commit()
