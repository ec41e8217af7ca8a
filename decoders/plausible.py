"""The last step of every decoder path: a decoded Reading is plausible, or it is a DecodeError with a code.

wM-Bus, Modbus and wmbusmeters JSON all end here, so one rule set (the kernel's `meterflow.plausibility`)
decides what may reach the database: an absurd value (Infinity, a 64-bit record scaled past 2**64, a
negative index, a 10,000-character id, a NUL in a text) must never become a reading, because it breaks
the writer, billing and pages long after it arrived.

Primary values refuse the whole frame: the meter id, the manufacturer, the total (the billing register),
every field (finite, 64-bit, printable). Secondary values that are wrong while the total is fine (a
billing value of all ones meaning "none yet", a meter clock that was never set) are moved out of their
column into `fields["refused_<name>"]` ("<value> <code>"), so the reading stays and the column stays sane.
Where the meter time *is* the reading's time (wmbusmeters JSON) a refused time refuses the reading.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any

from decoders.reading import DecodeError, Reading
from meterflow.plausibility import PlausibilitySettings, Refusal, check_index, check_meter_id, check_time

INT64 = 1 << 63
WMBUS_ID = re.compile(r"[0-9]{8}")  # BCD, as printed on the meter
WMBUS_HEX_ID = re.compile(r"[0-9a-f]{8}")  # makes that number their meters in binary (drivers say so)
_MANUFACTURER = re.compile(r"(?:[A-Z]{3})?")  # empty: a wired frame addressed by primary address only


@dataclass(frozen=True, slots=True)
class Rules:
    """What a decoder path promises about its readings."""

    settings: PlausibilitySettings = field(default_factory=PlausibilitySettings)
    id_pattern: re.Pattern[str] | None = None  # None: any id of 1-64 printable characters
    register_digits: int | None = None  # whole m3 digits of the billing register, when known
    time_is_reading_time: bool = False  # meter_time keys the reading: refuse the reading, not the column


def _fail(reading: Reading, refusal: Refusal | tuple[str, str]) -> DecodeError:
    code, reason = (refusal.code, refusal.reason) if isinstance(refusal, Refusal) else refusal
    meter_id = reading.meter_id if len(reading.meter_id) <= 64 and reading.meter_id.isprintable() else None
    manufacturer = reading.manufacturer if reading.manufacturer.isprintable() else None
    return DecodeError(code, reason, meter_id=meter_id, manufacturer=manufacturer)


def _field_problem(name: Any, value: Any) -> tuple[str, str] | None:
    if not isinstance(name, str) or not name.isprintable():
        return "control_characters", f"field name {name!r} is not printable text"
    kind = type(value)
    if kind is float and not math.isfinite(value):
        return "value_out_of_range", f"{name} = {value} is not finite"
    if kind is int and not -INT64 <= value < INT64:
        return "value_out_of_range", f"{name} does not fit 64 bits ({value.bit_length()} bits)"
    if kind is str and not value.isprintable():
        return "control_characters", f"{name} holds control characters"
    return None


def _day_time(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def vet(reading: Reading, rules: Rules, now: datetime | None = None) -> Reading | DecodeError:
    """The reading as it may be stored (secondary values perhaps moved to fields), or why it may not."""
    meter_id = reading.meter_id
    if rules.id_pattern is not None:
        if not rules.id_pattern.fullmatch(meter_id):
            return _fail(reading, ("malformed_meter_id", f"meter id {meter_id!r} is not {rules.id_pattern.pattern}"))
    else:
        refused = check_meter_id(meter_id)
        if refused is not None:
            return _fail(reading, refused)
    if not _MANUFACTURER.fullmatch(reading.manufacturer):
        return _fail(reading, ("bad_manufacturer", f"manufacturer {reading.manufacturer!r} is not three letters"))
    for text in (reading.driver, reading.status, reading.device_type, *reading.alarms):
        if not text.isprintable() or len(text) > 200:
            return _fail(reading, ("control_characters", f"{text[:40]!r} is not a short printable text"))
    refused = check_index(reading.total_m3, rules.register_digits)
    if refused is not None:
        return _fail(reading, refused)
    for name, value in reading.fields.items():
        problem = _field_problem(name, value)
        if problem is not None:
            return _fail(reading, problem)
    moved: dict[str, Any] = {}
    refused = check_index(reading.target_m3, rules.register_digits)
    if refused is not None:
        moved["target_m3"] = (None, f"{reading.target_m3} {refused.code}")
    flow = reading.flow_m3h
    if flow is not None and not (math.isfinite(flow) and abs(flow) < 1e9):
        moved["flow_m3h"] = (None, f"{flow} value_out_of_range")
    if reading.meter_time is not None or reading.target_date is not None:
        now = now or datetime.now(UTC)
        if reading.meter_time is not None:
            refused = check_time(reading.meter_time, now, rules.settings)
            if refused is not None:
                if rules.time_is_reading_time:
                    return _fail(reading, refused)
                moved["meter_time"] = (None, f"{reading.meter_time.isoformat()} {refused.code}")
        if reading.target_date is not None:
            refused = check_time(_day_time(reading.target_date), now, rules.settings)
            if refused is not None:
                moved["target_date"] = (None, f"{reading.target_date.isoformat()} {refused.code}")
    if not moved:
        return reading
    fields = dict(reading.fields)
    fields.update({f"refused_{name}": note for name, (_, note) in moved.items()})
    return replace(reading, fields=fields, **{name: value for name, (value, _) in moved.items()})


__all__ = ["WMBUS_HEX_ID", "WMBUS_ID", "Rules", "vet"]
