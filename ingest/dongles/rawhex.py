"""Hex lines, one frame per line, as software receivers print them (rtl_wmbus, rtl_433 pipes, a file):

  2E449315785634123303...                              plain hex (optional 0x, spaces ignored)
  T1;1;1;2019-04-03 19:00:42.000;97;148;88888888;0x2E44...   rtl_wmbus: mode;crc_ok;3of6_ok;time;...;hex

Frames still carrying format A block CRCs have them checked and removed. Lines that are not frames are
counted (not_hex, truncated, bad_length, bad_crc) and skipped.
"""

from __future__ import annotations

import string

from ingest.dongles import BadInput, Event
from ingest.frames import ReceivedFrame, check_wmbus

_HEX = set(string.hexdigits)
MAX_LINE = 1024


def parse_line(line: str, now: float) -> Event | None:
    """One line to a frame or a bad-input reason; None for blank lines and # comments."""
    text = line.strip()
    if not text or text.startswith("#"):
        return None
    rssi: int | None = None
    if ";" in text:
        fields = text.split(";")
        text = fields[-1].strip()
        if len(fields) >= 2 and fields[1].strip() == "0":
            return BadInput("bad_crc", "receiver reports a CRC error")
        if len(fields) >= 5:
            try:
                value = int(fields[4])
                rssi = value if value < 0 else None  # only dBm values are passed on
            except ValueError:
                pass
    text = text.removeprefix("0x").removeprefix("0X").replace(" ", "")
    if not text or len(text) % 2 or not set(text) <= _HEX:
        return BadInput("not_hex", text[:40])
    checked = check_wmbus(bytes.fromhex(text))
    if isinstance(checked, str):
        return BadInput(checked, text[:40])
    return ReceivedFrame(checked, now, rssi)


class RawHexDecoder:
    def __init__(self, partial_timeout_s: float = 2.0) -> None:
        self.partial_timeout_s = partial_timeout_s
        self._buf = bytearray()
        self._since: float | None = None

    def init_commands(self) -> list[bytes]:
        return []

    def feed(self, data: bytes, now: float) -> list[Event]:
        self._buf += data
        events: list[Event] = []
        while True:
            end = self._buf.find(b"\n")
            if end < 0:
                break
            raw = bytes(self._buf[:end])
            del self._buf[:end + 1]
            event = parse_line(raw.decode("ascii", "replace"), now)
            if event is not None:
                events.append(event)
        if len(self._buf) > MAX_LINE:
            events.append(BadInput("noise", f"{len(self._buf)} bytes without a line end"))
            self._buf.clear()
        self._since = (self._since or now) if self._buf else None
        return events

    def expire(self, now: float) -> list[Event]:
        if not self._buf or self._since is None or now - self._since < self.partial_timeout_s:
            return []
        self._buf.clear()
        self._since = None
        return [BadInput("truncated", "line stopped arriving")]
