"""What a source hands to the gateway: a received radio frame or a Modbus register read.

Also the link-layer checks every wM-Bus source shares: the L-field must match the frame length, and a
frame that still carries its format A block CRCs has them checked and removed, because the envelope
carries frames "from the L-field, link-layer CRCs removed" (meterflow/envelope.py).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

MIN_WMBUS_LEN = 11  # L C M M A A A A V T CI


@dataclass(frozen=True, slots=True)
class ReceivedFrame:
    """One wM-Bus frame from the L-field (CRCs removed), its receive time (Unix s) and RSSI (dBm)."""

    data: bytes
    received_at: float
    rssi: int | None = None

    def __post_init__(self) -> None:
        if not math.isfinite(self.received_at):
            raise ValueError(f"received_at must be a finite Unix time, not {self.received_at!r}")

    def wire(self) -> str:
        """The frame as one JSON object of the envelope's `frames` list (formatted by hand: this is the
        gateway's hot path, and float repr is exactly what json.dumps writes for a finite float)."""
        t = float(self.received_at)
        if self.rssi is None:
            return f'{{"t":{t!r},"hex":"{self.data.hex().upper()}"}}'
        return f'{{"t":{t!r},"hex":"{self.data.hex().upper()}","rssi":{int(self.rssi)}}}'


@dataclass(frozen=True, slots=True)
class ModbusRead:
    """Raw register words read from one meter; the decoder service applies the profile."""

    meter_id: str
    profile: str
    address: int  # first register address of `words` (0-based protocol address)
    words: tuple[int, ...]
    received_at: float

    def wire(self) -> str:
        body = {"t": self.received_at, "meter_id": self.meter_id, "profile": self.profile,
                "address": self.address, "words": list(self.words)}
        return json.dumps(body, separators=(",", ":"))


def crc16_en13757(data: bytes) -> int:
    """CRC of a wM-Bus link-layer block: polynomial 0x3D65, initial 0, result inverted."""
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x3D65) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc ^ 0xFFFF


def _format_a_len_with_crc(l_field: int) -> int:
    """Length of a format A frame of this L-field when every block still carries its CRC."""
    rest = max(l_field - 9, 0)
    blocks = 1 + (rest + 15) // 16
    return l_field + 1 + 2 * blocks


def _strip_format_a_crc(data: bytes) -> bytes | None:
    """The frame without its block CRCs, or None when a CRC does not match."""
    out = bytearray()
    first, pos = data[:10], 10
    if crc16_en13757(first) != int.from_bytes(data[pos:pos + 2], "big"):
        return None
    out += first
    pos += 2
    while pos < len(data):
        block = data[pos:min(pos + 16, len(data) - 2)]
        crc_at = pos + len(block)
        if crc16_en13757(block) != int.from_bytes(data[crc_at:crc_at + 2], "big"):
            return None
        out += block
        pos = crc_at + 2
    return bytes(out)


def check_wmbus(data: bytes) -> bytes | str:
    """The frame ready for the envelope, or a reason code (truncated, bad_length, bad_crc) to count."""
    if len(data) < MIN_WMBUS_LEN:
        return "truncated"
    expected = data[0] + 1
    if len(data) == expected:
        return data
    if len(data) < expected:
        return "truncated"
    if len(data) == _format_a_len_with_crc(data[0]):
        stripped = _strip_format_a_crc(data)
        return stripped if stripped is not None else "bad_crc"
    return "bad_length"
