"""Leak and anomaly detector thresholds with documented defaults.

Every field can be set in meterflow.toml under [leaks] or by environment, e.g.
METERFLOW_LEAKS__LEAK_MIN_L_H=4. The defaults are the ones measured in analytics/leaks/README.md (tuned on
half of the public DAIAD homes with injected leaks, checked on the other half).
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class LeakConfig(BaseModel):
    """Thresholds of the leak incidents (incidents.py) and the other detectors (detectors.py)."""

    # leak incidents: evidence
    leak_min_l_h: float = Field(
        default=3.0, description="an hour is 'wet' (leak evidence) from this many litres (or this mean rate across a"
        " gap of up to 24 h between readings); the leaks that must be found are >= 5 L/h")
    support_min_l_h: float = Field(
        default=1.0, description="a night whose every hour has at least this flow keeps an incident going"
        " (supporting evidence; it opens none)")
    night_start_hour: int = Field(default=2, description="night window start, local hour (settings.timezone)")
    night_end_hour: int = Field(default=5, description="night window end (exclusive), local hour")
    night_steady_factor: float = Field(
        default=4.0, description="a flow night is steady: its largest hour stays below this times its floor"
        " (+ night_steady_extra_l); rejects irrigation or a pump that fills only part of the window")
    night_steady_extra_l: float = Field(default=10.0, description="litres of slack for the steadiness test")
    night_median_factor: float = Field(
        default=1.5, description="and its median hour below this times its floor (+ night_median_extra_l): a leak"
        " holds the floor most of the night, a refilling cistern or an appliance does not")
    night_median_extra_l: float = Field(default=2.0, description="litres of slack for the median test")
    # leak incidents: what opens one
    continuous_hours: int = Field(
        default=24, description="wet hours in a row that open an incident (the vendors' 'no dry hour in 24 h')")
    continuous_min_known: int = Field(
        default=12, description="of the continuous_hours, at least this many read exactly (not a gap's mean)")
    continuous_needs_night: bool = Field(
        default=True, description="continuous flow opens an incident only when the run holds a steady flow night")
    continuous_fallback_hours: int = Field(
        default=48, description="continuous flow this long opens an incident even without a steady flow night (a home"
        " that uses water every night at the same hour)")
    early_hours: int = Field(
        default=18, description="a steady flow night inside this many wet hours in a row opens an incident")
    night_consecutive: int = Field(
        default=2, description="steady flow nights in a row that open an incident (one night is evidence only)")
    # leak incidents: lifecycle
    incident_gap_hours: int = Field(
        default=72, description="evidence closer than this is one incident: it stays open through shorter pauses"
        " and closes (flow_stopped) after a longer one")
    recurrence_days: int = Field(
        default=14, description="flow resuming within this many days of an incident that stopped by itself is the"
        " same leak: the incident reopens (a dispatcher's close starts a new one); 0 = off")
    recurrence_rate_factor: float = Field(
        default=1.5, description="resuming flow is the same leak up to this times its rate (+ leak_min_l_h); more"
        " is another leak: a new incident")
    critical_rate_l_h: float = Field(default=30.0, description="leaks from this rate are critical (else warning)")
    # burst
    burst_rate_l_h: float = Field(default=600.0, description="flow that is a burst when it lasts burst_minutes")
    burst_minutes: int = Field(default=30, description="minutes at burst_rate_l_h within one hour")
    burst_history_factor: float = Field(
        default=3.0, description="and the hour is above this many times the meter's own 99th-percentile hour")
    burst_day_factor: float = Field(
        default=4.0, description="a day above this many times the meter's median day of the previous 14 days")
    burst_day_min_l: float = Field(default=500.0, description="and at least this many litres above that median")
    burst_min_m3: float = Field(
        default=3.0, description="a burst loses at least this much above normal use (a bath, a laundry day or a garden"
        " watered for an evening does not)")
    burst_jump_m3: float = Field(
        default=5.0, description="an index jump of this much within one hour is a burst (or a fault)")
    # backflow, rollovers
    backflow_min_l: float = Field(
        default=50.0, description="an index decrease of more than this (litres) is backflow (smaller: jitter)")
    rollover_window: float = Field(
        default=0.1, description="a decrease from the top rollover_window of the register range (10^digits m3) to"
        " the bottom one is a rollover: unwrapped, never backflow or a burst")
    glitch_hours: int = Field(
        default=3, description="an index excursion that cancels out within this many hours is a data fault")
    glitch_min_l: float = Field(default=200.0, description="excursions smaller than this are left to the detectors")
    # stuck and silent
    stuck_days: int = Field(
        default=30, description="days of zero use on an occupied premise (longer than holidays; the VEE uses 30)")
    occupied_min_l_day: float = Field(
        default=30.0, description="a premise is occupied when its median day before was above this")
    silent_hours: int = Field(default=24, description="hours without any telegram")
    # merging and lifecycle of the other kinds
    merge_gap_hours: int = Field(default=24, description="episodes of one kind closer than this are one alert")
    active_slack_hours: int = Field(
        default=3, description="an episode valid until this close to the end of the window is still active")
    history_days: int = Field(
        default=40, description="history loaded before the window, for baselines (stuck needs stuck_days + 7)")
