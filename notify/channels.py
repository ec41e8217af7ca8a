"""Channels: each sends one Message or raises. Plug in a new one by implementing `name` and `send`."""

from __future__ import annotations

import smtplib
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any, Protocol

import httpx


@dataclass(frozen=True)
class Message:
    alert_id: int
    meter_id: str
    kind: str
    severity: str
    subject: str
    text: str  # the customer's message (e-mail body)
    sms_text: str  # the short form
    payload: dict[str, Any] = field(default_factory=dict)  # the alert as JSON, for machines
    email: str | None = None  # recipient overrides (a contact of the meter), else the channel default
    phone: str | None = None


class Channel(Protocol):
    name: str

    def send(self, msg: Message) -> str:
        """Deliver; return the recipient; raise on failure."""
        ...


class WebhookChannel:
    name = "webhook"

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url
        self.timeout = timeout

    def send(self, msg: Message) -> str:
        resp = httpx.post(self.url, json={**msg.payload, "message": msg.text}, timeout=self.timeout)
        resp.raise_for_status()
        return self.url


class EmailChannel:
    name = "email"

    def __init__(self, host: str, port: int, sender: str, default_to: str | None, timeout: float = 10.0) -> None:
        self.host, self.port, self.sender, self.default_to, self.timeout = host, port, sender, default_to, timeout

    def send(self, msg: Message) -> str:
        to = msg.email or self.default_to
        if not to:
            raise ValueError("no e-mail recipient for this meter and no default (notify.email_to)")
        mail = EmailMessage()
        mail["From"] = self.sender
        mail["To"] = to
        mail["Subject"] = msg.subject
        mail.set_content(msg.text)
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            smtp.send_message(mail)
        return to


class SmsChannel:
    """An HTTP SMS gateway taking a form POST with `to` and `text` (the common denominator of gateways)."""

    name = "sms"

    def __init__(self, url: str, default_to: str | None, timeout: float = 10.0) -> None:
        self.url, self.default_to, self.timeout = url, default_to, timeout

    def send(self, msg: Message) -> str:
        to = msg.phone or self.default_to
        if not to:
            raise ValueError("no phone number for this meter and no default (notify.sms_to)")
        resp = httpx.post(self.url, data={"to": to, "text": msg.sms_text[:320]}, timeout=self.timeout)
        resp.raise_for_status()
        return to
