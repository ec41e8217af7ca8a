"""B METERS RFM-TX1: old firmware (CFG 1006) obfuscates the BCD total with a per-ACC xor vector."""

from __future__ import annotations

from decoders.reading import DecodeError
from decoders.wmbus.drivers.base import DriverSpec, FrameView, SpecialResult, Vector
from decoders.wmbus.records import decode_bcd

# xor vectors indexed by the low nibble of the access number (published test data of this meter)
_VECTORS: tuple[bytes, ...] = tuple(bytes(v) for v in (
    (117, 150, 122, 16, 26, 10), (91, 127, 112, 19, 34, 19), (179, 24, 185, 11, 142, 153),
    (142, 125, 121, 7, 74, 22), (181, 145, 7, 154, 203, 105), (184, 163, 50, 161, 57, 14),
    (189, 128, 156, 126, 96, 153), (39, 92, 180, 196, 128, 163), (48, 208, 10, 206, 25, 3),
    (194, 76, 240, 5, 165, 134), (84, 75, 22, 152, 17, 94), (75, 238, 12, 201, 125, 162),
    (135, 202, 74, 72, 228, 31), (196, 135, 119, 46, 138, 232), (227, 48, 189, 120, 87, 140),
    (164, 154, 57, 111, 40, 5),
))


def _rfmtx1(view: FrameView) -> SpecialResult | DecodeError | None:
    if view.tpl_cfg != 0x1006:
        return None  # newer firmware: standard OMS records
    p = view.payload  # ACC STS CFG(2) then the obfuscated bytes (positions relative to the CI: ELL-safe)
    if len(p) < 10:
        return DecodeError("truncated", "RFM-TX1 frame shorter than its obfuscated total")
    acc = p[0]
    vec = _VECTORS[acc & 0x0F]
    plain = bytes(p[4 + i] ^ acc ^ vec[i] for i in range(6))
    total = decode_bcd(plain[2:6])
    if total is None:
        return DecodeError("wrong_key", "RFM-TX1 total is not BCD after de-obfuscation")
    return SpecialResult(total_m3=total / 1000.0)


DRIVERS = (
    DriverSpec(
        name="rfmtx1",
        detect=(("BMT", 0x05, 0x07),),
        special=_rfmtx1,
        special_cis=frozenset({0x7A}),
        vectors=(
            Vector("4644B4097172737405077AA50006101115F78184AB0F1D1E200000005904103103208047004A4800E73C00193E00"
                   "453F003E4000E64000E74100F442000144001545005B460000", {"id": "74737271", "total_m3": 188.56}),
        ),
    ),
)
