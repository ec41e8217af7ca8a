"""Leak detector thresholds with documented defaults (filled in by the leak work)."""

from __future__ import annotations

from pydantic import BaseModel


class LeakConfig(BaseModel):
    """Thresholds of the leak and anomaly detectors."""

    min_continuous_rate_l_h: float = 1.0
