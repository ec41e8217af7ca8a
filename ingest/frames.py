"""What a source hands to the gateway: a received radio frame or a Modbus register read.

Also the link-layer checks every wM-Bus source shares: the L-field must match the frame length, and a
frame that still carries its format A block CRCs has them checked and removed, because the envelope
carries frames "from the L-field, link-layer CRCs removed" (meterflow/envelope.py).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from decoders.reading import DecodeError
from decoders.wmbus import normalise_frame

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


def check_wmbus(data: bytes) -> bytes | str:
    """The frame ready for the envelope, or a reason code (truncated, bad_length, bad_crc) to count.

    The link-layer rules are the decoder's (`decoders.wmbus.normalise_frame`): one implementation of
    L-field, format A/B and CRC handling serves the gateway and the decoder service alike."""
    if len(data) < MIN_WMBUS_LEN:
        return "truncated"
    normalised = normalise_frame(data)
    if isinstance(normalised, DecodeError):
        return normalised.code
    return normalised


class FrameSink:
    """Where workers deliver; the gateway's implementation queues frames and counts bad input."""

    def frame(self, item: ReceivedFrame | ModbusRead) -> None:
        raise NotImplementedError

    def bad(self, source: str, reason: str, detail: str = "") -> None:
        raise NotImplementedError
