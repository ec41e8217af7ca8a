"""Frame builders for tests and benchmarks: plaintext, mode 5, mode 7 (AFL + MAC), ELL CTR, format A/B."""

from __future__ import annotations

from decoders.wmbus.crc import crc16_en13757
from decoders.wmbus.link import manufacturer_field
from decoders.wmbus.security import aes_cmac, ell_counter_block, key_material, mode5_iv, mode7_derive


def link_header(meter_id: str, manufacturer: str = "KAM", version: int = 0x1B, device_type: int = 0x07,
                c_field: int = 0x44) -> bytes:
    """C, M, A (without L): 9 bytes."""
    m = manufacturer_field(manufacturer).to_bytes(2, "little")
    return bytes([c_field]) + m + bytes.fromhex(meter_id)[::-1] + bytes([version, device_type])


def water_records(total_l: int, target_l: int | None = None, flow_lh: int | None = None) -> bytes:
    out = b"\x04\x13" + total_l.to_bytes(4, "little", signed=True)
    if target_l is not None:
        out += b"\x44\x13" + target_l.to_bytes(4, "little", signed=True)
    if flow_lh is not None:
        out += b"\x02\x3b" + flow_lh.to_bytes(2, "little", signed=True)
    return out


def _finish(body: bytes) -> bytes:
    return bytes([len(body)]) + body


def plain_frame(meter_id: str, records: bytes, manufacturer: str = "KAM", acc: int = 1, sts: int = 0) -> bytes:
    head = link_header(meter_id, manufacturer)
    return _finish(head + bytes([0x7A, acc, sts, 0x00, 0x00]) + records)


def mode5_frame(meter_id: str, key: bytes, records: bytes, manufacturer: str = "KAM", acc: int = 1,
                sts: int = 0) -> bytes:
    head = link_header(meter_id, manufacturer)
    plain = b"\x2f\x2f" + records
    plain += b"\x2f" * (-len(plain) % 16)
    n = len(plain) // 16
    cfg = (5 << 8) | (n << 4)
    iv = mode5_iv(head[1:3], head[3:9], acc)
    cipher = key_material(key).cbc_encrypt(iv, plain)
    return _finish(head + bytes([0x7A, acc, sts]) + cfg.to_bytes(2, "little") + cipher)


def mode7_frame(meter_id: str, key: bytes, records: bytes, counter: int, manufacturer: str = "KAM",
                acc: int = 1, tamper_mac: bool = False) -> bytes:
    """ELL-less AFL (MCL, MCR, 8-byte CMAC) + short TPL in mode 7 (zero IV, derived keys)."""
    head = link_header(meter_id, manufacturer)
    id_le = head[3:7]
    mcr = counter.to_bytes(4, "little")
    plain = b"\x2f\x2f" + records
    plain += b"\x2f" * (-len(plain) % 16)
    n = len(plain) // 16
    cfg = (7 << 8) | (n << 4)
    kenc = mode7_derive(key, 0x00, mcr, id_le)
    kmac = mode7_derive(key, 0x01, mcr, id_le)
    cipher = key_material(kenc).cbc_encrypt(bytes(16), plain)
    tpl = bytes([0x7A, acc, 0x00]) + cfg.to_bytes(2, "little") + b"\x10" + cipher
    mcl = 0x25  # MAC type 5 (8 bytes), counter present
    mac = aes_cmac(kmac, bytes([mcl]) + mcr + tpl)[:8]
    if tamper_mac:
        mac = bytes([mac[0] ^ 1]) + mac[1:]
    fcl = 0x2000 | 0x0800 | 0x0400
    afl_body = fcl.to_bytes(2, "little") + bytes([mcl]) + mcr + mac
    afl = bytes([0x90, len(afl_body)]) + afl_body
    return _finish(head + afl + tpl)


def ell_ctr_frame(meter_id: str, key: bytes, app: bytes, manufacturer: str = "KAM", cc: int = 0x20,
                  acc: int = 0x42, session: int = 0x12345) -> bytes:
    """CI 8D with AES-CTR over PayloadCRC || app (app starts with its own CI, e.g. 0x78 + records)."""
    head = link_header(meter_id, manufacturer)
    sn = ((1 << 29) | session).to_bytes(4, "little")
    body = crc16_en13757(app).to_bytes(2, "little") + app
    enc = key_material(key).ctr_crypt(ell_counter_block(head[1:3], head[3:9], cc, sn), body)
    return _finish(head + bytes([0x8D, cc, acc]) + sn + enc)


def to_format_a(frame: bytes) -> bytes:
    """Insert format A block CRCs into a stripped frame."""
    out = bytearray(frame[:10]) + crc16_en13757(frame[:10]).to_bytes(2, "big")
    for i in range(10, len(frame), 16):
        block = frame[i : i + 16]
        out += block + crc16_en13757(block).to_bytes(2, "big")
    return bytes(out)


def to_format_b(frame: bytes) -> bytes:
    """Format B: L counts the CRCs; one after the first 126 bytes and one at the end (frames over 125 bytes)."""
    if len(frame) <= 126:
        body = bytes([frame[0] + 2]) + frame[1:]
        return body + crc16_en13757(body).to_bytes(2, "big")
    first = bytes([frame[0] + 4]) + frame[1:126]
    rest = frame[126:]
    return (first + crc16_en13757(first).to_bytes(2, "big") + rest
            + crc16_en13757(rest).to_bytes(2, "big"))
