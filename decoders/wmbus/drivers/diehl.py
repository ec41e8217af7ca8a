"""Diehl group (DME, HYD, SAP, EWT, SPL): IZAR/PRIOS LFSR obfuscation, address swapping, Hydrus rules."""

from __future__ import annotations

from datetime import date

from decoders.reading import DecodeError
from decoders.wmbus.drivers.base import DriverSpec, FrameView, SpecialResult, Vector

DIEHL_MANUFACTURERS = frozenset({"DME", "EWT", "HYD", "SAP", "SPL"})
PRIOS_CIS = frozenset(range(0xA0, 0xA8)) | frozenset({0xB1, 0xB2, 0xB3})
# Publicly known PRIOS default keys (each 8 bytes; the LFSR seed is the xor of their halves).
PRIOS_DEFAULT_KEYS = (bytes.fromhex("39BC8A10E66D83F8"), bytes.fromhex("51728910E66D83F8"))
# OMS mode-5 default key of these meters: the second PRIOS key twice.
DIEHL_DEFAULT_AES_KEY = PRIOS_DEFAULT_KEYS[1] * 2


def seed_from_key(key: bytes) -> int:
    return int.from_bytes(key[0:4], "big") ^ int.from_bytes(key[4:8], "big")


def interpretation(c_field: int, manufacturer: str, ci: int, tpl_cfg: int) -> str:
    """How a Diehl frame must be read: 'oms', 'prios', 'sap_prios', 'real_data' or '' (not Diehl)."""
    if manufacturer not in DIEHL_MANUFACTURERS or c_field not in (0x44, 0x46):
        return ""
    if ci == 0x71:
        return "real_data"
    if ci == 0x7A:
        return "real_data" if (tpl_cfg >> 8) & 0x10 else "oms"
    if 0xA0 <= ci <= 0xA7:
        return "sap_prios" if manufacturer == "SAP" else "prios"
    if ci in (0xB1, 0xB2, 0xB3):
        return "prios"
    return "oms"


def lfsr_decode(frame: bytes, seed: int) -> bytes:
    """Undo the LFSR stream over frame[15:]; the seed is mixed with header bytes 2..13."""
    key = seed
    key ^= int.from_bytes(frame[2:6], "big")
    key ^= int.from_bytes(frame[6:10], "big")
    key ^= int.from_bytes(frame[10:14], "big")
    out = bytearray()
    for byte in frame[15:]:
        for _ in range(8):
            bit = ((key >> 1) ^ (key >> 2) ^ (key >> 11) ^ (key >> 31)) & 1
            key = ((key << 1) | bit) & 0xFFFFFFFF
        out.append(byte ^ (key & 0xFF))
    return bytes(out)


def candidate_seeds(key: bytes | None) -> list[int]:
    if key is not None and len(key) >= 8:
        return [seed_from_key(key[:8])]
    return [seed_from_key(k) for k in PRIOS_DEFAULT_KEYS]


def real_data_decode(frame: bytes, key: bytes | None) -> bytes | None:
    """REAL_DATA frames (7A with the Diehl bit in CFG): the byte sum masked with EF must match CFG."""
    for seed in candidate_seeds(key):
        decoded = lfsr_decode(frame, seed)
        if decoded and (sum(decoded) & 0xEF) == (frame[14] & 0xEF):
            return decoded
    return None


