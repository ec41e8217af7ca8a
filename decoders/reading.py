"""What every decoder returns: a normalised Reading, or a DecodeError value (never an exception)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

# The documented set of error codes (README "Decode error codes"). Add here, document there.
ERROR_CODES: frozenset[str] = frozenset(
    {
        "bad_crc",  # a link-layer block CRC does not match
        "truncated",  # the frame ends before its length field / a record says
        "bad_length",  # L-field disagrees with the frame length
        "unknown_ci",  # a CI field this decoder does not know
        "no_key",  # encrypted and no key is known for the meter
        "wrong_key",  # decryption check failed (no 2F2F, bad MAC, bad CRC after decryption)
        "bad_mac",  # AFL MAC verification failed
        "unsupported_security",  # a security mode this decoder does not implement (e.g. DES)
        "unknown_format_signature",  # compact frame whose full frame was never seen
        "bad_record",  # a DIF/VIF record that cannot be parsed
        "not_hex",  # the input line is not a hex frame
        "fragment_pending",  # an AFL fragment awaiting the rest of the message
        "bad_modbus",  # Modbus registers that do not fit their profile
        "bad_envelope",  # an MQTT message that does not follow the envelope contract
        "unencrypted_for_keyed_meter",  # a telegram not encrypted with the key the meter has
        "missing_volume",  # the driver's layout always carries the total volume and this frame has none
        "malformed_meter_id",  # not 8 BCD digits (wM-Bus) / not 1-64 printable characters (other paths)
        "bad_manufacturer",  # a manufacturer code that is not three letters
        "control_characters",  # a decoded text, field name, status or driver with control characters
        "value_out_of_range",  # a decoded number that is not finite or does not fit 64 bits
        # index and time refusals of the kernel's plausibility rules (meterflow.plausibility)
        "not_a_number",
        "not_finite",
        "negative_index",
        "beyond_register",
        "naive_time",
        "time_out_of_window",
        "time_in_future",
    }
)


@dataclass(frozen=True, slots=True)
class Reading:
    """One decoded meter telegram, normalised. Units are in the field names (reference style)."""

    meter_id: str  # 8 digits for wM-Bus, as printed on the meter
    manufacturer: str  # 3 letters, e.g. "KAM"
    version: int
    device_type: str  # medium name, e.g. "water", "warm_water", "heat"
    driver: str  # which driver produced the fields, e.g. "multical21", "generic"
    total_m3: float | None = None  # the billing register
    target_m3: float | None = None  # value at the last billing date
    target_date: date | None = None
    flow_m3h: float | None = None
    meter_time: datetime | None = None  # meter clock, timezone-aware (UTC) when known
    status: str = "OK"
    alarms: tuple[str, ...] = ()  # words: leak, burst, backflow, dry, tamper, low_battery, ...
    fields: dict[str, Any] = field(default_factory=dict)  # every other record under a readable name

    def to_json(self) -> dict[str, Any]:
        """The JSON object `meterflow decode` prints for this reading."""
        out: dict[str, Any] = {
            "id": self.meter_id,
            "manufacturer": self.manufacturer,
            "version": self.version,
            "device_type": self.device_type,
            "driver": self.driver,
        }
        for name in ("total_m3", "target_m3", "flow_m3h"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.target_date is not None:
            out["target_date"] = self.target_date.isoformat()
        if self.meter_time is not None:
            out["meter_time"] = self.meter_time.isoformat()
        out["status"] = self.status
        out["alarms"] = list(self.alarms)
        for key, value in self.fields.items():
            out.setdefault(key, value.isoformat() if isinstance(value, (date, datetime)) else value)
        return out


@dataclass(frozen=True, slots=True)
class DecodeError:
    """A frame that did not decode: an ordinary outcome with a reason code, stored and counted."""

    code: str
    detail: str
    meter_id: str | None = None
    manufacturer: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": self.code, "detail": self.detail}
        if self.meter_id is not None:
            out["id"] = self.meter_id
        return out


DecodeResult = Reading | DecodeError
