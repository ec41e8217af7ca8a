"""Frame files: one wM-Bus frame per text line. `meterflow fleet simulate` writes them, `meterflow decode` and
the gateway's `rawhex` source read them, all through this module. A line is one of:

  2E449315785634123303...                             plain hex (optional 0x; spaces between bytes allowed)
  1780272000.125 -71 2E449315785634123303...          <unix_time> <rssi_dBm> <hex>, as fleet simulate writes
  T1;1;1;2019-04-03 19:00:42.000;97;148;88888888;0x2E44...   rtl_wmbus: mode;crc_ok;3of6_ok;time;rssi;...;hex
  ... telegram=|2E4493157856...| ...                  a wmbusmeters log line

Words after the hex are ignored. Blank lines and # comments are not frames."""

from __future__ import annotations

import re
import string
from dataclasses import dataclass

_HEX = frozenset(string.hexdigits)
# a Unix time (9+ digits, so a hex dump's "12 34 ..." is never taken for one), a dBm value, then the frame
_TIMED = re.compile(r"(\d{9,}(?:\.\d*)?)\s+(-?\d{1,3})\s+(\S+)")
_TELEGRAM = re.compile(r"telegram=\|?([0-9A-Fa-f_|]+)\|?")


@dataclass(frozen=True)
class FrameLine:
    data: bytes
    time: float | None = None  # receive time (Unix seconds) when the line carries one
    rssi: int | None = None  # dBm


@dataclass(frozen=True)
class BadLine:
    reason: str  # not_hex, bad_crc
    detail: str


def format_frame_line(data: bytes, time: float, rssi: int) -> str:
    """The line fleet simulate writes: `<unix_time> <rssi> <HEX>` (no line end)."""
    return f"{time:.3f} {rssi} {data.hex().upper()}"


def _is_hex(token: str) -> bool:
    return bool(token) and set(token) <= _HEX


def _hex_frame(text: str) -> bytes | BadLine:
    """The leading hex words of text (bytes may be spaced); the first other word ends the frame."""
    words = text.split() or [""]
    words[0] = words[0].removeprefix("0x").removeprefix("0X")
    taken = []
    for word in words:
        if not _is_hex(word):
            break
        taken.append(word)
    joined = "".join(taken)
    if not joined or len(joined) % 2:
        return BadLine("not_hex", text[:40])
    return bytes.fromhex(joined)


def _rtl_wmbus(text: str) -> FrameLine | BadLine:
    fields = text.split(";")
    if len(fields) >= 2 and fields[1].strip() == "0":
        return BadLine("bad_crc", "receiver reports a CRC error")
    rssi = None
    if len(fields) >= 5:
        try:
            value = int(fields[4])
            rssi = value if value < 0 else None  # only dBm values are passed on
        except ValueError:
            pass
    data = _hex_frame(fields[-1])
    return data if isinstance(data, BadLine) else FrameLine(data, None, rssi)


def parse_frame_line(line: str) -> FrameLine | BadLine | None:
    """One line to a frame (with its time and RSSI when the line has them), a bad line, or None (blank/comment)."""
    text = line.strip()
    if not text or text.startswith("#"):
        return None
    telegram = _TELEGRAM.search(text)
    if telegram:
        text = telegram.group(1).replace("_", "").replace("|", "")
    elif ";" in text:
        return _rtl_wmbus(text)
    timed = _TIMED.match(text)
    if timed and _is_hex(timed.group(3)):
        data = _hex_frame(timed.group(3))
        return data if isinstance(data, BadLine) else FrameLine(data, float(timed.group(1)), int(timed.group(2)))
    data = _hex_frame(text)
    return data if isinstance(data, BadLine) else FrameLine(data)
