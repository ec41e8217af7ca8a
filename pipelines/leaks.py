"""Hourly leak detection as a Prefect flow: refresh the rollup, run the detectors, keep the alerts' lifecycle,
optionally notify. `run_detection` is the plain function the flow and the command share."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from prefect import flow

from analytics.leaks.detectors import detect_all
from meterflow.config import Settings, load_settings
from meterflow.logs import ctx, get_logger
from storage.alerts import load_input, sync
from storage.db import connect, resolve_dsn
from storage.refresh import refresh_derived

log = get_logger(__name__)


def run_detection(conn: psycopg.Connection, settings: Settings, as_of: datetime) -> dict[str, Any]:
    """Detect on [as_of - history_days, as_of) and apply the result to the alerts table."""
    cfg = settings.leaks
    start = as_of - timedelta(days=cfg.history_days)
    refresh_derived(conn, start, as_of)
    data = load_input(conn, start, as_of)
    det = detect_all(data, cfg, settings.timezone, as_of=as_of)
    meters = sorted(set(data.get_column("meter_id").to_list()))
    res = sync(conn, det, as_of, meters, cfg.active_slack_hours, settings.timezone)
    return {"as_of": as_of.isoformat(), "meters": len(meters), "detections": det.height, **res.as_dict()}


HOURLY_CRON = "5 * * * *"  # five past each hour, after the last quarter-hour telegrams are in


@flow(name="leak-detection", log_prints=False)
def leak_detection_flow(as_of: datetime | None = None, notify: bool = False, dry_run: bool = True,
                        settings: Any = None) -> dict[str, Any]:
    """Hourly: detectors over the last history_days, alerts opened/updated/resolved, then notifications."""
    s: Settings = settings if isinstance(settings, Settings) else load_settings()
    when = (as_of or datetime.now(UTC)).astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    with connect(resolve_dsn(s)) as conn:
        out = run_detection(conn, s, when)
        from pipelines.interruptions import run_interruptions  # its own step: supply interruptions (issue 15)

        out["interruptions"] = run_interruptions(conn, s, when, notify, dry_run, refresh=False)
        if notify:
            from notify.dispatch import channels_from_config, notify_open_alerts

            outcomes = notify_open_alerts(conn, channels_from_config(s.leaks.notify), s.leaks.notify,
                                          s.timezone, dry_run=dry_run)
            out["notifications"] = {st: sum(o.status == st for o in outcomes)
                                    for st in ("sent", "failed", "dry_run", "rate_limited")}
    log.info("leak detection", extra=ctx(**{k: v for k, v in out.items() if not isinstance(v, dict)}))
    return out


def deployment(cron: str = HOURLY_CRON, name: str = "hourly", timezone: str = "UTC", notify: bool = False,
               dry_run: bool = True) -> Any:
    """The leak-detection deployment: every hour, alerts refreshed (and notifications sent when asked)."""
    from prefect.schedules import Cron

    return leak_detection_flow.to_deployment(name=name, schedules=[Cron(cron, timezone=timezone)], tags=["leaks"],
                                             parameters={"notify": notify, "dry_run": dry_run})
