"""Hex lines, one frame per line, as software receivers print them (rtl_wmbus, rtl_433 pipes, a file such as
the frames.txt of `meterflow fleet simulate`); the line formats are those of ingest/frame_lines.py.

Frames still carrying format A block CRCs have them checked and removed. Lines that are not frames are
counted (not_hex, truncated, bad_length, bad_crc) and skipped. A line's own receive time, when it has one,
is kept (a recorded file replays with its times).
"""

from __future__ import annotations

from ingest.dongles import BadInput, Event
from ingest.frame_lines import BadLine, parse_frame_line
from ingest.frames import ReceivedFrame, check_wmbus

MAX_LINE = 1024


def parse_line(line: str, now: float) -> Event | None:
    """One line to a frame or a bad-input reason; None for blank lines and # comments."""
    parsed = parse_frame_line(line)
    if parsed is None:
        return None
    if isinstance(parsed, BadLine):
        return BadInput(parsed.reason, parsed.detail)
    checked = check_wmbus(parsed.data)
    if isinstance(checked, str):
        return BadInput(checked, parsed.data.hex()[:40])
    return ReceivedFrame(checked, parsed.time if parsed.time is not None else now, parsed.rssi)


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
