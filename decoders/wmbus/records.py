"""Application layer data records: DIF/DIFE, VIF/VIFE chains, values (integer, BCD, real, LVAR, dates).

`parse_records` returns the records plus the format bytes (all DIF/VIF bytes), which is what a compact
frame's format signature is computed over. A parse error raises RecordError; the decoder turns it into
a DecodeError("bad_record").
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from decoders.wmbus.vif_tables import FB_TABLE, FD_TABLE, PRIMARY, TIME_TO_SECONDS, VifInfo

# data field (low nibble of the DIF) -> length in bytes; 0x0D (LVAR) and 0x0F (special) handled apart
DATA_LENGTHS = (0, 1, 2, 3, 4, 4, 6, 8, 0, 1, 2, 3, 4, -1, 6, -1)
FUNCTIONS = ("", "max", "min", "at_error")


class RecordError(ValueError):
    """A record that cannot be parsed: the frame is corrupt or was decrypted with the wrong key."""


@dataclass(slots=True)
class Record:
    """One data record, value already scaled into the unit of `info`."""

    dif_vif: bytes  # the record's format bytes (DIF, DIFEs, VIF, VIFEs)
    storage: int
    tariff: int
    subunit: int
    function: int  # 0 instantaneous, 1 max, 2 min, 3 value during error state
    info: VifInfo
    vifes: tuple[int, ...]
    value: Any  # float | int | str | date | datetime | bytes | None
    raw: bytes

    @property
    def backward(self) -> bool:
        return 0x3C in self.vifes

    @property
    def plain(self) -> bool:
        """No tariff, subunit, function or modifying VIFE: the register itself."""
        return not (self.tariff or self.subunit or self.function or self.vifes)


@dataclass(slots=True)
class Parsed:
    records: list[Record]
    format_bytes: bytes
    manufacturer_data: bytes | None  # after DIF 0F/1F
    trailing_error: str | None = None  # records after the last good one could not be parsed


def _text(raw: bytes) -> str:
    """An LVAR or plain-text unit as text when it is printable, else its bytes as hex (binary, not text)."""
    text = raw.decode("latin-1")
    return text if text.isprintable() else raw.hex()


def _opaque_int(number: int) -> int | str:
    """A number that is a code, not a quantity: as text when it does not fit 64 bits (JSON, jsonb)."""
    return number if -(1 << 63) <= number < (1 << 63) else str(number)


def decode_bcd(raw: bytes) -> int | None:
    """Little-endian packed BCD; a top nibble F means negative. None when a digit is not decimal."""
    value = 0
    negative = False
    for i, byte in enumerate(reversed(raw)):
        hi, lo = byte >> 4, byte & 0x0F
        if i == 0 and hi == 0x0F:
            negative = True
            hi = 0
        if hi > 9 or lo > 9:
            return None
        value = value * 100 + hi * 10 + lo
    return -value if negative else value


def decode_date_g(raw: bytes) -> date | None:
    """Type G date (2 bytes)."""
    day = raw[0] & 0x1F
    month = raw[1] & 0x0F
    year = ((raw[0] & 0xE0) >> 5) | ((raw[1] & 0xF0) >> 1)
    try:
        return date(2000 + year, month, day)
    except ValueError:
        return None


def decode_datetime(raw: bytes) -> datetime | None:
    """Type F (4 bytes, minutes) or type I (6 bytes, seconds) date and time, taken as UTC."""
    try:
        if len(raw) == 4:
            if raw[0] & 0x80:  # time invalid flag
                return None
            minute, hour, day, month = raw[0] & 0x3F, raw[1] & 0x1F, raw[2] & 0x1F, raw[3] & 0x0F
            year = ((raw[2] & 0xE0) >> 5) | ((raw[3] & 0xF0) >> 1)
            return datetime(2000 + year, month, day, hour, minute, tzinfo=UTC)
        if len(raw) == 6:
            second, minute, hour = raw[0] & 0x3F, raw[1] & 0x3F, raw[2] & 0x1F
            day, month = raw[3] & 0x1F, raw[4] & 0x0F
            year = ((raw[3] & 0xE0) >> 5) | ((raw[4] & 0xF0) >> 1)
            return datetime(2000 + year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:
        return None
    return None


UNKNOWN_VIF = VifInfo("unknown", "", 0)
MANUFACTURER_VIF = VifInfo("manufacturer_specific", "", 0)
TEXT_VIF = VifInfo("text", "", 0)


def _read_vif(data: bytes, pos: int, end: int) -> tuple[VifInfo, tuple[int, ...], int, float, str]:
    """VIF and VIFE chain at pos -> (info, modifying vifes, new pos, extra factor, plain-text unit)."""
    if pos >= end:
        raise RecordError("record ends before its VIF")
    vif = data[pos]
    pos += 1
    factor = 1.0
    text_unit = ""
    code = vif & 0x7F
    if vif in (0xFD, 0xFB):
        if pos >= end:
            raise RecordError("record ends inside an extended VIF")
        ext = data[pos]
        pos += 1
        table = FD_TABLE if vif == 0xFD else FB_TABLE
        info = table.get(ext & 0x7F, UNKNOWN_VIF)
        last = ext
    elif code == 0x7C:
        if pos >= end:
            raise RecordError("record ends inside a plain-text VIF")
        # plain-text unit: length byte then ASCII, stored reversed; VIFEs (if any) follow the text
        info = TEXT_VIF
        last = vif
        text_vifes: tuple[int, ...] = ()
        if vif & 0x80:
            text_vifes, pos = _read_vifes(data, pos, end)
        if pos >= end:
            raise RecordError("record ends before its plain-text unit")
        n = data[pos]
        pos += 1
        if pos + n > end:
            raise RecordError("plain-text VIF longer than the record")
        text_unit = _text(bytes(reversed(data[pos : pos + n])))
        pos += n
        return info, text_vifes, pos, factor, text_unit
    elif code == 0x7F:
        info = MANUFACTURER_VIF
        last = vif
    elif code == 0x7E:
        info = VifInfo("any", "", 0)
        last = vif
    else:
        info = PRIMARY.get(code, UNKNOWN_VIF)
        if 0x40 <= code <= 0x47:
            factor = 60.0
        elif 0x48 <= code <= 0x4F:
            factor = 3600.0
        last = vif
    vifes: tuple[int, ...] = ()
    if last & 0x80:
        vifes, pos = _read_vifes(data, pos, end)
    return info, vifes, pos, factor, text_unit


def _read_vifes(data: bytes, pos: int, end: int) -> tuple[tuple[int, ...], int]:
    out: list[int] = []
    while True:
        if pos >= end:
            raise RecordError("record ends inside a VIFE chain")
        vife = data[pos]
        pos += 1
        out.append(vife & 0x7F)
        if not vife & 0x80:
            return tuple(out), pos
        if len(out) > 10:
            raise RecordError("VIFE chain longer than 10")


def _scale(info: VifInfo, vifes: tuple[int, ...], factor: float) -> float:
    scale = factor * (10.0**info.exponent)
    for vife in vifes:
        if 0x70 <= vife <= 0x77:
            scale *= 10.0 ** (vife - 0x70 - 6)
        elif vife == 0x7D:
            scale *= 1000.0
    return scale


def _value(info: VifInfo, data_field: int, raw: bytes, vifes: tuple[int, ...], factor: float) -> Any:
    if info.quantity in ("date", "datetime", "battery_change_datetime") and data_field in (2, 4, 6):
        if data_field == 2:
            return decode_date_g(raw)
        return decode_datetime(raw)
    number: float | int | None
    if data_field in (0x09, 0x0A, 0x0B, 0x0C, 0x0E):
        number = decode_bcd(raw)
        if number is None:
            return None
    elif data_field == 0x05:
        number = struct.unpack("<f", raw)[0]
        if not math.isfinite(number):
            return None  # NaN/inf would not survive JSON
    elif data_field in (1, 2, 3, 4, 6, 7):
        number = int.from_bytes(raw, "little", signed=True)
    else:
        return raw.hex() if raw else None
    if info.quantity in ("fabrication_no", "enhanced_id", "customer", "customer_location", "model_version",
                         "bus_address", "access_number", "parameter_set_id"):
        return str(number) if data_field >= 0x09 else number
    if info.quantity == "manufacturer_specific" and isinstance(number, int):
        return _opaque_int(number)
    if info.unit in TIME_SECONDS_UNITS:
        return number
    exp = info.exponent
    if factor == 1.0 and not vifes:
        # dividing by an exact power of ten gives the nearest double (1001 / 1000 == 1.001)
        if exp < 0:
            return number / _POW10[-exp]
        return number * _POW10[exp] if exp else number
    scale = _scale(info, vifes, factor)
    if scale == 1.0 and isinstance(number, int):
        return number
    return round(number * scale, 9)


_POW10 = tuple(10**i for i in range(40))
# primary VIFs without extension bit and without special handling -> (info, factor, is a date)
_FAST_VIF: dict[int, tuple[VifInfo, float, bool]] = {
    code: (info, 60.0 if 0x40 <= code <= 0x47 else 3600.0 if 0x48 <= code <= 0x4F else 1.0,
           info.unit.startswith("date"))
    for code, info in PRIMARY.items()
    if code < 0x7C and info.unit not in ("s", "min", "h", "d")
}


TIME_SECONDS_UNITS = frozenset({"s", "min", "h", "d"})


def normalise_time(info: VifInfo, value: float) -> tuple[str, float]:
    """Durations: operating/on time in hours, battery life in years, the rest in seconds."""
    seconds = value * TIME_TO_SECONDS[("s", "min", "h", "d").index(info.unit)]
    if info.quantity in ("on_time", "operating_time", "battery_operating_time"):
        return "h", seconds / 3600
    if info.quantity == "remaining_battery_life":
        return "y", round(seconds / 86400 / 365.25, 6)
    return "s", seconds


def parse_records(data: bytes, start: int = 0, end: int | None = None, lenient: bool = False) -> Parsed:
    """All records in data[start:end]; stops at manufacturer data (DIF 0F/1F).

    lenient: a record that runs past the end after good records is reported in `trailing_error`
    instead of failing the frame (meters that append a CRC or counter after their records).
    """
    end = len(data) if end is None else end
    result = Parsed([], b"", None)
    try:
        _parse(data, start, end, result)
    except RecordError as exc:
        if not lenient or not result.records:
            raise
        result.trailing_error = str(exc)
    return result


def _parse(data: bytes, start: int, end: int, result: Parsed) -> None:
    """Fill `result` record by record (so a caller can keep the good prefix on error)."""
    pos = start
    records = result.records
    fmt = bytearray()
    mfct: bytes | None = None
    while pos < end:
        dif_pos = pos
        dif = data[pos]
        pos += 1
        if dif == 0x2F:  # idle filler
            continue
        if dif in (0x0F, 0x1F):
            mfct = bytes(data[pos:end])
            break
        if dif & 0x0F == 0x0F:
            raise RecordError(f"special DIF {dif:02x} at {dif_pos}")
        storage = (dif >> 6) & 1
        function = (dif >> 4) & 3
        tariff = 0
        subunit = 0
        ext = dif & 0x80
        n = 0
        while ext:
            if pos >= end:
                raise RecordError("record ends inside its DIFE chain")
            dife = data[pos]
            pos += 1
            storage |= (dife & 0x0F) << (1 + 4 * n)
            tariff |= ((dife >> 4) & 3) << (2 * n)
            subunit |= ((dife >> 6) & 1) << n
            ext = dife & 0x80
            n += 1
            if n > 10:
                raise RecordError("DIFE chain longer than 10")
        vif = data[pos] if pos < end else 0xFF
        fast = _FAST_VIF.get(vif) if not ext else None
        if fast is not None:
            # hot path: a primary VIF without extensions (most water records)
            info, factor, dated = fast
            vifes: tuple[int, ...] = ()
            text_unit = ""
            pos += 1
            data_field = dif & 0x0F
            length = DATA_LENGTHS[data_field]
            if 1 <= data_field <= 4 and not dated:
                if pos + length > end:
                    raise RecordError(f"record at {dif_pos} needs {length} bytes, payload ends")
                raw = bytes(data[pos : pos + length])
                number = int.from_bytes(raw, "little", signed=True)
                exp = info.exponent
                value_fast: Any = number / _POW10[-exp] if exp < 0 else (number * _POW10[exp] if exp else number)
                if factor != 1.0:
                    value_fast = round(number * factor * 10.0**exp, 9)
                pos += length
                records.append(Record(bytes(data[dif_pos : pos - length]), storage, tariff, subunit, function,
                                      info, vifes, value_fast, raw))
                fmt += data[dif_pos : pos - length]
                continue
            pos -= 1
        info, vifes, pos, factor, text_unit = _read_vif(data, pos, end)
        fmt_bytes = bytes(data[dif_pos:pos])
        data_field = dif & 0x0F
        if data_field == 0x0D:
            if pos >= end:
                raise RecordError("LVAR record without its length byte")
            lvar = data[pos]
            pos += 1
            if lvar < 0xC0:
                length = lvar
            elif lvar < 0xE0:
                length = (lvar & 0x0F)
            elif lvar < 0xF0:
                length = lvar - 0xE0
            elif lvar <= 0xFA:
                length = 4 * (lvar - 0xEC)
            else:
                raise RecordError(f"reserved LVAR {lvar:02x}")
            if pos + length > end:
                raise RecordError("LVAR record longer than the payload")
            raw = bytes(data[pos : pos + length])
            pos += length
            value: Any
            if lvar < 0xC0:
                value = _text(bytes(reversed(raw)).strip(b"\x00"))
            elif lvar < 0xE0:
                bcd = decode_bcd(raw)
                value = None if bcd is None else _opaque_int(-bcd if lvar >= 0xD0 else bcd)
            elif lvar < 0xF0:
                value = _opaque_int(int.from_bytes(raw, "little", signed=False))
            else:
                value = raw.hex()
        else:
            length = DATA_LENGTHS[data_field]
            if pos + length > end:
                raise RecordError(f"record at {dif_pos} needs {length} bytes, payload ends")
            raw = bytes(data[pos : pos + length])
            pos += length
            value = _value(info, data_field, raw, vifes, factor)
        if text_unit:
            info = VifInfo("text", text_unit.lower(), 0)
        records.append(Record(fmt_bytes, storage, tariff, subunit, function, info, vifes, value, raw))
        fmt += fmt_bytes
    result.format_bytes = bytes(fmt)
    result.manufacturer_data = mfct


def parse_with_format(format_bytes: bytes, data: bytes, start: int, end: int) -> Parsed:
    """Records of a compact frame: DIF/VIF bytes from the learned format, data bytes from the frame."""
    rebuilt = bytearray()
    fpos = 0
    dpos = start
    flen = len(format_bytes)
    while fpos < flen:
        rec_start = fpos
        dif = format_bytes[fpos]
        fpos += 1
        ext = dif & 0x80
        while ext and fpos < flen:
            ext = format_bytes[fpos] & 0x80
            fpos += 1
        if fpos >= flen:
            raise RecordError("format signature ends inside a record")
        vif = format_bytes[fpos]
        fpos += 1
        if vif in (0xFD, 0xFB) and fpos < flen:
            vif = format_bytes[fpos]
            fpos += 1
        ext = vif & 0x80
        while ext and fpos < flen:
            ext = format_bytes[fpos] & 0x80
            fpos += 1
        length = DATA_LENGTHS[dif & 0x0F]
        if length < 0:
            raise RecordError("variable-length record in a compact frame")
        if dpos + length > end:
            raise RecordError("compact frame shorter than its format")
        rebuilt += format_bytes[rec_start:fpos] + data[dpos : dpos + length]
        dpos += length
    parsed = parse_records(bytes(rebuilt))
    tail = bytes(data[dpos:end])
    if tail and tail.strip(b"\x2f"):
        parsed.manufacturer_data = tail
    return parsed
