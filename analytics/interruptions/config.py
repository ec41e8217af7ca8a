"""Thresholds of the interruption detector with documented defaults (settings section [interruptions],
e.g. METERFLOW_INTERRUPTIONS__THRESHOLD_NATS=12). The defaults are the ones measured in README.md here."""

from __future__ import annotations

from pydantic import BaseModel, Field, SecretStr


class InterruptionConfig(BaseModel):
    """Collective standstill, dry alarms and communication outages (analytics/interruptions/detect.py)."""

    zero_l: float = Field(default=0.5, description="an hour with less than this many litres is 'standing still'")
    spread_hours: int = Field(
        default=2, description="a reading after a gap of up to this many hours still tells each hour's use")
    streak_states: int = Field(
        default=4, description="the rarity of standing still is learnt per hours since the meter last moved"
        " (0, 1, ... up to this many)")
    presence_hours: int = Field(
        default=24, description="a meter is evidence only when it drew water in this many hours before the run"
        " (a home away on holiday says nothing about the supply)")
    pool_hours: int = Field(
        default=1, ge=0, description="the rarity at a local hour is learnt from the hours this close to it too"
        " (1: a 3-hour window): habits drift by the hour, and the hourly flow's 56 days give few nights a rate")
    prior_weight: float = Field(
        default=10.0, description="pseudo-hours pulling a meter's rate to its broader rate (pooled hours count)")
    p_floor: float = Field(
        default=0.03, description="no meter-hour counts as rarer than this (one odd home cannot open an interruption)")
    threshold_nats: float = Field(
        default=9.0, description="evidence (sum over the run's standing meter-hours of -ln P(standing still"
        " then)) that opens an interruption: e^-9 = 1.2e-4 per group and hour under independence")
    fleet_tempering: bool = Field(
        default=True, description="weigh each hour's evidence by how the other districts behave in it"
        " (movers seen / movers expected there)")
    min_meters: int = Field(default=3, description="at least this many reporting meters standing still")
    start_nats: float = Field(
        default=0.7, description="the interruption starts at the first hour of the standstill whose own rarity"
        " (sum over meters, one hour) reaches this: a standstill that began in the quiet night starts in the morning")
    holiday_country: str | None = Field(
        default="PL", description="public holidays of this country (ISO code, python-holidays) count as Sundays")
    holiday_subdiv: str | None = Field(default=None, description="and of this subdivision (region), if any")
    dry_words: list[str] = Field(
        default_factory=lambda: ["dry", "empty_pipe", "no_water", "air"],
        description="meter alarm words that mean an empty pipe")
    dry_min_meters: int = Field(default=2, description="meters of one group raising a dry alarm in the same hour")
    comm_share: float = Field(
        default=0.8, description="a communication outage: this share of a district's live meters silent")
    comm_min_meters: int = Field(default=2, description="and at least this many of them")
    comm_min_hours: int = Field(default=2, description="for at least this many hours in a row")
    live_hours: int = Field(default=48, description="a meter is live when it reported within this many hours")
    history_days: int = Field(default=56, description="history loaded before the window (learning the rarity)")
    sms_inbound_secret: SecretStr | None = Field(
        default=None, description="when set, the SMS gateway's inbound webhook must carry ?secret=<this>")
    notify_max_per_run: int = Field(
        default=2000, description="at most this many notices per channel and run (flood guard; the rest wait)")
