"""Readings from the JSON that wmbusmeters publishes (one telegram per MQTT message).

Topic `<prefix>/<gateway>/wmbusmeters`. wmbusmeters has already decrypted and decoded the telegram; this
maps its field names onto a Reading (driver = wmbusmeters' `meter`, source = 'wmbusmeters' in storage).
Example message:
  {"_":"telegram","media":"water","meter":"multical21","id":"76348799","total_m3":6.408,"target_m3":6.408,
   "max_flow_m3h":0,"current_status":"DRY","timestamp":"2018-02-08T09:07:22Z","rssi_dbm":-41}
Time: the meter's clock (`meter_datetime`, local time of `tz`) when present and inside the plausibility
window, else `timestamp` (the receive time at the wmbusmeters host). The time keys the reading, so a
message whose time is outside the window is refused (decoders.plausible), as are non-finite, negative or
absurd totals, ids that are not 1-64 printable characters and texts with control characters.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, date, datetime, tzinfo
from typing import Any

from decoders.plausible import Rules, vet
from decoders.reading import DecodeError, Reading
from meterflow.plausibility import PlausibilitySettings, check_meter_id, check_time

SOURCE = "wmbusmeters"
MEDIA: dict[str, str] = {
    "water": "water",
    "cold water": "cold_water",
    "warm water": "warm_water",
    "hot water": "hot_water",
    "heat": "heat",
    "waste water": "waste_water",
}
# status words wmbusmeters prints -> the alarm words of Reading.alarms
ALARM_WORDS: dict[str, str] = {
    "LEAK": "leak",
    "LEAKING": "leak",
    "BURST": "burst",
    "BURSTING": "burst",
    "DRY": "dry",
    "REVERSED": "backflow",
    "BACKFLOW": "backflow",
    "TAMPER": "tamper",
    "MAGNET": "tamper",
    "LOW_BATTERY": "low_battery",
    "BATTERY_LOW": "low_battery",
    "BATTERY": "low_battery",
}
_KNOWN = {"_", "media", "meter", "name", "id", "total_m3", "target_m3", "target_date", "flow_m3h",
          "volume_flow_m3h", "current_status", "status", "timestamp", "meter_datetime", "manufacturer",
          "version", "device", "rssi_dbm"}


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def parse_time(text: Any, tz: tzinfo = UTC) -> datetime | None:
    """ISO 8601 (`2018-02-08T09:07:22Z`) or wmbusmeters' `2024-02-08 09:07[:SS]`; naive times are in `tz`."""
    if not isinstance(text, str) or not text:
        return None
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=tz)
    return value.astimezone(UTC)


def _date(text: Any) -> date | None:
    if not isinstance(text, str):
        return None
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        return None


def status_alarms(status: Any) -> tuple[str, tuple[str, ...]]:
    """('OK', ()) or the status text and the alarm words it contains."""
    if not isinstance(status, str) or not status.strip() or status.strip().upper() in ("OK", "NULL"):
        return "OK", ()
    words: list[str] = []
    for token in status.replace(",", " ").split():
        word = ALARM_WORDS.get(token.upper())
        if word and word not in words:
            words.append(word)
    return status.strip(), tuple(words)


def to_reading(message: bytes | str | Mapping[str, Any], tz: tzinfo = UTC,
               settings: PlausibilitySettings | None = None, now: datetime | None = None) -> Reading | DecodeError:
    """Map one wmbusmeters JSON telegram to a Reading; a message that is not one gives bad_envelope, an
    implausible one the plausibility code (not_finite, negative_index, time_out_of_window, ...)."""
    settings = settings or PlausibilitySettings()
    if isinstance(message, Mapping):
        body: Any = message
    else:
        try:
            body = json.loads(message)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            return DecodeError("bad_envelope", f"wmbusmeters message is not JSON: {type(exc).__name__}")
    if not isinstance(body, Mapping):
        return DecodeError("bad_envelope", "wmbusmeters message is not a JSON object")
    meter_id = body.get("id")
    if not isinstance(meter_id, str) or not meter_id.strip():
        return DecodeError("bad_envelope", "wmbusmeters message has no 'id'")
    meter_id = meter_id.strip()
    known_id = meter_id if check_meter_id(meter_id) is None else None  # what an error may repeat
    fields = {k: v for k, v in body.items() if k not in _KNOWN and isinstance(v, (str, int, float, bool))}
    received = parse_time(body.get("timestamp"), tz)
    meter_time = parse_time(body.get("meter_datetime"), tz)
    if meter_time is not None and received is not None:
        refused = check_time(meter_time, now, settings)
        if refused is not None:  # a meter clock off while the host's is fine: the host's time keys it
            fields["refused_meter_time"] = f"{meter_time.isoformat()} {refused.code}"
            meter_time = received
    meter_time = meter_time or received
    if meter_time is None:
        return DecodeError("bad_envelope", "wmbusmeters message has no 'timestamp'",
                           meter_id=known_id)
    total = body.get("total_m3")
    if total is not None and _float(total) is None:
        return DecodeError("not_a_number", f"total_m3 {str(total)[:40]!r} is not a number",
                           meter_id=known_id)
    status, alarms = status_alarms(body.get("current_status", body.get("status")))
    media = str(body.get("media") or "water").lower()
    flow = _float(body.get("flow_m3h"))
    if flow is None:
        flow = _float(body.get("volume_flow_m3h"))
    version = body.get("version")
    reading = Reading(
        meter_id=meter_id,
        manufacturer=str(body.get("manufacturer") or ""),
        version=version if isinstance(version, int) and not isinstance(version, bool) else 0,
        device_type=MEDIA.get(media, media.replace(" ", "_")),
        driver=str(body.get("meter") or "unknown"),
        total_m3=_float(total),
        target_m3=_float(body.get("target_m3")),
        target_date=_date(body.get("target_date")),
        flow_m3h=flow,
        meter_time=meter_time,
        status=status,
        alarms=alarms,
        fields=fields,
    )
    return vet(reading, Rules(settings, time_is_reading_time=True), now)
