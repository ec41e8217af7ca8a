"""Link layer: format A/B CRC blocks, already-stripped frames, wired long frames, and the DLL header."""

from __future__ import annotations

from dataclasses import dataclass

from decoders.reading import DecodeError
from decoders.wmbus.crc import crc16_en13757

WIRED_START = 0x68
LONG_FORMAT_B = 128  # a format B frame longer than this has two CRCs (after byte 126 and at the end)

DEVICE_TYPES: dict[int, str] = {
    0x00: "other", 0x01: "oil", 0x02: "electricity", 0x03: "gas", 0x04: "heat", 0x05: "steam",
    0x06: "warm_water", 0x07: "water", 0x08: "heat_cost_allocator", 0x09: "compressed_air",
    0x0A: "cooling_outlet", 0x0B: "cooling_inlet", 0x0C: "heat_inlet", 0x0D: "heat_cooling",
    0x0E: "bus_system", 0x0F: "unknown", 0x15: "hot_water", 0x16: "cold_water", 0x17: "dual_water",
    0x18: "pressure", 0x19: "ad_converter", 0x1A: "smoke_detector", 0x1B: "room_sensor",
    0x1C: "gas_detector", 0x20: "breaker", 0x21: "valve", 0x25: "customer_unit", 0x28: "waste_water",
    0x29: "garbage", 0x31: "communication_controller", 0x36: "radio_converter_system",
    0x37: "radio_converter_meter",
}
WATER_TYPES = frozenset({0x06, 0x07, 0x15, 0x16, 0x17, 0x28})


def device_type_name(code: int) -> str:
    return DEVICE_TYPES.get(code, f"type_{code:02x}")


_MFCT_CACHE: dict[int, str] = {}


def manufacturer_code(m_field: int) -> str:
    """The 3-letter flag code packed 5 bits per letter into the M-field (memoised: 65536 values at most)."""
    code = _MFCT_CACHE.get(m_field)
    if code is None:
        code = "".join(chr(((m_field >> shift) & 0x1F) + 64) for shift in (10, 5, 0))
        _MFCT_CACHE[m_field] = code
    return code


def manufacturer_field(code: str) -> int:
    a, b, c = (ord(ch) - 64 for ch in code.upper())
    return (a << 10) | (b << 5) | c


def format_id(id_le: bytes) -> str:
    """An address as printed on the meter: the 4 little-endian bytes reversed (BCD digits as hex)."""
    return id_le[::-1].hex()


@dataclass(frozen=True, slots=True)
class LinkHeader:
    """The data link layer header of a wireless frame (or the equivalent of a wired long frame)."""

    c_field: int
    m_field: int
    id_bytes: bytes  # 4 bytes as transmitted (little endian)
    version: int
    device_type: int
    wired: bool = False

    @property
    def manufacturer(self) -> str:
        return manufacturer_code(self.m_field)

    @property
    def meter_id(self) -> str:
        return format_id(self.id_bytes)


def _is_wired(raw: bytes) -> bool:
    return len(raw) >= 6 and raw[0] == WIRED_START and raw[3] == WIRED_START and raw[1] == raw[2]


def _strip_format_a(raw: bytes, length: int) -> bytes | DecodeError | None:
    """Format A: a 10-byte first block and 16-byte blocks, each followed by its CRC (L excludes CRCs)."""
    if length < 9:
        return None
    rest = length - 9
    n_blocks = 1 + (rest + 15) // 16
    if len(raw) != length + 1 + 2 * n_blocks:
        return None
    if crc16_en13757(raw[0:10]) != int.from_bytes(raw[10:12], "big"):
        # exactly the length of a format A frame: a damaged header is far likelier than that many stray bytes
        return DecodeError("bad_crc", "format A first block CRC mismatch")
    out = bytearray(raw[0:10])
    pos = 12
    while pos < len(raw):
        take = min(16, len(raw) - pos - 2)
        block = raw[pos : pos + take]
        if crc16_en13757(block) != int.from_bytes(raw[pos + take : pos + take + 2], "big"):
            return DecodeError("bad_crc", f"format A block CRC mismatch at byte {pos}")
        out += block
        pos += take + 2
    return bytes(out)


