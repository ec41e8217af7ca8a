"""Leak detection as a Prefect flow: refresh the rollup, run the detectors, store the incidents, optionally notify.
`run_detection` is the one path of detection from the database: the hourly flow and `meterflow leaks detect`
both call it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import polars as pl
import psycopg
from prefect import flow

from analytics.leaks.detectors import detect_all
from analytics.leaks.hourly import normalise_readings
from analytics.leaks.messages import describe
from meterflow.config import Settings
from meterflow.logs import ctx, get_logger
from pipelines.hourly import hourly_run
from pipelines.maintenance import maintenance_step
from storage.alerts import dispatcher_closes, load_input, registry_context, removal_times, sync
from storage.db import connect, resolve_dsn
from storage.refresh import refresh_derived

log = get_logger(__name__)


@dataclass
class DetectionRun:
    """What one run found: every detection overlapping the window (open or closed) and the storage counts."""

    start: datetime
    end: datetime
    meters: int
    detections: pl.DataFrame
    stored: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {"from": self.start.isoformat(), "to": self.end.isoformat(), "meters": self.meters,
                "detections": self.detections.height, **self.stored}


def with_messages(det: pl.DataFrame, tz: str) -> pl.DataFrame:
    """Add the plain-language text of each detection (stored with the alert, sent by notify/)."""
    texts = [describe(m, k, s, r, tz) for m, k, s, r in det.select("meter_id", "kind", "start", "rate_l_h").rows()]
    return det.with_columns(pl.Series("message", texts, dtype=pl.String()))


def run_detection(conn: psycopg.Connection, settings: Settings, end: datetime, start: datetime | None = None,
                  store: bool = True, refresh: bool = True) -> DetectionRun:
    """Detect on [start - history_days, end) and keep the detections overlapping [start, end) (default start:
    end - history_days); with `store`, every one of them goes to the alerts table, open or closed."""
    cfg = settings.leaks
    start = start or end - timedelta(days=cfg.history_days)
    lo = start - timedelta(days=cfg.history_days)
    if refresh:
        refresh_derived(conn, lo, end)
    data = normalise_readings(load_input(conn, lo, end))
    meters = sorted(set(data.get_column("meter_id").to_list()))
    digits, swaps = registry_context(conn, meters, settings.timezone)
    det = detect_all(data, cfg, settings.timezone, as_of=end, digits=digits, breaks=swaps,
                     dispatcher_closes=dispatcher_closes(conn, meters))
    det = with_messages(det.filter((pl.col("end") > start) & (pl.col("start") < end)), settings.timezone)
    removed = removal_times(conn, meters, settings.timezone)
    if removed:  # the registry says the meter was taken out: its silence is expected
        cut = pl.col("meter_id").replace_strict(removed, default=None, return_dtype=pl.Datetime("us", "UTC"))
        det = det.filter(~((pl.col("kind") == "silent") & cut.is_not_null() & (pl.col("start") >= cut)))
    run = DetectionRun(start, end, len(meters), det)
    if store:
        run.stored = sync(conn, det, end, meters, cfg.active_slack_hours).as_dict()
    return run


HOURLY_CRON = "5 * * * *"  # five past each hour, after the last quarter-hour telegrams are in


@flow(name="leak-detection", log_prints=False)
def leak_detection_flow(as_of: datetime | None = None, notify: bool = False, dry_run: bool = True,
                        settings: Any = None) -> dict[str, Any]:
    """Hourly: detectors over the last history_days, incidents stored (opened, updated, closed), notifications."""
    s, when = hourly_run(as_of, settings)
    with connect(resolve_dsn(s)) as conn:
        out = run_detection(conn, s, when).summary()
        from pipelines.interruptions import run_interruptions  # its own step: supply interruptions

        out["interruptions"] = run_interruptions(conn, s, when, notify, dry_run, refresh=False)
        out["maintenance"] = maintenance_step(conn, s)
        if notify:
            from notify.dispatch import channels_from_config, notify_open_alerts

            outcomes = notify_open_alerts(conn, channels_from_config(s.notify), s.notify, s.timezone,
                                          dry_run=dry_run)
            out["notifications"] = {st: sum(o.status == st for o in outcomes)
                                    for st in ("sent", "failed", "dry_run", "rate_limited")}
    log.info("leak detection", extra=ctx(**{k: v for k, v in out.items() if not isinstance(v, dict)}))
    return out


def deployment(cron: str = HOURLY_CRON, name: str = "hourly", timezone: str = "UTC", notify: bool = False,
               dry_run: bool = True) -> Any:
    """The leak-detection deployment: every hour, incidents refreshed (and notifications sent when asked)."""
    from prefect.schedules import Cron

    return leak_detection_flow.to_deployment(name=name, schedules=[Cron(cron, timezone=timezone)], tags=["leaks"],
                                             parameters={"notify": notify, "dry_run": dry_run})