def _prios(view: FrameView) -> SpecialResult | DecodeError:
    frame = view.frame
    if len(frame) < 20:
        return DecodeError("truncated", "PRIOS frame shorter than its readings")
    decoded = b""
    for seed in candidate_seeds(view.key):
        attempt = lfsr_decode(frame, seed)
        if attempt and attempt[0] == 0x4B:
            decoded = attempt
            break
    if not decoded:
        return DecodeError("wrong_key", "PRIOS check byte 4B not found with the known keys")
    out = SpecialResult(total_m3=int.from_bytes(decoded[1:5], "little") / 1000.0, keyed=view.key is not None)
    if len(decoded) > 8:
        out.target_m3 = int.from_bytes(decoded[5:9], "little") / 1000.0
    if len(decoded) > 10:
        year = ((decoded[10] & 0xF0) >> 1) + ((decoded[9] & 0xE0) >> 5)
        year += 1900 if year > 80 else 2000
        try:
            out.target_date = date(year, decoded[10] & 0x0F, decoded[9] & 0x1F)
        except ValueError:
            out.target_date = None
    out.fields["remaining_battery_life_y"] = (frame[12] & 0x1F) / 2.0
    out.fields["transmit_period_s"] = 1 << ((frame[11] & 0x0F) + 2)
    alarms: list[str] = []
    if frame[12] & 0x80:
        alarms.append("leak")
    if frame[12] & 0x20:
        alarms.append("blocked")
    if frame[13] & 0x80:
        alarms.append("backflow")
    if frame[13] & 0x40:
        alarms.append("underflow")
    if frame[13] & 0x20:
        alarms.append("overflow")
    if frame[13] & 0x10:
        alarms.append("submarine")
    if frame[13] & 0x0A:
        alarms.append("tamper")
    out.alarms = tuple(alarms)
    out.fields["previous_leak"] = bool(frame[12] & 0x40)
    return out


DRIVERS = (
    DriverSpec(
        name="izar",
        detect=tuple((m, None, None) for m in sorted(DIEHL_MANUFACTURERS)),
        special=_prios,
        special_cis=PRIOS_CIS,
        requires_total=True,
        hex_ids=True,
        vectors=(
            Vector("1944304C72242421D401A2013D4013DD8B46A4999C1293E582CC",
                   {"id": "21242472", "total_m3": 3.488, "target_m3": 3.486, "target_date": "2019-09-30"}),
            Vector("2944A511780729662366A20118001378D3B3DB8CEDD77731F25832AAF3DA8CADF9774EA673172E8C61F2",
                   {"id": "66236629", "total_m3": 16.76, "target_m3": 11.84}),
            Vector("19442423860775035048A251520015BEB6B2E1ED623A18FC74A5",
                   {"id": "48500375", "total_m3": 521.602, "target_m3": 519.147}),
        ),
    ),
    DriverSpec(
        name="hydrus",
        detect=(("DME", 0x70, 0x07), ("DME", 0x76, 0x07), ("HYD", 0x24, 0x07), ("HYD", 0x8B, 0x07),
                ("HYD", 0x8B, 0x06), ("DME", 0x70, 0x06), ("DME", 0x70, 0x16)),
        target_storage=3,
        vectors=(
            Vector("4E44A5116464646470077AED0040052F2F01FD08300C13741100007C1300000000FC101300000000FC2013000"
                   "00000726C00000B3B00000002FD748713025A6800C4016D3B177F2ACC011300020000",
                   {"id": "64646464", "total_m3": 1.174, "target_m3": 0.2}),
            Vector("1E4424238B07797389607A8F00107D041312170100426CBF23441344100100",
                   {"id": "60897379", "total_m3": 71.442}),
            Vector("6644242328001081640E7266567464A51170071F0050052C411A08674048DD6BA82A0DF79FFD401309179A893"
                   "A1BE3CE8EDC50C2A45CD7AFEC3B4CE765820BE8056C124A17416C3722985FFFF7FCEB7094901AB3A16294B511B9"
                   "A740C9F9911352B42A72FB3B0C", {"id": "64745666", "total_m3": 137.291}),
            # OMS standard layout (no storage-3 value): the billing value from 4C13 and 426C in storage 1
            Vector("2944A5112143658770077A010000000C13785634124C1301000012426C4136046D2D0D433602FD171000",
                   {"id": "87654321", "total_m3": 12345.678, "target_m3": 12000.001, "target_date": "2026-06-01",
                    "meter_time": "2026-06-03T13:45:00+00:00"}),
        ),
    ),
)
