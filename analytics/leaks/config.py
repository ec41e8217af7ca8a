"""Leak and anomaly detector thresholds with documented defaults.

Every field can be set in meterflow.toml under [leaks] or by environment, e.g.
METERFLOW_LEAKS__NIGHT_MIN_L_H=3. The defaults are the ones measured in analytics/leaks/README.md.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

DEFAULT_NOTIFY_KINDS = ["continuous_flow", "night_flow", "burst", "meter_alarm:leak", "meter_alarm:burst"]


class NotifyConfig(BaseModel):
    """Customer and operator notifications of leak alerts (notify/)."""

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
        default="warning", description="only alerts of this severity or above are told (info | warning | critical)")


class LeakConfig(BaseModel):
    """Thresholds of the leak and anomaly detectors (analytics/leaks/detectors.py)."""

    # continuous flow: the vendors' rule "no hour without flow in 24 h"
    min_continuous_rate_l_h: float = Field(
        default=1.0, description="an hour counts as 'with flow' from this many litres (1 L: register resolution)")
    continuous_hours: int = Field(
        default=24, description="hours in a row without a dry hour before a continuous-flow alert")
    continuous_min_present: int = Field(
        default=20, description="of those hours, at least this many must have a reading (gaps are not evidence)")
    # night flow
    night_start_hour: int = Field(default=2, description="night window start, local hour (settings.timezone)")
    night_end_hour: int = Field(default=5, description="night window end (exclusive), local hour")
    night_min_l_h: float = Field(
        default=2.0, description="minimum hourly flow of the night window that counts as a leak")
    night_steady_factor: float = Field(
        default=4.0, description="a leak is steady: the night's median hour must stay below this times its minimum"
        " (+ night_steady_extra_l); rejects irrigation or a pump that fills only part of the window")
    night_steady_extra_l: float = Field(
        default=10.0, description="litres of slack for the steadiness test (one flush)")
    night_consecutive: int = Field(
        default=1, description="nights in a row above the threshold (1: alert after the first night)")
    night_confirm_nights: int = Field(
        default=2, description="until this many nights in a row the night alert is 'info' (operators only; not"
        " told to customers), then warning/critical")
    # burst
    burst_rate_l_h: float = Field(default=600.0, description="flow that is a burst when it lasts burst_minutes")
    burst_minutes: int = Field(default=30, description="minutes at burst_rate_l_h within one hour")
    burst_history_factor: float = Field(
        default=3.0, description="and the hour is above this many times the meter's own 99th-percentile hour")
    burst_day_factor: float = Field(
        default=4.0, description="a day above this many times the meter's median day of the previous 14 days")
    burst_day_min_l: float = Field(default=500.0, description="and at least this many litres above that median")
    burst_jump_m3: float = Field(
        default=5.0, description="an index jump of this much within one hour is a burst (or a fault)")
    # backflow
    backflow_min_l: float = Field(
        default=5.0, description="an index decrease of more than this (litres) is backflow")
    glitch_hours: int = Field(
        default=3, description="an index excursion that cancels out within this many hours is a data fault")
    glitch_min_l: float = Field(default=200.0, description="excursions smaller than this are left to the detectors")
    # stuck and silent
    stuck_days: int = Field(
        default=15, description="days of zero use on an occupied premise (longer than most holidays)")
    occupied_min_l_day: float = Field(
        default=30.0, description="a premise is occupied when its median day before was above this")
    silent_hours: int = Field(default=24, description="hours without any telegram")
    # merging and lifecycle
    merge_gap_hours: int = Field(default=24, description="episodes of one kind closer than this are one alert")
    active_slack_hours: int = Field(
        default=3, description="an episode valid until this close to the end of the window is still active")
    critical_rate_l_h: float = Field(default=30.0, description="leaks from this rate are critical (else warning)")
    history_days: int = Field(
        default=30, description="history loaded before the window, for baselines (stuck needs stuck_days + 7)")
    notify: NotifyConfig = Field(default_factory=NotifyConfig, description="notification channels")
