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
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from itertools import product
from string import ascii_uppercase
from typing import Any

from decoders.reading import DecodeError, Reading
from meterflow.plausibility import (
    MAX_INDEX_M3,
    PlausibilitySettings,
    Refusal,
    check_index,
    check_meter_id,
    check_time,
)

INT64 = 1 << 63
_WMBUS_HEX_ID = re.compile(r"[0-9a-f]{8}")
# empty: a wired frame addressed by primary address only (a set: cheaper than a regex on the hot path)
_MANUFACTURERS = frozenset("".join(letters) for letters in product(ascii_uppercase, repeat=3)) | {""}


def outside_id(meter_id: str) -> bool:
    """1-64 printable characters without spaces: an id from outside (Modbus, wmbusmeters)."""
    return check_meter_id(meter_id) is None


def wmbus_id(meter_id: str) -> bool:
    """8 BCD digits: as printed on the meter (the decoder formats ids as 8 hex digits)."""
    return len(meter_id) == 8 and meter_id.isascii() and meter_id.isdigit()


def wmbus_hex_id(meter_id: str) -> bool:
    """8 hex digits: for makes that number their meters in binary (their drivers say `hex_ids`)."""
    return _WMBUS_HEX_ID.fullmatch(meter_id) is not None


WMBUS_ID = wmbus_id
WMBUS_HEX_ID = wmbus_hex_id


@dataclass(frozen=True, slots=True)
class Rules:
    """What a decoder path promises about its readings."""

    settings: PlausibilitySettings = field(default_factory=PlausibilitySettings)
    id_ok: Callable[[str], bool] = outside_id
    register_digits: int | None = None  # whole m3 digits of the billing register, when known
    time_is_reading_time: bool = False  # meter_time keys the reading: refuse the reading, not the column
    labels_from_input: bool = True  # driver, status, media, alarms came from outside (False: code tables)

    @property
    def capacity(self) -> float:
        return min(10.0**self.register_digits, MAX_INDEX_M3) if self.register_digits else MAX_INDEX_M3


def _fail(reading: Reading, refusal: Refusal | tuple[str, str]) -> DecodeError:
    code, reason = (refusal.code, refusal.reason) if isinstance(refusal, Refusal) else refusal
    meter_id = reading.meter_id if check_meter_id(reading.meter_id) is None else None  # never repeat a bad id
    manufacturer = reading.manufacturer if reading.manufacturer in _MANUFACTURERS else None
    return DecodeError(code, reason, meter_id=meter_id, manufacturer=manufacturer)


def _fields_problem(fields: dict[str, Any]) -> tuple[str, str] | None:
    """The first field that is not finite, not 64-bit or not printable (one loop: this is the hot path)."""
    for name, value in fields.items():
        if type(name) is not str or not name.isprintable():
            return "control_characters", f"field name {name!r} is not printable text"
        kind = type(value)
        if kind is float:
            if not math.isfinite(value):
                return "value_out_of_range", f"{name} = {value} is not finite"
        elif kind is int:
            if not -INT64 <= value < INT64:
                return "value_out_of_range", f"{name} does not fit 64 bits ({value.bit_length()} bits)"
        elif kind is str and not value.isprintable():
            return "control_characters", f"{name} holds control characters"
    return None


def _index_refusal(value: float | None, rules: Rules) -> Refusal | None:
    if value is None or (type(value) is float and 0.0 <= value < rules.capacity):
        return None  # the common case without a call
    return check_index(value, rules.register_digits)


def _day_time(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def vet(reading: Reading, rules: Rules, now: datetime | None = None) -> Reading | DecodeError:
    """The reading as it may be stored (secondary values perhaps moved to fields), or why it may not."""
    meter_id = reading.meter_id
    if not rules.id_ok(meter_id):
        wanted = (rules.id_ok.__doc__ or "a valid id").split(":")[0]
        return _fail(reading, ("malformed_meter_id", f"meter id {meter_id[:40]!r} is not {wanted}"))
    if reading.manufacturer not in _MANUFACTURERS:
        return _fail(reading, ("bad_manufacturer", f"manufacturer {reading.manufacturer[:40]!r} is not three "
                               "letters"))
    if rules.labels_from_input:
        for text in (reading.driver, reading.status, reading.device_type, *reading.alarms):
            if not text.isprintable() or len(text) > 200:
                return _fail(reading, ("control_characters", f"{text[:40]!r} is not a short printable text"))
    refused = _index_refusal(reading.total_m3, rules)
    if refused is not None:
        return _fail(reading, refused)
    problem = _fields_problem(reading.fields)
    if problem is not None:
        return _fail(reading, problem)
    moved: dict[str, Any] = {}
    refused = _index_refusal(reading.target_m3, rules)
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
