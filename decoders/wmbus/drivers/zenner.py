"""Zenner B.One module: no OMS records; status, target and total (1/256000 m3) after DIF 0F."""

from __future__ import annotations

from decoders.wmbus.drivers.base import DriverSpec, SpecialResult, Vector


def _bone(mfct: bytes) -> SpecialResult:
    out = SpecialResult()
    if len(mfct) >= 12:
        out.target_m3 = round(int.from_bytes(mfct[4:8], "little") / 256000.0, 6)
        out.total_m3 = round(int.from_bytes(mfct[8:12], "little") / 256000.0, 6)
        status = int.from_bytes(mfct[0:4], "little")
        out.fields["mfct_status"] = "OK" if status == 0 else f"0x{status:08X}"
    return out


DRIVERS = (
    DriverSpec(
        name="zenner0b",
        detect=(("ZRI", 0x0B, 0x16),),
        mfct_data=_bone,
        requires_total=True,  # the total is in the manufacturer data: OMS records instead are not this layout
        vectors=(
            Vector("1E44496A677308500B167AD80010252F2F0F0000000080BF1B0000A6420000",
                   {"id": "50087367", "total_m3": 17.062, "target_m3": 7.1035}),
        ),
    ),
)
