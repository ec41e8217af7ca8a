"""Kamstrup water meters (Multical 21, flowIQ): ELL AES-CTR, compact frames, info codes as alarm words."""

from __future__ import annotations

from typing import Any

from decoders.wmbus.drivers.base import DriverSpec, Vector

# Format strings (DIF/VIF bytes of the full frame) these meters are known to use; a compact frame
# whose signature (CRC-16 of these bytes) matches decodes even before its full frame was seen.
KNOWN_FORMATS: tuple[str, ...] = (
    "02FF2004134413615B6167",  # signature a8ed
    "02FF20041392013BA1015B8101E7FF0F",  # c412
    "02FF2004134413A1015B8101E7FF0F",  # 61eb
    "02FF2004134413615B5167",  # d2f7
    "02FF2004134413",  # dd34
    "02FF200413523B",  # 7c0e
    "04FF234413523B06FF1B426C61675167023B04138101E7FF0F",  # 0905
    "04FF2304134413426C023B92013BA2013B06FF1BA1015B91015BA10167",  # flowIQ 2200
    "02FF2004134413426C523B615B616751678101E7FF0F06FF1B",
)

_INFO_BITS = ((0x01, "dry"), (0x02, "backflow"), (0x04, "leak"), (0x08, "burst"))


def info_code_alarms(fields: dict[str, Any]) -> tuple[str, ...]:
    """The low bits of the info code record (02FF20 / 04FF23) are the current alarms."""
    code = fields.get("info_codes")
    if not isinstance(code, int):
        return ()
    return tuple(word for bit, word in _INFO_BITS if code & bit)


DRIVERS = (
    DriverSpec(
        name="multical21",
        detect=(("KAM", 0x1B, 0x16), ("KAM", 0x1B, 0x06), ("KAM", 0x3A, 0x16), ("KAM", 0x3C, 0x16),
                ("KAM", None, 0x16), ("KAM", None, 0x06), ("KAM", None, 0x07), ("KAW", None, 0x16),
                ("KAW", None, 0x06), ("KAW", None, 0x07)),
        alarms_from_fields=info_code_alarms,
        known_formats=KNOWN_FORMATS,
        vectors=(
            Vector("2D442D2C776655441B168D2083B48D3A2046887802FF20000004132F4E000092013B3D01A1015B028101E7FF0F03",
                   {"id": "44556677", "total_m3": 20.015}),
            Vector("23442D2C998734761B168D2087D19EAD217F1779EDA86AB6710008190000081900007F13",
                   {"id": "76348799", "total_m3": 6.408, "target_m3": 6.408}),
            Vector("2A442D2C998734761B168D2091D37CAC21E1D68CDAFFCD3DC452BD802913FF7B1706CA9E355D6C2701CC24",
                   {"id": "76348799", "total_m3": 6.408, "target_m3": 6.408},
                   key_hex="28F64A24988064A079AA2C807D6102AE"),
        ),
    ),
)
