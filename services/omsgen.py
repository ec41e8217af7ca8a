"""Test support: mode-5 encrypted OMS water-meter telegrams with known keys (for the ingest bench and tests).

Frames come from the fleet engineer's encoder (fixtures/oms.py: volume, billing target and date, meter
clock, error flags) when it is installed, else from the small encoder below. Frames are as the
envelope carries them: from the L-field, link-layer CRCs removed. Content: 2F2F, total volume in litres
(DIF 04 VIF 13), meter date-time (DIF 04 VIF 6D, type F), padded with 2F to whole AES blocks.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

M_FIELD_KAM = 0x2C2D  # "KAM"
WATER = 0x07
CI_SHORT = 0x7A


def meter_id(index: int) -> str:
    """8 BCD digits, as printed on the meter."""
    return f"{10_000_000 + index:08d}"


def meter_key(meter: str) -> bytes:
    """A deterministic 16-byte AES key per meter (test data only)."""
    return hashlib.blake2b(b"meterflow-test-key:" + meter.encode(), digest_size=16).digest()


def _type_f(t: datetime) -> bytes:
    y = t.year - 2000
    value = t.minute | (t.hour << 8) | (t.day << 16) | ((y & 0x07) << 21) | (t.month << 24) | ((y >> 3) << 28)
    return struct.pack("<I", value)


def encode_telegram(meter: str, key: bytes, access: int, total_litres: int, meter_time: datetime | None,
                    version: int = 0x1B) -> bytes:
    """One mode-5 telegram (short transport header, CI 7A)."""
    id_le = bytes.fromhex(meter)[::-1]
    m = M_FIELD_KAM.to_bytes(2, "little")
    address = id_le + bytes([version, WATER])
    plain = b"\x2f\x2f" + b"\x04\x13" + struct.pack("<I", total_litres & 0xFFFFFFFF)
    if meter_time is not None:
        plain += b"\x04\x6d" + _type_f(meter_time)
    plain += b"\x2f" * (-len(plain) % 16)
    n_blocks = len(plain) // 16
    iv = m + address + bytes([access & 0xFF]) * 8
    enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    payload = enc.update(plain) + enc.finalize()
    cfg = ((5 << 8) | (n_blocks << 4)).to_bytes(2, "little")
    body = bytes([0x44]) + m + address + bytes([CI_SHORT, access & 0xFF, 0x00]) + cfg + payload
    return bytes([len(body)]) + body


def fixture_encoder() -> Callable[[str, bytes, int, int, datetime], bytes] | None:
    """encode(meter, key, access, litres, meter_time) on top of fixtures.oms, or None when not installed."""
    try:
        from fixtures.oms import OmsMeter, WaterValues
        from fixtures.oms import encode_telegram as oms_encode
    except ImportError:
        return None

    def encode(meter: str, key: bytes, access: int, litres: int, meter_time: datetime) -> bytes:
        model = ("DME", 0x30) if int(meter) % 2 else ("KAM", 0x30)
        target = meter_time.replace(day=1, hour=0, minute=0) - timedelta(days=1)
        values = WaterValues(total_litres=litres, target_litres=max(0, litres - 5000), target_date=target.date(),
                             meter_time=meter_time)
        return oms_encode(OmsMeter(model[0], meter, model[1], key=key), values, access & 0xFF)

    return encode


@dataclass(frozen=True, slots=True)
class Telegram:
    meter_id: str
    time: datetime  # meter clock (minute resolution): the readings key
    total_m3: float
    frame: bytes


def unambiguous(frame: bytes) -> bool:
    """True when normalise_frame leaves the (CRC-free) frame as it is. About 1 in 20,000 random frames
    end in two bytes that equal the CRC of the rest, and the decoder then reads them as a format B frame
    (reported to the decoder's author); the bench re-draws those so it measures the pipeline, not that."""
    from decoders.wmbus import normalise_frame

    return normalise_frame(frame) == frame


def fleet_telegrams(n_meters: int, n_frames: int, start: datetime | None = None,
                    interval: timedelta = timedelta(minutes=15), redraw_ambiguous: bool = True) -> Iterator[Telegram]:
    """n_frames telegrams round-robin over n_meters; each (meter, time) distinct."""
    start = (start or datetime(2026, 11, 1, tzinfo=UTC)).replace(second=0, microsecond=0)
    encode = fixture_encoder() or encode_telegram
    keys = [meter_key(meter_id(i)) for i in range(n_meters)]
    for k in range(n_frames):
        i = k % n_meters
        round_ = k // n_meters
        t = start + interval * round_
        litres = 100_000 + i * 7 + round_ * 13
        m = meter_id(i)
        frame = encode(m, keys[i], round_, litres, t)
        j = 1
        while redraw_ambiguous and not unambiguous(frame):
            frame = encode(m, keys[i], round_ + 97 * j, litres, t)
            j += 1
        yield Telegram(m, t, litres / 1000.0, frame)
