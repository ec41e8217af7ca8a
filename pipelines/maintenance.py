"""The hourly flow's storage-maintenance step: compress, expire and refresh even when the server's jobs fail.

A failure here is logged and reported in the flow's result, never hidden, and never stops leak detection."""

from __future__ import annotations

import psycopg

from meterflow.config import Settings
from meterflow.logs import ctx, get_logger
from storage.maintenance import maintain, policy_of

log = get_logger(__name__)


def maintenance_step(conn: psycopg.Connection, settings: Settings) -> str:
    """Run `maintain` on this connection; returns its one-line summary (or the error, prefixed 'failed:')."""
    try:
        report = maintain(conn, policy=policy_of(settings))
    except (psycopg.Error, OSError) as exc:
        conn.rollback()
        log.error("storage maintenance failed", extra=ctx(error=str(exc).strip()))
        return f"failed: {str(exc).strip()}"
    log.info("storage maintenance", extra=ctx(flavor=report.flavor, summary=report.summary()))
    return report.summary()