def strip_format_b(raw: bytes) -> bytes | None:
    """The frame read as format B with its CRCs removed, or None when its CRCs do not match.

    Format B: L includes the CRCs; one CRC after byte 126 and one at the end (when longer). A frame whose
    CRCs were already removed has the same length (L+1) and matches by chance 1 time in 65,536, so a
    match alone does not make a frame format B: the decoder only uses this when the frame taken as it is
    does not decode (see WmbusDecoder.decode).
    """
    if not raw:
        return None
    length = raw[0]
    if len(raw) != length + 1 or length < 12 or _is_wired(raw):
        return None
    if length + 1 <= LONG_FORMAT_B:
        if crc16_en13757(raw[: length - 1]) != int.from_bytes(raw[length - 1 :], "big"):
            return None
        body = raw[: length - 1]
        crcs = 1
    else:
        if crc16_en13757(raw[:126]) != int.from_bytes(raw[126:128], "big"):
            return None
        if crc16_en13757(raw[128 : length - 1]) != int.from_bytes(raw[length - 1 :], "big"):
            return None
        body = raw[:126] + raw[128 : length - 1]
        crcs = 2
    return bytes([length - 2 * crcs]) + body[1:]


def normalise_frame(raw: bytes) -> bytes | DecodeError:
    """The frame from the L-field with format A link CRCs removed; idempotent; wired frames pass through trimmed.

    A frame of exactly L+1 bytes is returned as it is: that is what a CRC-stripped frame looks like (the
    normal case), and it cannot be format A. A short format B frame (up to 128 bytes, one CRC) has that
    length too and is also returned unchanged (CRC included); `WmbusDecoder.decode` still decodes it, but
    its digest differs from the same telegram delivered stripped (see decoders/README.md, "Link
    formats"). A longer one carries two CRCs that a stripped frame matches 1 time in 2**32: it is stripped.
    """
    if len(raw) < 1:
        return DecodeError("truncated", "empty frame")
    if _is_wired(raw):
        length = raw[1]
        end = 6 + length
        if len(raw) < end:
            return DecodeError("truncated", f"wired frame shorter than its L-field {length}")
        if raw[end - 1] != 0x16:
            return DecodeError("bad_length", "wired frame has no stop byte where L says")
        if sum(raw[4 : 4 + length]) & 0xFF != raw[4 + length]:
            return DecodeError("bad_crc", "wired frame checksum mismatch")
        return bytes(raw[:end])
    length = raw[0]
    if length < 10:
        return DecodeError("bad_length", f"L-field {length} too small for a link header")
    if len(raw) == length + 1:
        if len(raw) > LONG_FORMAT_B:
            stripped_b = strip_format_b(raw)
            if stripped_b is not None:
                return stripped_b
        return bytes(raw)  # already stripped (or short format B, undecidable here): no CRC to compute
    stripped_a = _strip_format_a(raw, length)
    if stripped_a is not None:
        return stripped_a
    if len(raw) < length + 1:
        return DecodeError("truncated", f"frame has {len(raw)} bytes, L-field says {length + 1}")
    return bytes(raw[: length + 1])


def parse_link(frame: bytes) -> LinkHeader:
    """Header of a normalised wireless frame (at least 11 bytes)."""
    return LinkHeader(
        c_field=frame[1],
        m_field=frame[2] | (frame[3] << 8),
        id_bytes=bytes(frame[4:8]),
        version=frame[8],
        device_type=frame[9],
    )


def peek_header(frame: bytes) -> tuple[str, str] | None:
    """(meter_id, manufacturer) from the link header, without decrypting; None when not readable."""
    try:
        norm = normalise_frame(frame)
        if isinstance(norm, DecodeError):
            norm = frame
        if _is_wired(norm):
            if len(norm) < 19 or norm[6] not in (0x72, 0x73):
                return None
            return format_id(norm[7:11]), manufacturer_code(norm[11] | (norm[12] << 8))
        if len(norm) < 10:
            return None
        head = parse_link(norm + b"\x00" * max(0, 11 - len(norm)))
        if len(norm) >= 23 and norm[10] in (0x72, 0x73):
            return format_id(norm[11:15]), manufacturer_code(norm[15] | (norm[16] << 8))
        if len(norm) >= 11:
            from decoders.wmbus.drivers.diehl import interpretation

            cfg = (norm[13] | (norm[14] << 8)) if len(norm) >= 15 else 0
            if interpretation(norm[1], head.manufacturer, norm[10], cfg) in ("prios", "real_data"):
                return format_id(norm[6:10]), head.manufacturer  # Diehl's own address order
        return head.meter_id, head.manufacturer
    except Exception:  # peek must never fail the caller
        return None
