"""Settings of the notification channels (`Settings.notify`, [notify] in meterflow.toml)."""

from __future__ import annotations

from pydantic import BaseModel, Field

DEFAULT_NOTIFY_KINDS = ["leak", "burst", "meter_alarm:burst"]


class NotifyConfig(BaseModel):
    """Customer and operator notifications of alerts (notify/)."""

    webhook_url: str | None = Field(
        default=None, description="POST each alert as JSON here (operators' system)")
    smtp_host: str | None = Field(
        default=None, description="SMTP server for e-mail to customers; unset = no e-mail")
    smtp_port: int = Field(default=25, description="SMTP port")
    smtp_from: str = Field(default="alerts@meterflow.invalid", description="sender address of the e-mails")
    email_to: str | None = Field(
        default=None, description="recipient when the meter has no contact of its own")
    sms_url: str | None = Field(default=None, description="HTTP SMS gateway (POST form: to, text)")
    sms_to: str | None = Field(
        default=None, description="phone number when the meter has no contact of its own")
    repeat_hours: float = Field(
        default=24.0, description="at most one message per alert and channel in this many hours")
    max_per_run: int = Field(
        default=200, description="at most this many messages per channel and run (flood guard)")
    kinds: list[str] = Field(
        default_factory=lambda: list(DEFAULT_NOTIFY_KINDS), description="alert kinds that are told to customers")
    min_severity: str = Field(
        default="warning", description="only alerts of this severity or above are told (warning | critical)")
