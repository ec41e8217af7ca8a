"""VEE thresholds with documented defaults (see analytics/vee/README.md).

Every field can be set in meterflow.toml under [vee] or with METERFLOW_VEE__<FIELD>, e.g. METERFLOW_VEE__STUCK_DAYS=30.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class VeeConfig(BaseModel):
    """Thresholds of the validation, estimation and editing (VEE) rules of billing consumption."""

    stuck_days: int = Field(
        default=30, ge=1,
        description="Rule 8: an active meter whose index does not move for this many days is possibly stuck."
    )
    high_factor: float = Field(
        default=3.0, gt=1.0,
        description="Rule 7: average daily use above high_factor x the reference (same period last year, else "
        "earlier periods) raises HIGH_USE.",
    )
    low_factor: float = Field(
        default=0.2, ge=0.0, lt=1.0,
        description="Rule 7: average daily use below low_factor x the reference raises LOW_USE."
    )
    high_low_min_m3_per_day: float = Field(
        default=0.01, ge=0.0,
        description="Rule 7: when both the period and the reference use less than this per day, no HIGH/LOW check.",
    )
    rollover_window: float = Field(
        default=0.1, gt=0.0, le=0.5,
        description="Rule 3: a decrease is a rollover candidate only if the previous index is in the top "
        "rollover_window of the register range (10^D) and the new one in the bottom rollover_window.",
    )
    spike_factor: float = Field(
        default=5.0, gt=1.0,
        description="Rule 9: an interval whose flow rate exceeds spike_factor x the meter's usual maximum."
    )
    spike_quantile: float = Field(
        default=0.95, gt=0.0, le=1.0,
        description="Rule 9: the meter's usual maximum flow rate is this quantile of its interval rates.",
    )
    spike_min_m3: float = Field(
        default=0.5, ge=0.0,
        description="Rule 9: intervals smaller than this volume are never spikes."
    )
    jump_m3: float = Field(
        default=2.0, gt=0.0,
        description="An interval of at least this volume is flagged JUMP (information, not an exception)."
    )
    short_gap_hours: float = Field(
        default=6.0, gt=0.0,
        description="Rule 10: gaps up to this length are interpolated linearly; longer ones from similar days.",
    )
    gap_factor: float = Field(
        default=1.5, gt=1.0,
        description="Rule 10: an interval longer than gap_factor x the meter's usual interval is a gap."
    )
    clock_step_tolerance_s: float = Field(
        default=120.0, ge=0.0,
        description="Rule 6: an interval that is not within this many seconds of a whole number of usual "
        "intervals is flagged CLOCK_STEP.",
    )
    future_tolerance_s: float = Field(
        default=300.0, ge=0.0,
        description="Rule 6: reads later than now + this are rejected as FUTURE_TIME."
    )
    estimate_lookback_months: int = Field(
        default=3, ge=1,
        description="Rule 11: a missing end read is estimated from the average of this many previous months."
    )
    max_consecutive_estimates: int = Field(
        default=3, ge=1,
        description="Rule 14: this many consecutive ESTIMATED periods (this one included) raise "
        "CONSECUTIVE_ESTIMATES.",
    )
    lookback_days: int = Field(
        default=35, ge=1,
        description="How far before the period reads are loaded to find the read before the start."
    )
    lookahead_days: int = Field(
        default=10, ge=0,
        description="How far after the period reads are loaded to find the read after the end."
    )
    decimals: int = Field(
        default=3, ge=0, le=9,
        description="Indexes and consumption are rounded to this many decimals (m3).",
    )
