"""Modbus register words -> Reading, by profile (decoders/modbus/profiles.py). Pure: no I/O.

The gateway publishes raw words (kind "modbus": meter_id, profile, address, words); the decoder service
calls decode_registers, so a corrected profile can re-decode stored raw reads.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence

from decoders.modbus.profiles import PROFILES, WIDTH, Profile, Register
from decoders.reading import DecodeError, Reading

__all__ = ["PROFILES", "decode_registers"]


def _value(reg: Register, words: Sequence[int]) -> float:
    if reg.type in ("u16", "i16"):
        raw = words[0]
        num: float = raw - 0x10000 if reg.type == "i16" and raw & 0x8000 else raw
    else:
        hi, lo = (words[0], words[1]) if reg.word_order == "big" else (words[1], words[0])
        packed = struct.pack(">HH", hi, lo)
        fmt = {"u32": ">I", "i32": ">i", "f32": ">f"}[reg.type]
        num = struct.unpack(fmt, packed)[0]
    return num * reg.scale if reg.scale != 1.0 else num


def _round(value: float) -> float:
    return round(value, 6)


def decode_registers(
    profile_name: str, address: int, words: Sequence[int], meter_id: str = ""
) -> Reading | DecodeError:
    """Decode one block of register words starting at `address` with the named profile."""
    profile: Profile | None = PROFILES.get(profile_name)
    if profile is None:
        return DecodeError("bad_modbus", f"unknown Modbus profile {profile_name!r}", meter_id or None)
    if not all(isinstance(w, int) and 0 <= w <= 0xFFFF for w in words):
        return DecodeError("bad_modbus", "register words must be integers 0..65535", meter_id or None)
    values: dict[str, float] = {}
    for reg in profile.registers:
        offset = reg.address - address
        width = WIDTH[reg.type]
        if offset >= 0 and offset + width <= len(words):
            values[reg.name] = _value(reg, words[offset:offset + width])
    missing = [name for name in profile.total if name not in values]
    if missing:
        return DecodeError("bad_modbus", f"block at {address} (+{len(words)}) lacks the billing total "
                                         f"registers {', '.join(missing)}", meter_id or None)
    if any(not math.isfinite(v) for v in values.values()):
        bad = [k for k, v in values.items() if not math.isfinite(v)]
        return DecodeError("bad_modbus", f"non-finite value in {', '.join(bad)}", meter_id or None)
    total = _round(sum(values[name] for name in profile.total))
    if total < 0:
        return DecodeError("bad_modbus", f"negative billing total {total}", meter_id or None)
    flow = _round(values[profile.flow]) if profile.flow and profile.flow in values else None
    alarms = tuple(a.alarm for a in profile.alarm_bits if a.register in values and int(values[a.register]) & a.mask)
    skip = set(profile.total) | {profile.flow}
    fields: dict[str, object] = {k: _round(v) for k, v in values.items() if k not in skip}
    fields["profile"] = profile.name
    return Reading(
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
