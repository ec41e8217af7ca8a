"""CRC-16 of EN 13757-4 (polynomial 0x3D65), used by link blocks, ELL payload CRCs and format signatures.

Format A frames need one CRC per block (stripped frames none, unless they fail to decode and format B
is tried), ELL payloads and format signatures one each: a 64 Ki-entry table built on first use consumes
two bytes per step (the register is 16 bits wide, so a 16-bit chunk xored into it fully determines the
next register value).
"""

from __future__ import annotations

import struct


def _make_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x3D65) if crc & 0x8000 else (crc << 1)
        table.append(crc & 0xFFFF)
    return table


_TABLE = _make_table()
_TABLE16: list[int] = []


def _make_table16() -> list[int]:
    t8 = _TABLE
    out = [0] * 65536
    for word in range(65536):
        crc = t8[word >> 8]  # first byte into a zero register
        out[word] = ((crc << 8) & 0xFFFF) ^ t8[(crc >> 8) ^ (word & 0xFF)]
    return out


def crc16_en13757(data: bytes) -> int:
    """CRC over `data`: initial value 0, final complement (as the standard specifies)."""
    if not _TABLE16:
        _TABLE16.extend(_make_table16())
    t16 = _TABLE16
    crc = 0
    n = len(data) & ~1
    for (word,) in struct.iter_unpack(">H", data[:n]):
        crc = t16[crc ^ word]
    if n != len(data):
        crc = ((crc << 8) & 0xFFFF) ^ _TABLE[(crc >> 8) ^ data[n]]
    return crc ^ 0xFFFF


def crc16_bytewise(data: bytes) -> int:
    """Reference byte-at-a-time implementation (tests compare the fast one against it)."""
    crc = 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ _TABLE[(crc >> 8) ^ byte]
    return crc ^ 0xFFFF
