"""VEE thresholds with documented defaults (filled in by the billing work)."""

from __future__ import annotations

from pydantic import BaseModel


class VeeConfig(BaseModel):
    """Thresholds of the validation, estimation and editing rules."""

    stuck_days: int = 30
