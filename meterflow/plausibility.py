"""What a stored reading may be: one rule set for every path (radio, Modbus, wmbusmeters, import, manual).

A reading that breaks a rule is refused with a reason code rather than stored, because an absurd value
(Infinity, 1e308, a negative index, a 2005 date from a meter installed last year) poisons billing and
pages long after it arrived. Pure: no I/O, so the decoder core, storage and the API share it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, Field

#: index columns are numeric(14,3)-safe well beyond any water register (12 digits of m3)
MAX_INDEX_M3 = 1e12
#: a meter id from outside: 1-64 characters, no whitespace or control characters (regex, also for polars)
METER_ID_PATTERN = r"^[^\s\x00-\x1f\x7f]{1,64}$"


class PlausibilitySettings(BaseModel):
    """The window of reading times accepted and the tolerance for meter clocks running ahead."""

    earliest: datetime = Field(default=datetime(2000, 1, 1, tzinfo=UTC), description="oldest reading time accepted")
    future_tolerance_hours: float = Field(default=48.0, ge=0, description="how far ahead of now a meter clock may be")


@dataclass(frozen=True)
class Refusal:
    """Why a value was refused: a stable code for machines, a sentence for people."""

    code: str
    reason: str


def check_index(value_m3: float | int | None, register_digits: int | None = None) -> Refusal | None:
    """A meter index (m3): finite, not negative, within the register's capacity when it is known."""
    if value_m3 is None:
        return None
    if isinstance(value_m3, bool) or not isinstance(value_m3, int | float):
        return Refusal("not_a_number", f"index {value_m3!r} is not a number")
    if not math.isfinite(value_m3):
        return Refusal("not_finite", f"index {value_m3} is not a finite number")
    if value_m3 < 0:
        return Refusal("negative_index", f"index {value_m3} m3 is negative")
    capacity = 10.0 ** register_digits if register_digits else MAX_INDEX_M3
    if value_m3 >= min(capacity, MAX_INDEX_M3):
        return Refusal("beyond_register", f"index {value_m3} m3 is beyond the register's capacity ({capacity:g} m3)")
    return None


def check_meter_id(meter_id: str) -> Refusal | None:
    """A meter id typed or imported by people: short, printable, without spaces."""
    if not re.fullmatch(METER_ID_PATTERN, meter_id):
        return Refusal("malformed_meter_id", "meter id must be 1-64 characters without spaces or control characters")
    return None


def check_time(when: datetime, now: datetime | None = None,
               settings: PlausibilitySettings | None = None) -> Refusal | None:
    """A reading time: timezone-aware and inside [earliest, now + tolerance]."""
    settings = settings or PlausibilitySettings()
    if when.tzinfo is None:
        return Refusal("naive_time", f"time {when.isoformat()} has no time zone")
    now = now or datetime.now(UTC)
    if when < settings.earliest:
        return Refusal("time_out_of_window", f"time {when.isoformat()} is before {settings.earliest.date()}")
    if when > now + timedelta(hours=settings.future_tolerance_hours):
        return Refusal("time_in_future", f"time {when.isoformat()} is in the future")
    return None
