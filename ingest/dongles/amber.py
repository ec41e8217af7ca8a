"""Amber / Wurth AMB8465 wireless M-Bus stick in command mode: 0xFF, command, length, payload, XOR
checksum. A data indication (0x03) carries the frame from the C-field, then the RSSI byte when the
stick's RSSI_Enable setting is on; the L-field is put back in front.

A message whose checksum fails is counted and the parser resyncs on the next 0xFF.
"""

from __future__ import annotations

from functools import reduce
from operator import xor

from ingest.dongles import BadInput, Event, skip_to_start
from ingest.frames import ReceivedFrame

SOF = 0xFF
CMD_DATA_REQ, CMD_DATA_IND, CMD_SET_MODE_REQ, CMD_RESET_REQ = 0x00, 0x03, 0x04, 0x05
CMD_SET_REQ, CMD_GET_REQ = 0x09, 0x0A
RESPONSE = 0x80  # a confirmation is the request code with this bit set

# mode preselect values (volatile CMD_SET_MODE_REQ) that receive each link mode
LINK_MODES: dict[str, int] = {"S1": 0x03, "T1": 0x05, "C1": 0x0E, "C1+T1": 0x09}
_KNOWN = {CMD_DATA_IND} | {c | RESPONSE for c in (CMD_DATA_REQ, CMD_SET_MODE_REQ, CMD_RESET_REQ, CMD_SET_REQ,
                                                 CMD_GET_REQ, 0x0B, 0x0C, 0x0D, 0x10, 0x11)}


def checksum(data: bytes) -> int:
    return reduce(xor, data, 0)


def command(cmd: int, payload: bytes = b"") -> bytes:
    """One framed message; the checksum is the XOR of every byte before it, start byte included."""
    body = bytes([SOF, cmd, len(payload)]) + payload
    return body + bytes([checksum(body)])


def data_indication(frame: bytes, rssi_raw: int | None) -> bytes:
    """What the stick sends for a received frame (for simulators): C-field onwards, RSSI, checksum."""
    payload = frame[1:] + (bytes([rssi_raw]) if rssi_raw is not None else b"")
    return command(CMD_DATA_IND, payload)


def rssi_dbm(raw: int) -> int:
    """The stick's RSSI byte (two's complement, half-dB steps, 74 dB offset) in dBm."""
    return round((raw - 256 if raw >= 128 else raw) / 2 - 74)


def rssi_raw(dbm: int) -> int:
    value = (dbm + 74) * 2
    return value & 0xFF


class AmberDecoder:
    def __init__(self, link_mode: str = "C1+T1", configure: bool = True, rssi_appended: bool = True,
                 partial_timeout_s: float = 0.5) -> None:
        self.link_mode = link_mode
        self.configure = configure
        self.rssi_appended = rssi_appended
        self.partial_timeout_s = partial_timeout_s
        self.replies: list[tuple[int, bytes]] = []
        self._buf = bytearray()
        self._since: float | None = None

    def init_commands(self) -> list[bytes]:
        return [command(CMD_SET_MODE_REQ, bytes([LINK_MODES[self.link_mode]]))] if self.configure else []

    def feed(self, data: bytes, now: float) -> list[Event]:
        self._buf += data
        buf = self._buf
        events: list[Event] = []
        while buf:
            noise = skip_to_start(buf, SOF)
            if noise is not None:
                events.append(noise)
                continue
            if len(buf) < 3:
                break
            cmd, n = buf[1], buf[2]
            if cmd not in _KNOWN:
                del buf[0]
                events.append(BadInput("bad_header", f"command {cmd:02x}"))
                continue
            total = 3 + n + 1
            if len(buf) < total:
                break
            msg = bytes(buf[:total])
            if checksum(msg[:-1]) != msg[-1]:
                del buf[0]
                events.append(BadInput("bad_crc", msg[:8].hex()))
                continue
            del buf[:total]
            payload = msg[3:-1]
            if cmd == CMD_DATA_IND:
                rssi = None
                if self.rssi_appended and payload:
                    rssi, payload = rssi_dbm(payload[-1]), payload[:-1]
                if len(payload) < 10:
                    events.append(BadInput("truncated", f"radio message of {len(payload)} bytes"))
                    continue
                events.append(ReceivedFrame(bytes([len(payload)]) + payload, now, rssi))
            else:
                self.replies.append((cmd, payload))
        self._since = (self._since or now) if buf else None
        return events

    def expire(self, now: float) -> list[Event]:
        if not self._buf or self._since is None or now - self._since < self.partial_timeout_s:
            return []
        del self._buf[0]
        self._since = None
        return [BadInput("truncated", "message stopped arriving"), *self.feed(b"", now)]
