"""Notices to the subscribers of interrupted streets: one message per subscriber for each version of an
interruption (it started, what residents were told changed, it ended), through the existing channels
(SMS to a phone, e-mail to an address), rate-limited per run, with a dry run. Every attempt is recorded in
interruption_notices, whose partial unique index on sent rows is what makes 'exactly one' hold."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg

from meterflow.logs import ctx, get_logger
from notify.channels import Channel, Message

log = get_logger(__name__)
RECENT = timedelta(hours=6)  # an interruption that ended longer ago than this is history, not news


@dataclass
class NoticeOutcome:
    interruption_id: int
    subscription_id: int
    phase: str
    channel: str
    status: str  # sent | failed | dry_run | rate_limited | no_channel
    recipient: str = ""
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def parse_sms_keyword(text: str) -> tuple[str, str | None]:
    """'ADD <street>' -> ('add', street); 'STOP' -> ('stop', None); anything else -> ('help', None)."""
    words = text.strip().split(None, 1)
    if not words:
        return "help", None
    cmd = words[0].upper()
    if cmd == "ADD" and len(words) == 2 and words[1].strip():
        return "add", " ".join(words[1].split())
    if cmd in ("STOP", "UNSUBSCRIBE", "END"):
        return "stop", None
    return "help", None


def compose(i: dict[str, Any], street: str, tz: str) -> tuple[str, str, str]:
    """(phase, subject, text) of the notice about interruption `i` for subscribers of `street`."""
    zone = ZoneInfo(tz)

    def at(t: datetime) -> str:
        return t.astimezone(zone).strftime("%d.%m.%Y %H:%M")

    where = street if i["street"] else f"{street} (district {i['district']})"
    planned = " (planned works)" if i.get("planned_id") else ""
    if i["state"] == "closed":
        phase = "ended"
        text = f"Water is back in {where} since {at(i['end_at'])}{planned}. It was off from {at(i['start_at'])}."
    else:
        phase = "started" if i["version"] == 1 else "changed"
        back = f" Expected back {at(i['expected_end'])}." if i.get("expected_end") else \
            " We will tell you when it is back."
        note = f" {i['planned_note']}." if i.get("planned_note") else ""
        text = f"No water in {where} since {at(i['start_at'])}{planned}.{back}{note}"
    subject = f"Water supply {street}: {'restored' if phase == 'ended' else 'interrupted'}"
    return phase, subject, text


Subscribers = Callable[[str, "str | None"], list[dict[str, Any]]]


def notify_interruptions(conn: psycopg.Connection, channels: list[Channel], tz: str,
                         interruptions: list[dict[str, Any]], subscribers: Subscribers, dry_run: bool = False,
                         now: datetime | None = None, max_per_run: int = 2000) -> list[NoticeOutcome]:
    """Tell each subscriber (subscribers(district, street)) of each supply interruption that is open, or
    ended within RECENT, about its current version, once: phones by SMS, addresses by e-mail. Dry run:
    compose and record, send nothing."""
    now = now or datetime.now(UTC)
    by_name = {c.name: c for c in channels}
    todo = [i for i in interruptions if i["kind"] == "supply" and
            (i["state"] == "open" or (i["end_at"] is not None and i["end_at"] >= now - RECENT))]
    done_states = ["sent", "dry_run"] if dry_run else ["sent"]  # a dry run never stands in for the real one
    sent_per_channel: dict[str, int] = {}
    out: list[NoticeOutcome] = []
    for i in sorted(todo, key=lambda r: r["id"]):
        for sub in subscribers(i["district"], i["street"]):
            done = conn.execute("SELECT 1 FROM interruption_notices WHERE interruption_id = %s AND subscription_id"
                                " = %s AND version = %s AND status = ANY(%s)",
                                (i["id"], sub["id"], i["version"], done_states)).fetchone()
            if done:
                continue
            phase, subject, text = compose(i, sub["street"], tz)
            name = "sms" if sub["phone"] and "sms" in by_name else "email" if sub["email"] and "email" in by_name \
                else None
            if name is None:
                out.append(NoticeOutcome(i["id"], sub["id"], phase, "", "no_channel"))
                continue
            if sent_per_channel.get(name, 0) >= max_per_run:
                out.append(NoticeOutcome(i["id"], sub["id"], phase, name, "rate_limited"))
                continue
            sent_per_channel[name] = sent_per_channel.get(name, 0) + 1
            msg = Message(alert_id=int(i["id"]), meter_id="", kind=f"interruption:{phase}", severity="warning",
                          subject=subject, text=text, sms_text=text, email=sub["email"], phone=sub["phone"],
                          payload={"interruption_id": i["id"], "phase": phase, "street": sub["street"]})
            status, recipient, error = "dry_run", sub["phone"] or sub["email"] or "", ""
            if not dry_run:
                try:
                    recipient = by_name[name].send(msg)
                    status = "sent"
                except Exception as exc:  # one failing recipient must not stop the others
                    status, error = "failed", f"{exc.__class__.__name__}: {exc}"
                    log.warning("notice failed", extra=ctx(interruption_id=i["id"], channel=name, error=error))
            conn.execute(
                """INSERT INTO interruption_notices (interruption_id, subscription_id, version, phase, channel,
                       recipient, status, error, message, sent_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
                   ON CONFLICT DO NOTHING""",
                (i["id"], sub["id"], i["version"], phase, name, recipient, status, error, text, now))
            conn.commit()
            out.append(NoticeOutcome(i["id"], sub["id"], phase, name, status, recipient, error))
    return out
