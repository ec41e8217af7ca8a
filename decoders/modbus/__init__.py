"""Modbus register words -> Reading, by profile (decoders/modbus/profiles.py). Pure: no I/O.

The gateway publishes raw words (kind "modbus": meter_id, profile, address, words); the decoder service
calls decode_registers, so a corrected profile can re-decode stored raw reads. Values pass the same
plausibility rules as radio readings (decoders.plausible); a billing register of all ones (a saturated or
unset counter, e.g. 4,294,967.295 m3 from a 32-bit litre counter) is beyond the register, not a reading.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence

from decoders.modbus.profiles import PROFILES, SATURATED, WIDTH, Profile, Register
from decoders.plausible import Rules, vet
from decoders.reading import DecodeError, Reading
from meterflow.plausibility import PlausibilitySettings, check_meter_id

__all__ = ["PROFILES", "decode_registers"]


def _raw(reg: Register, words: Sequence[int]) -> float:
    """The register's number before scaling."""
    if reg.type in ("u16", "i16"):
        raw = words[0]
        return raw - 0x10000 if reg.type == "i16" and raw & 0x8000 else raw
    hi, lo = (words[0], words[1]) if reg.word_order == "big" else (words[1], words[0])
    packed = struct.pack(">HH", hi, lo)
    fmt = {"u32": ">I", "i32": ">i", "f32": ">f"}[reg.type]
    num: float = struct.unpack(fmt, packed)[0]
    return num


def _round(value: float) -> float:
    return round(value, 6)


def decode_registers(
    profile_name: str, address: int, words: Sequence[int], meter_id: str = "",
    settings: PlausibilitySettings | None = None,
) -> Reading | DecodeError:
    """Decode one block of register words starting at `address` with the named profile."""
    known_id = meter_id if check_meter_id(meter_id) is None else None  # what an error may repeat
    profile: Profile | None = PROFILES.get(profile_name)
    if profile is None:
        return DecodeError("bad_modbus", f"unknown Modbus profile {str(profile_name)[:40]!r}", known_id)
    if not all(type(w) is int and 0 <= w <= 0xFFFF for w in words):
        return DecodeError("bad_modbus", "register words must be integers 0..65535", known_id)
    raws: dict[str, float] = {}
    for reg in profile.registers:
        offset = reg.address - address
        width = WIDTH[reg.type]
        if offset >= 0 and offset + width <= len(words):
            raws[reg.name] = _raw(reg, words[offset:offset + width])
    missing = [name for name in profile.total if name not in raws]
    if missing:
        return DecodeError("bad_modbus", f"block at {address} (+{len(words)}) lacks the billing total "
                                         f"registers {', '.join(missing)}", known_id)
    bad = [k for k, v in raws.items() if not math.isfinite(v)]
    if bad:
        return DecodeError("not_finite", f"non-finite value in {', '.join(bad)}", known_id)
    saturated = [name for name in profile.total if raws[name] == SATURATED.get(profile.register(name).type)]
    if saturated:
        return DecodeError("beyond_register", f"billing register {', '.join(saturated)} is all ones (saturated "
                           "or unset)", known_id)
    values = {reg.name: raws[reg.name] * reg.scale if reg.scale != 1.0 else raws[reg.name]
              for reg in profile.registers if reg.name in raws}
    total = _round(sum(values[name] for name in profile.total))
    flow = _round(values[profile.flow]) if profile.flow and profile.flow in values else None
    alarms = tuple(a.alarm for a in profile.alarm_bits if a.register in values and int(values[a.register]) & a.mask)
    skip = set(profile.total) | {profile.flow}
    fields: dict[str, object] = {k: _round(v) for k, v in values.items() if k not in skip}
    fields["profile"] = profile.name
    reading = Reading(
        meter_id=meter_id,
        manufacturer=profile.manufacturer,
        version=0,
        device_type=profile.device_type,
        driver=f"modbus_{profile.name}",
        total_m3=total,
        flow_m3h=flow,
        status="OK" if not alarms else "ALARM",
        alarms=alarms,
        fields=fields,
    )
    return vet(reading, Rules(settings or PlausibilitySettings(), register_digits=profile.register_digits))
