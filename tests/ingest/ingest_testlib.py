"""Helpers shared by the gateway tests."""

from __future__ import annotations

from ingest.frames import crc16_en13757


def with_block_crcs(frame: bytes) -> bytes:
    """Format A on the air: a CRC after the first 10 bytes and after every 16 bytes then."""
    out = bytearray(frame[:10]) + crc16_en13757(frame[:10]).to_bytes(2, "big")
    for i in range(10, len(frame), 16):
        block = frame[i:i + 16]
        out += block + crc16_en13757(block).to_bytes(2, "big")
    return bytes(out)
