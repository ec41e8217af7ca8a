"""Apator: AT-WMBUS-08/17 (value in 1/3 litre), NA-1 (AES block in a manufacturer CI), 16-2 (registers)."""

from __future__ import annotations

from decoders.reading import DecodeError
from decoders.wmbus.drivers.base import DriverSpec, FrameView, SpecialFn, SpecialResult, Vector
from decoders.wmbus.security import key_material, mode5_iv

ALL_ONES = b"\xff" * 4  # a 32-bit register at its maximum is saturated or unset, never an index


def _thirds(divisor: float) -> SpecialFn:
    """The first four payload bytes count thirds of a unit (litres on the 08, m3 on the 17)."""

    def parse(view: FrameView) -> SpecialResult | DecodeError:
        p = view.payload
        if len(p) < 4:
            return DecodeError("truncated", "apator payload shorter than its register")
        if p[0:4] == ALL_ONES:
            return DecodeError("beyond_register", "apator register is all ones (saturated or unset)")
        return SpecialResult(total_m3=round(int.from_bytes(p[0:4], "little") / divisor, 6))

    return parse


def _apatorna1(view: FrameView) -> SpecialResult | DecodeError:
    """One AES-CBC block (IV from header, access number from payload[0]); key defaults to zeros."""
    p = view.payload
    if len(p) < 18:
        return DecodeError("truncated", "apatorna1 payload shorter than one AES block")
    key = view.key if view.key is not None else bytes(16)
    if len(key) != 16:
        return DecodeError("unsupported_security", "apatorna1 needs a 16-byte AES key")
    block = key_material(key).cbc_decrypt(mode5_iv(view.m_field, view.address, p[0]), p[2:18])
    multiplier = 10 ** ((block[1] & 0x30) >> 4)
    reading = (block[4] << 20) | (block[3] << 12) | (block[2] << 4) | (block[1] & 0x0F)
    return SpecialResult(total_m3=round(reading * multiplier / 1000.0, 6), keyed=view.key is not None)


# register id -> size in bytes, for the register list that follows the 0F marker
_REGISTER_SIZES: dict[int, int] = {
    0x00: 4, 0x01: 3, 0x10: 4, 0xA1: 4, 0x11: 2, 0x40: 6, 0x41: 2, 0x42: 4, 0x43: 2, 0x44: 3,
    0x71: 9, 0x72: 13, 0x73: 17, 0x75: 25, 0x7B: 49,
    0x80: 10, 0x81: 10, 0x82: 10, 0x83: 10, 0x84: 10, 0x86: 10, 0x87: 10,
    0x85: 11, 0x88: 11, 0x8F: 11, 0x8A: 9, 0x8B: 6, 0x8C: 6, 0x8E: 7,
    0xA0: 4, 0xA2: 1, 0xA3: 7, 0xA4: 4, 0xA5: 1, 0xA9: 1, 0xAF: 1, 0xA6: 3,
    0xA7: 2, 0xA8: 2, 0xAA: 2, 0xAB: 2, 0xAC: 2, 0xAD: 2,
    0xB0: 5, 0xB1: 8, 0xB2: 16, 0xB3: 8, 0xB4: 2, 0xB5: 16,
    **{c: 3 for c in range(0xB6, 0xC8)}, 0xD0: 3, 0xD3: 3, 0xF0: 4,
}


def _apator162(mfct: bytes) -> SpecialResult:
    """After 0F: 7 bytes of date and faults, then (register id, value) pairs; 0x10 is the total in litres."""
    out = SpecialResult()
    i = 7
    while i < len(mfct):
        reg = mfct[i]
        if reg == 0xFF:
            break
        size = _REGISTER_SIZES.get(reg)
        i += 1
        if size is None or i + size > len(mfct):
            break
        if reg == 0x10 and size == 4 and mfct[i : i + 4] != ALL_ONES:  # all ones: unset, no total
            out.total_m3 = int.from_bytes(mfct[i : i + 4], "little") / 1000.0
        i += size
    return out


DRIVERS = (
    DriverSpec(
        name="apator08",
        detect=(("APT", 0x0F, 0x0F), ("APT", 0x03, 0x03), ("APT", None, None)),
        special=_thirds(3000.0),
        special_cis=frozenset({0xA0}),
        requires_total=True,
        hex_ids=True,
        vectors=(
            Vector("1C441486069C14000F0FA042F214000040030000000005FF0472BF1400", {"total_m3": 457.579333}),
        ),
    ),
    DriverSpec(
        name="apator172",
        detect=(("APT", 0x04, 0x11),),
        special=_thirds(3.0),
        special_cis=frozenset({0xA0}),
        requires_total=True,
        hex_ids=True,
        vectors=(
            Vector("1C44148607A814000411A01D5400000840030000000005FF05D83D0000", {"total_m3": 7177.666667}),
        ),
    ),
    DriverSpec(
        name="apatorna1",
        detect=(("APA", 0x14, 0x07),),
        special=_apatorna1,
        special_cis=frozenset({0xA0, 0xA1}),
        requires_total=True,
        vectors=(
            Vector("1C440106813591041407A0B000266A705474DDB80D9A0EB9AE2EF29D96", {"total_m3": 345.312},
                   key_hex="00000000000000000000000000000000"),
            Vector("1C440106813591041407A174013655E9B2B8085E2F256908D7498C402C", {"total_m3": 687.357}),
        ),
    ),
    DriverSpec(
        name="apator162",
        detect=(("APA", 0x05, 0x07),),
        mfct_data=_apator162,
        requires_total=True,  # register 0x10: a decrypted payload without it was not Apator's layout
        vectors=(
            Vector("3E4401061405410305077A190030852F2F0F86B4B89529020040C6C1B4F0F3F341555942FA701000F0010100"
                   "0010BC780000FFFFFFFFFFFFFFFFFFFFFF2483", {"id": "03410514", "total_m3": 30.908}),
        ),
    ),
)
