"""Techem MK Radio 3/4 (CI A2): a proprietary layout of previous and current period consumption."""

from __future__ import annotations

from datetime import date

from decoders.reading import DecodeError
from decoders.wmbus.drivers.base import DriverSpec, FrameView, SpecialResult, Vector


def _mkradio(view: FrameView) -> SpecialResult | DecodeError:
    """Previous period at payload[3:5], current period at payload[7:9], both in 0.1 m3."""
    p = view.payload
    if len(p) < 9:
        return DecodeError("truncated", "mkradio payload too short")
    prev = int.from_bytes(p[3:5], "little") / 10.0
    curr = int.from_bytes(p[7:9], "little") / 10.0
    return SpecialResult(total_m3=round(prev + curr, 3), target_m3=prev)


def _mkradio3a(view: FrameView) -> SpecialResult | DecodeError:
    """Date at payload[2:4], total (3 bytes, 0.1 m3) at payload[4:7], current month after it."""
    p = view.payload
    if len(p) < 10:
        return DecodeError("truncated", "mkradio3a payload too short")
    raw_date = int.from_bytes(p[2:4], "little")
    day, month, year = raw_date & 0x1F, (raw_date >> 5) & 0x0F, (raw_date >> 9) & 0xFF
    total = int.from_bytes(p[4:7], "little") / 10.0
    current = (p[8] + p[9]) / 10.0 if day > 15 else p[8] / 10.0
    out = SpecialResult(total_m3=total, target_m3=round(current, 3))
    try:
        out.target_date = date(2000 + year, month, day)
    except ValueError:
        out.target_date = None
    return out


DRIVERS = (
    DriverSpec(
        name="mkradio3",
        detect=(("TCH", 0x74, 0x62), ("TCH", 0x74, 0x72), ("TCH", 0x95, 0x62), ("TCH", 0x95, 0x72),
                ("TCH", 0x70, 0x62), ("TCH", 0x70, 0x72)),
        special=_mkradio,
        special_cis=frozenset({0xA2}),
        requires_total=True,
        vectors=(
            Vector("2F446850313233347462A2067F245900B029310000000306060906030609070606050509050505050407040605070500",
                   {"id": "34333231", "total_m3": 13.8, "target_m3": 8.9}),
            Vector("2F446850200141029562A206702901006017030004000300000000000000000000000000000000000000000000000000",
                   {"id": "02410120", "total_m3": 0.4, "target_m3": 0.1}),
        ),
    ),
    DriverSpec(
        name="mkradio3a",
        detect=(("TCH", 0x50, 0x72), ("TCH", 0x50, 0x62)),
        special=_mkradio3a,
        special_cis=frozenset({0xA2}),
        requires_total=True,
        vectors=(
            Vector("36446850420656625072A20C007C3110250000293400373A002E38000E15002F37003A39003835002F24003930"
                   "001D2500312500162900", {"id": "62560642", "total_m3": 948.8, "target_m3": 9.3}),
        ),
    ),
)
