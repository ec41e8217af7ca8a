"""Byte-stream decoders for wireless M-Bus receivers: pure (bytes in, frames and bad-input reasons out),
so they are tested without hardware; ingest/sources.py owns the serial ports."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ingest.frames import ReceivedFrame


@dataclass(frozen=True, slots=True)
class BadInput:
    """Something on the line that is not a usable frame; counted per source and reason, then skipped."""

    reason: str  # bad_crc, truncated, bad_length, not_hex, noise, ...
    detail: str = ""


Event = ReceivedFrame | BadInput


def skip_to_start(buf: bytearray, sof: int) -> BadInput | None:
    """Resynchronise a framed stream: drop bytes before the next start-of-frame byte and say so."""
    if buf[0] == sof:
        return None
    nxt = buf.find(sof)
    skipped = len(buf) if nxt < 0 else nxt
    del buf[:skipped]
    return BadInput("noise", f"{skipped} bytes before a message start")


class StreamDecoder(Protocol):
    def init_commands(self) -> list[bytes]:
        """Bytes to write once the port is open (link mode, RSSI on); empty for passive feeds."""
        ...

    def feed(self, data: bytes, now: float) -> list[Event]:
        """Consume bytes received at `now` (Unix s); return the frames and bad input they completed."""
        ...

    def expire(self, now: float) -> list[Event]:
        """Give up on a partial message that stopped arriving (a dongle reset mid-frame)."""
        ...
