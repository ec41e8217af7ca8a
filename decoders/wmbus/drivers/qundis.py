"""Qundis Q water: the walk-by frame hides standard values inside one 53-byte LVAR record (0DFF5F)."""

from __future__ import annotations

from typing import Any

from decoders.wmbus.drivers.base import DriverSpec, SpecialResult, Vector
from decoders.wmbus.records import decode_bcd, decode_date_g


def _walk_by(records: list[Any]) -> SpecialResult | None:
    """Offsets inside the LVAR: total BCD8 at 12, due date at 16, due value at 18, 17th due date/value."""
    for rec in records:
        if rec.dif_vif[:3] == b"\x0d\xff\x5f" and len(rec.raw) == 53:
            raw: bytes = rec.raw
            out = SpecialResult()
            total = decode_bcd(raw[12:16])
            if total is not None:
                out.total_m3 = total / 1000.0
            due = decode_bcd(raw[18:22])
            if due is not None:
                out.fields["due_date_m3"] = due / 1000.0
            out.fields["due_date"] = decode_date_g(raw[16:18])
            due17 = decode_bcd(raw[24:28])
            if due17 is not None:
                out.target_m3 = due17 / 1000.0
            out.target_date = decode_date_g(raw[22:24])
            return out
    return None


DRIVERS = (
    DriverSpec(
        name="qwater",
        detect=(("QDS", 0x35, 0x37), ("QDS", 0x18, 0x06), ("QDS", 0x18, 0x07), ("QDS", 0x19, 0x07),
                ("QDS", 0x1A, 0x07), ("QDS", 0x17, 0x07), ("QDS", 0x1D, 0x06), ("QDS", 0x16, 0x07),
                ("QDS", 0x16, 0x06), ("QDS", 0x35, 0x06), ("QDS", 0x35, 0x07), ("QDS", 0x19, 0x06),
                ("QDS", None, 0x07), ("QDS", None, 0x06)),
        target_storage=17,
        record_hook=_walk_by,
        vectors=(
            Vector("394493449400231218077AD30000200C13536712004C1307920500426CBF2CCC081373621200C2086CDE2B02"
                   "BB560000326CFFFF046D3714C32C", {"id": "12230094", "total_m3": 126.753, "target_m3": 126.273}),
            Vector("4B449344483635121806780DFF5F350082DA0000600107C113FFFF48200000BF2C91170000DF212020000000"
                   "8001000000060019001000160018000D001300350017002F046D370CC422C759",
                   {"id": "12353648", "total_m3": 2.048, "target_m3": 2.02, "target_date": "2022-01-31"}),
        ),
    ),
)
