"""The interruption step of the hourly flow: detect over the recent readings, keep the interruptions'
lifecycle (and planned works) in the database, then tell the streets' subscribers. `run_interruptions`
is the plain function the command, the leak-detection flow and the tests share."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import polars as pl
import psycopg
from prefect import flow

from analytics.interruptions.detect import PREMISES_SCHEMA, detect_interruptions
from meterflow.config import Settings
from meterflow.logs import ctx, get_logger
from pipelines.hourly import hourly_run
from storage import interruptions as store
from storage.alerts import load_input
from storage.db import connect, resolve_dsn
from storage.refresh import refresh_derived

log = get_logger(__name__)


def detect_window(conn: psycopg.Connection, settings: Settings, start: datetime, end: datetime,
                  refresh: bool = True) -> pl.DataFrame:
    """Detections on [start - history_days, end) from the hourly rollup and the alarm readings."""
    cfg = settings.interruptions
    since = start - timedelta(days=cfg.history_days)
    if refresh:
        refresh_derived(conn, since, end)
    data = load_input(conn, since, end)
    premises = pl.DataFrame(store.load_premises(conn), schema=PREMISES_SCHEMA, orient="row")
    return detect_interruptions(data, premises, cfg, settings.timezone, end=end)


def run_interruptions(conn: psycopg.Connection, settings: Settings, as_of: datetime, notify: bool = False,
                      dry_run: bool = True, refresh: bool = True) -> dict[str, Any]:
    """Detect at as_of, apply to the interruptions table, optionally notify subscribers."""
    det = detect_window(conn, settings, as_of, as_of, refresh)
    res = store.sync(conn, det.to_dicts(), as_of)
    out: dict[str, Any] = {"as_of": as_of.isoformat(), "detections": det.height, **res.as_dict()}
    if notify:
        from notify.dispatch import channels_from_config
        from notify.interruption_notices import notify_interruptions

        store.subscribe_consenting(conn)
        outcomes = notify_interruptions(
            conn, channels_from_config(settings.notify), settings.timezone,
            store.list_interruptions(conn, kind="supply"), lambda d, s: store.subscribers_of(conn, d, s),
            dry_run=dry_run, now=as_of, max_per_run=settings.interruptions.notify_max_per_run)
        out["notices"] = {st: sum(o.status == st for o in outcomes)
                          for st in ("sent", "failed", "dry_run", "rate_limited", "no_channel")}
    log.info("interruptions", extra=ctx(**{k: v for k, v in out.items() if not isinstance(v, dict)}))
    return out


@flow(name="interruption-detection", log_prints=False)
def interruption_flow(as_of: datetime | None = None, notify: bool = False, dry_run: bool = True,
                      settings: Any = None) -> dict[str, Any]:
    """Hourly: interruptions opened, updated and closed, then notices."""
    s, when = hourly_run(as_of, settings)
    with connect(resolve_dsn(s)) as conn:
        return run_interruptions(conn, s, when, notify, dry_run)
