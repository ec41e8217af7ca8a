"""Send open alerts through the channels, rate-limited, with a dry-run mode; every attempt is recorded
in alert_notifications (migration 0030), which is also what the rate limit reads."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from analytics.leaks.messages import describe
from meterflow.logs import ctx, get_logger
from notify.channels import Channel, EmailChannel, Message, SmsChannel, WebhookChannel
from notify.config import NotifyConfig

log = get_logger(__name__)
SEVERITY_ORDER = "CASE severity WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END"
SEVERITY_RANK = {"critical": 0, "warning": 1, "info": 2}


@dataclass
class Outcome:
    alert_id: int
    meter_id: str
    kind: str
    channel: str
    status: str  # sent | failed | dry_run | rate_limited
    recipient: str = ""
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def channels_from_config(cfg: NotifyConfig) -> list[Channel]:
    out: list[Channel] = []
    if cfg.webhook_url:
        out.append(WebhookChannel(cfg.webhook_url))
    if cfg.smtp_host:
        out.append(EmailChannel(cfg.smtp_host, cfg.smtp_port, cfg.smtp_from, cfg.email_to))
    if cfg.sms_url:
        out.append(SmsChannel(cfg.sms_url, cfg.sms_to))
    return out


def build_message(alert: dict[str, Any], tz: str) -> Message:
    rate = alert["rate_l_h"]
    payload = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in alert.items()
               if k in ("id", "meter_id", "kind", "severity", "first_seen", "last_seen", "rate_l_h", "volume_m3")}
    size = f" ~{rate:.0f} L/h" if rate is not None else ""
    return Message(
        alert_id=int(alert["id"]), meter_id=alert["meter_id"], kind=alert["kind"], severity=alert["severity"],
        subject=f"Water meter {alert['meter_id']}: {alert['kind'].replace('_', ' ')}{size}",
        text=describe(alert["meter_id"], alert["kind"], alert["first_seen"], rate, tz),
        sms_text=describe(alert["meter_id"], alert["kind"], alert["first_seen"], rate, tz, sms=True),
        payload=payload,
    )


def notify_open_alerts(conn: psycopg.Connection, channels: list[Channel], cfg: NotifyConfig, tz: str,
                       dry_run: bool = False, now: datetime | None = None) -> list[Outcome]:
    """Tell every open alert of cfg.kinds through every channel, at most once per cfg.repeat_hours per alert
    and channel and cfg.max_per_run per channel; critical first. Dry run: compose, record, send nothing."""
    now = now or datetime.now(UTC)
    rows = conn.execute(
        f"""SELECT id, meter_id, kind, severity, first_seen, last_seen, rate_l_h, volume_m3 FROM alerts
            WHERE state = 'open' AND kind = ANY(%s) AND {SEVERITY_ORDER} <= %s
            ORDER BY {SEVERITY_ORDER}, first_seen, id""",
        (cfg.kinds, min(SEVERITY_RANK.get(cfg.min_severity, 1), 1))).fetchall()  # info is never told
    cols = ("id", "meter_id", "kind", "severity", "first_seen", "last_seen", "rate_l_h", "volume_m3")
    sent_per_channel: dict[str, int] = {}
    out: list[Outcome] = []
    for r in rows:
        alert = dict(zip(cols, r, strict=True))
        msg = build_message(alert, tz)
        for ch in channels:
            last = conn.execute(
                "SELECT max(sent_at) FROM alert_notifications WHERE alert_id = %s AND channel = %s"
                " AND status = 'sent'", (msg.alert_id, ch.name)).fetchone()
            if (last and last[0] and now - last[0] < timedelta(hours=cfg.repeat_hours)) \
                    or sent_per_channel.get(ch.name, 0) >= cfg.max_per_run:
                out.append(Outcome(msg.alert_id, msg.meter_id, msg.kind, ch.name, "rate_limited"))
                continue
            sent_per_channel[ch.name] = sent_per_channel.get(ch.name, 0) + 1
            status, recipient, error = "dry_run", "", ""
            if not dry_run:
                try:
                    recipient = ch.send(msg)
                    status = "sent"
                except Exception as exc:  # a channel failing must not stop the others
                    status, error = "failed", f"{exc.__class__.__name__}: {exc}"
                    log.warning("notification failed", extra=ctx(alert_id=msg.alert_id, channel=ch.name,
                                                                  error=error))
            conn.execute(
                "INSERT INTO alert_notifications (alert_id, channel, recipient, sent_at, status, error, message)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (msg.alert_id, ch.name, recipient, now, status, error, msg.text))
            conn.commit()
            out.append(Outcome(msg.alert_id, msg.meter_id, msg.kind, ch.name, status, recipient, error))
    return out
