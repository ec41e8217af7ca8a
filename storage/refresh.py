"""Everything derived from readings for a window: rollups, then the dashboard tables built on them.

Flows call `refresh_derived` so the charts never lag the rollups they are drawn from; `meterflow serve` calls
`refresh_recent` every few minutes so the pages show the readings committed since. Runs are serialised by an
advisory lock (a flow and serve refreshing the same window at once would double rows in the plain-table
rollups)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg

from storage.chart_queries import refresh_dashboards
from storage.flavor import refresh_rollups

LOCK = "meterflow.refresh_derived"
RECENT = timedelta(hours=6)  # serve's window: readings whose meter time is this recent


def refresh_derived(conn: psycopg.Connection, start: datetime, end: datetime) -> None:
    """Refresh consumption rollups and dashboard tables for readings in [start, end), and commit."""
    conn.commit()
    conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (LOCK,))
    conn.commit()
    try:
        refresh_rollups(conn, start, end)
        conn.commit()
        refresh_dashboards(conn, start, end)
        conn.commit()
    finally:
        conn.rollback()
        conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (LOCK,))
        conn.commit()


def refresh_recent(conn: psycopg.Connection, now: datetime | None = None,
                   lookback: timedelta = RECENT) -> tuple[datetime, datetime]:
    """Refresh the window of the last `lookback` up to an hour past `now` (readings that arrive late, from
    a gateway's outbox after an outage, reach the pages with the hourly flow's refresh of its window)."""
    end = (now or datetime.now(UTC)) + timedelta(hours=1)
    start = end - timedelta(hours=1) - lookback
    refresh_derived(conn, start, end)
    return start, end
