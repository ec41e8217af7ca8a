"""Compact frames (CI 79/7B): records without DIF/VIF bytes, identified by a format signature.

The signature is the CRC-16 of the DIF/VIF bytes of the matching full frame. The cache learns every full
frame's format, starts with the formats drivers declare, and persists to a JSON file.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from decoders.wmbus.crc import crc16_en13757
from decoders.wmbus.drivers import ALL_DRIVERS


def signature_of(format_bytes: bytes) -> int:
    return crc16_en13757(format_bytes)


class SignatureCache:
    """signature -> format bytes; load on init, save() writes atomically."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._formats: dict[int, bytes] = {}
        self._seen: set[bytes] = set()  # formats already learned: skips the CRC on the hot path
        self.dirty = False
        for hex_format in (f for spec in ALL_DRIVERS for f in spec.known_formats):
            fmt = bytes.fromhex(hex_format)
            self._formats[signature_of(fmt)] = fmt
        if path is not None and path.exists():
            try:
                stored = json.loads(path.read_text())
                for sig, hex_format in stored.get("formats", {}).items():
                    self._formats[int(sig, 16)] = bytes.fromhex(hex_format)
            except (OSError, ValueError, AttributeError):
                pass  # a corrupt cache only costs relearning

    def get(self, signature: int) -> bytes | None:
        return self._formats.get(signature)

    def learn(self, format_bytes: bytes) -> None:
        if not format_bytes or format_bytes in self._seen:
            return
        if len(self._seen) > 100_000:
            self._seen.clear()
        self._seen.add(format_bytes)
        sig = signature_of(format_bytes)
        if self._formats.get(sig) != format_bytes:
            self._formats[sig] = format_bytes
            self.dirty = True

    def __len__(self) -> int:
        return len(self._formats)

    def save(self) -> None:
        if self.path is None:
            return
        data = {"formats": {f"{sig:04x}": fmt.hex() for sig, fmt in sorted(self._formats.items())}}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".sigcache")
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh)
        os.replace(tmp, self.path)
        self.dirty = False
