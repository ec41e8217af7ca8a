"""Notification channels against real local servers (HTTP and SMTP on free ports), rate limit, dry run."""

from __future__ import annotations

import email
import json
import socketserver
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import polars as pl
import psycopg
import pytest
from leak_helpers import T0

from analytics.leaks.detectors import DETECTION_SCHEMA
from notify.channels import EmailChannel, SmsChannel, WebhookChannel
from notify.config import NotifyConfig
from notify.dispatch import notify_open_alerts
from pipelines.leaks import with_messages
from storage import alerts

H = timedelta(hours=1)


class _Http(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append((self.path, self.headers.get("Content-Type", ""), body))  # type: ignore[attr-defined]
        status = 500 if self.path == "/broken" else 200
        self.send_response(status)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: Any) -> None:
        pass


class _Smtp(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        self.wfile.write(b"220 localhost test ESMTP\r\n")
        data, lines = False, []
        while line := self.rfile.readline():
            if data:
                if line in (b".\r\n", b".\n"):
                    data = False
                    self.server.messages.append(b"".join(lines))  # type: ignore[attr-defined]
                    lines = []
                    self.wfile.write(b"250 queued\r\n")
                else:
                    lines.append(line[1:] if line.startswith(b"..") else line)
                continue
            cmd = line[:4].upper()
            if cmd == b"EHLO":
                self.wfile.write(b"250-localhost\r\n250 8BITMIME\r\n")
            elif cmd == b"DATA":
                data = True
                self.wfile.write(b"354 go ahead\r\n")
            elif cmd == b"QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            else:
                self.wfile.write(b"250 OK\r\n")


@pytest.fixture
def http_server() -> Iterator[ThreadingHTTPServer]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Http)
    srv.received = []  # type: ignore[attr-defined]
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def smtp_server() -> Iterator[socketserver.ThreadingTCPServer]:
    srv = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Smtp)
    srv.daemon_threads = True
    srv.messages = []  # type: ignore[attr-defined]
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _open_alerts(conn: psycopg.Connection) -> None:
    common = {"state": "open", "close_reason": None, "closed_at": None, "details": "{}"}
    rows = [
        {"meter_id": "m1", "kind": "leak", "severity": "warning", "start": T0, "end": T0 + 30 * H,
         "detected_at": T0 + 24 * H, "valid_until": T0 + 30 * H, "rate_l_h": 12.0, "volume_m3": 0.36, **common},
        {"meter_id": "m2", "kind": "burst", "severity": "critical", "start": T0, "end": T0 + 3 * H,
         "detected_at": T0 + 3 * H, "valid_until": T0 + 30 * H, "rate_l_h": 900.0, "volume_m3": 2.7, **common},
        {"meter_id": "m3", "kind": "silent", "severity": "info", "start": T0, "end": T0 + 30 * H,
         "detected_at": T0 + 24 * H, "valid_until": T0 + 30 * H, "rate_l_h": None, "volume_m3": None, **common},
    ]
    alerts.sync(conn, with_messages(pl.DataFrame(rows, schema=DETECTION_SCHEMA), "Europe/Warsaw"), T0 + 30 * H)


def test_channels_deliver_to_real_servers_and_rate_limit(clean_db: psycopg.Connection,
                                                         http_server: ThreadingHTTPServer,
                                                         smtp_server: socketserver.ThreadingTCPServer) -> None:
    _open_alerts(clean_db)
    port = http_server.server_address[1]
    cfg = NotifyConfig(email_to="owner@example.org", sms_to="+48123456789")
    channels = [WebhookChannel(f"http://127.0.0.1:{port}/hook"),
                EmailChannel("127.0.0.1", smtp_server.server_address[1], cfg.smtp_from, cfg.email_to),
                SmsChannel(f"http://127.0.0.1:{port}/sms", cfg.sms_to)]
    out = notify_open_alerts(clean_db, channels, cfg, "Europe/Warsaw", now=T0 + 30 * H)
    # critical first; the 'info' silent meter is for operators' data quality, never told
    assert [(o.meter_id, o.channel, o.status) for o in out] == [
        ("m2", "webhook", "sent"), ("m2", "email", "sent"), ("m2", "sms", "sent"),
        ("m1", "webhook", "sent"), ("m1", "email", "sent"), ("m1", "sms", "sent")]
    hook = [r for r in http_server.received if r[0] == "/hook"][1]  # type: ignore[attr-defined]
    payload = json.loads(hook[2])
    assert (payload["meter_id"], payload["kind"], payload["rate_l_h"]) == ("m1", "leak", 12.0)
    sms = parse_qs([r for r in http_server.received if r[0] == "/sms"][1][2].decode())  # type: ignore[attr-defined]
    assert sms["to"] == ["+48123456789"]
    assert "12 L/h (288 litres per day) since 01.06.2026 02:00" in sms["text"][0]
    mail = email.message_from_bytes(smtp_server.messages[1])  # type: ignore[attr-defined]
    assert mail["To"] == "owner@example.org" and "leak" in mail["Subject"]
    assert "288 litres per day" in mail.get_payload(decode=True).decode()
    # within repeat_hours nothing is sent again
    again = notify_open_alerts(clean_db, channels, cfg, "Europe/Warsaw", now=T0 + 40 * H)
    assert {o.status for o in again} == {"rate_limited"}
    later = notify_open_alerts(clean_db, channels, cfg, "Europe/Warsaw", now=T0 + 55 * H)
    assert {o.status for o in later} == {"sent"}
    assert len(smtp_server.messages) == 4  # type: ignore[attr-defined]


def test_dry_run_sends_nothing_and_failures_are_recorded(clean_db: psycopg.Connection,
                                                        http_server: ThreadingHTTPServer) -> None:
    _open_alerts(clean_db)
    port = http_server.server_address[1]
    cfg = NotifyConfig(max_per_run=1)
    dry = notify_open_alerts(clean_db, [WebhookChannel(f"http://127.0.0.1:{port}/hook")], cfg, "UTC",
                             dry_run=True, now=T0 + 30 * H)
    # max_per_run=1: the second alert waits for the next run
    assert [(o.meter_id, o.status) for o in dry] == [("m2", "dry_run"), ("m1", "rate_limited")]
    assert http_server.received == []  # type: ignore[attr-defined]
    failed = notify_open_alerts(clean_db, [WebhookChannel(f"http://127.0.0.1:{port}/broken")], cfg, "UTC",
                                now=T0 + 30 * H)
    assert failed[0].status == "failed" and "500" in failed[0].error
    rows = clean_db.execute("SELECT channel, status FROM alert_notifications ORDER BY id").fetchall()
    assert rows == [("webhook", "dry_run"), ("webhook", "failed")]
