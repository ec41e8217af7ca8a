"""Compact frames (CI 79/7B): records without DIF/VIF bytes, identified by a format signature.

The signature is the CRC-16 of the DIF/VIF bytes of the matching full frame. The cache learns every full
frame's format, starts with the formats drivers declare, and persists to a JSON file.

Trust: a CRC-16 collision is easy to craft, so a forged plaintext frame could otherwise replace the format
a keyed meter's compact frames need. Formats taught by frames opened with a meter's key (and the drivers'
known formats) are trusted; formats taught by plaintext frames never displace a trusted one, and a keyed
meter's compact frame is read only with a trusted format.
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
        self._untrusted: set[int] = set()  # signatures whose format only plaintext frames taught
        self._seen: dict[bool, set[bytes]] = {True: set(), False: set()}  # learned already: skips the CRC
        self.dirty = False
        for hex_format in (f for spec in ALL_DRIVERS for f in spec.known_formats):
            fmt = bytes.fromhex(hex_format)
            self._formats[signature_of(fmt)] = fmt
        if path is not None and path.exists():
            try:
                stored = json.loads(path.read_text())
                for sig, hex_format in stored.get("formats", {}).items():
                    self._formats[int(sig, 16)] = bytes.fromhex(hex_format)
                self._untrusted = {int(sig, 16) for sig in stored.get("untrusted", [])} & set(self._formats)
            except (OSError, ValueError, AttributeError):
                pass  # a corrupt cache only costs relearning

    def get(self, signature: int, trusted_only: bool = False) -> bytes | None:
        if trusted_only and signature in self._untrusted:
            return None
        return self._formats.get(signature)

    def learn(self, format_bytes: bytes, trusted: bool = True) -> None:
        seen = self._seen[trusted]
        if not format_bytes or format_bytes in seen:
            return
        if len(seen) > 100_000:
            seen.clear()
        seen.add(format_bytes)
        sig = signature_of(format_bytes)
        current = self._formats.get(sig)
        if trusted:
            if current != format_bytes or sig in self._untrusted:
                self._formats[sig] = format_bytes
                self._untrusted.discard(sig)
                self.dirty = True
        elif current is None or (sig in self._untrusted and current != format_bytes):
            self._formats[sig] = format_bytes  # never over a trusted format
            self._untrusted.add(sig)
            self.dirty = True

    def __len__(self) -> int:
        return len(self._formats)

    def save(self) -> None:
        if self.path is None:
            return
        data = {"formats": {f"{sig:04x}": fmt.hex() for sig, fmt in sorted(self._formats.items())},
                "untrusted": [f"{sig:04x}" for sig in sorted(self._untrusted)]}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".sigcache")
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh)
        os.replace(tmp, self.path)
        self.dirty = False
