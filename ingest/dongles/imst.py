"""IMST iM871A wireless M-Bus stick: its HCI framing (0xA5 start, control/endpoint, message id, length,
payload, optional timestamp, RSSI and CRC-16) and the link-mode setup sent at start.

The radio-link indication carries the frame from the C-field with CRCs removed; the L-field is the HCI
payload length, so it is put back in front. A frame whose CRC fails is counted and the parser resyncs
on the next 0xA5, which also recovers from a stick reset in the middle of a message.
"""

from __future__ import annotations

from ingest.dongles import BadInput, Event, skip_to_start
from ingest.frames import ReceivedFrame

SOF = 0xA5
DEVMGMT_ID, RADIOLINK_ID, RADIOLINKTEST_ID, HWTEST_ID = 0x01, 0x02, 0x03, 0x04
DEVMGMT_MSG_PING_REQ, DEVMGMT_MSG_SET_CONFIG_REQ, DEVMGMT_MSG_SET_CONFIG_RSP = 0x01, 0x03, 0x04
RADIOLINK_MSG_WMBUSMSG_IND = 0x03

CTRL_TIMESTAMP, CTRL_RSSI, CTRL_CRC16 = 0x2, 0x4, 0x8  # upper nibble of the control/endpoint byte

# link mode codes of SET_CONFIG (receiver "other" side); C1+T1 needs firmware 1.4 or later
LINK_MODES: dict[str, int] = {"S1": 0x00, "T1": 0x03, "C1": 0x06, "C1+T1": 0x0A}
_MAX_ENDPOINT_MSG = {DEVMGMT_ID: 0x27, RADIOLINK_ID: 0x05, RADIOLINKTEST_ID: 0x07, HWTEST_ID: 0x02}


def crc16_x25(data: bytes) -> int:
    """CRC-16 of an HCI message (CCITT polynomial, reflected, initial 0xFFFF, inverted)."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return crc ^ 0xFFFF


def hci_message(endpoint: int, msg_id: int, payload: bytes, *, timestamp: int | None = None,
                rssi_raw: int | None = None, crc: bool = True) -> bytes:
    """One HCI message as it travels on the wire (both directions use the same layout)."""
    ctrl = (CTRL_TIMESTAMP if timestamp is not None else 0) | (CTRL_RSSI if rssi_raw is not None else 0)
    ctrl |= CTRL_CRC16 if crc else 0
    body = bytearray([(ctrl << 4) | endpoint, msg_id, len(payload)]) + payload
    if timestamp is not None:
        body += timestamp.to_bytes(4, "little")
    if rssi_raw is not None:
        body.append(rssi_raw)
    if crc:
        body += crc16_x25(bytes(body)).to_bytes(2, "little")
    return bytes([SOF]) + bytes(body)


def set_link_mode_request(link_mode: str) -> bytes:
    """SET_CONFIG_REQ, RAM only: the link mode (group 1, bit 1) and RSSI attached (group 2, bit 4)."""
    payload = bytes([0x00, 0x02, LINK_MODES[link_mode], 0x10, 0x01])
    return hci_message(DEVMGMT_ID, DEVMGMT_MSG_SET_CONFIG_REQ, payload)


def rssi_dbm(raw: int) -> int:
    """Approximate dBm of the stick's raw RSSI byte (linear: 45 -> -100 dBm, 205 -> -20 dBm)."""
    return min(0, round(-100 + (raw - 45) * 0.5))


def rssi_raw(dbm: int) -> int:
    """Inverse of rssi_dbm, for simulators."""
    return max(0, min(255, round((dbm + 100) * 2 + 45)))


class ImstDecoder:
    """Turns the stick's byte stream into frames; device-management replies are kept for the log."""

    def __init__(self, link_mode: str = "C1+T1", configure: bool = True, partial_timeout_s: float = 0.5) -> None:
        self.link_mode = link_mode
        self.configure = configure
        self.partial_timeout_s = partial_timeout_s
        self.replies: list[tuple[int, bytes]] = []
        self._buf = bytearray()
        self._since: float | None = None

    def init_commands(self) -> list[bytes]:
        return [set_link_mode_request(self.link_mode)] if self.configure else []

    def feed(self, data: bytes, now: float) -> list[Event]:
        self._buf += data
        events: list[Event] = []
        buf = self._buf
        while buf:
            noise = skip_to_start(buf, SOF)
            if noise is not None:
                events.append(noise)
                continue
            if len(buf) < 4:
                break
            ctrl, endpoint, msg_id, n = buf[1] >> 4, buf[1] & 0x0F, buf[2], buf[3]
            if ctrl & 0x1 or endpoint not in _MAX_ENDPOINT_MSG or not 1 <= msg_id <= _MAX_ENDPOINT_MSG[endpoint]:
                events.append(BadInput("bad_header", f"header {bytes(buf[:4]).hex()}"))
                del buf[0]
                continue
            total = 4 + n + (4 if ctrl & CTRL_TIMESTAMP else 0) + (1 if ctrl & CTRL_RSSI else 0)
            total += 2 if ctrl & CTRL_CRC16 else 0
            if len(buf) < total:
                break
            msg = bytes(buf[:total])
            if ctrl & CTRL_CRC16 and crc16_x25(msg[1:-2]) != int.from_bytes(msg[-2:], "little"):
                del buf[0]  # maybe a reset cut this message: resync on the next start byte
                events.append(BadInput("bad_crc", msg[:8].hex()))
                continue
            del buf[:total]
            payload = msg[4:4 + n]
            if endpoint == RADIOLINK_ID and msg_id == RADIOLINK_MSG_WMBUSMSG_IND:
                if n < 10:
                    events.append(BadInput("truncated", f"radio message of {n} bytes"))
                    continue
                rssi = None
                if ctrl & CTRL_RSSI:
                    rssi = rssi_dbm(msg[4 + n + (4 if ctrl & CTRL_TIMESTAMP else 0)])
                events.append(ReceivedFrame(bytes([n]) + payload, now, rssi))
            elif endpoint == DEVMGMT_ID:
                self.replies.append((msg_id, payload))
        self._since = (self._since or now) if buf else None
        return events

    def expire(self, now: float) -> list[Event]:
        if not self._buf or self._since is None or now - self._since < self.partial_timeout_s:
            return []
        del self._buf[0]  # drop the stuck start byte and look for a message behind it
        self._since = None
        return [BadInput("truncated", "message stopped arriving"), *self.feed(b"", now)]
