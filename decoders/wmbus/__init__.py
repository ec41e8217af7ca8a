"""Wireless M-Bus (EN 13757-3/-4, OMS 4) decoding: pure code, no I/O besides the signature cache file."""

from __future__ import annotations

from decoders.wmbus.decoder import WmbusDecoder
from decoders.wmbus.link import normalise_frame, peek_header

__all__ = ["WmbusDecoder", "normalise_frame", "peek_header"]
