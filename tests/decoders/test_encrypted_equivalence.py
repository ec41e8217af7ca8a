"""An encrypted telegram decodes exactly as its plaintext form does, for every driver.

Vectors: every plaintext telegram of a driver (its own vectors and the corpus cases it decodes) encrypted
here, with the fleet encoder's AES (fixtures/oms.py) for mode 5 and the `cryptography` package for ELL
AES-CTR and mode 7 (AFL CMAC), under an all-zero key and a fleet key. Drivers whose makers use their own
cipher (Apator NA-1, Diehl PRIOS) are re-keyed in their own scheme. Then: the encrypted frame with its key
gives the same Reading, field for field, as the plaintext without one; the plaintext with the key
configured is refused (`unencrypted_for_keyed_meter`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.cmac import CMAC
from wmbus_corpus import load_cases

from decoders.reading import DecodeError, Reading
from decoders.wmbus import WmbusDecoder
from decoders.wmbus.afl import parse_afl
from decoders.wmbus.crc import crc16_en13757
from decoders.wmbus.drivers import ALL_DRIVERS
from decoders.wmbus.drivers.diehl import (
    DIEHL_MANUFACTURERS,
    PRIOS_CIS,
    PRIOS_DEFAULT_KEYS,
    lfsr_decode,
    seed_from_key,
)
from decoders.wmbus.ell import ELL_LENGTHS, parse_ell
from decoders.wmbus.link import format_id, manufacturer_code
from decoders.wmbus.tpl import parse_tpl
from fixtures.oms import encrypt_mode5
from fixtures.telegrams import meter_key

KEYS = {"zero": bytes(16), "fleet": meter_key("10000001")}
DEFAULT_KEYED = frozenset({"izar", "apatorna1"})  # their "plaintext" is under the maker's public default key
Telegrams = tuple[bytes, ...]  # earlier frames of the same meter (compact formats), then the frame itself


def _with_length(body: bytes) -> bytes:
    return bytes([len(body)]) + body


def _aes(key: bytes, mode: Any, data: bytes, decrypt: bool = False) -> bytes:
    ctx = Cipher(algorithms.AES(key), mode)
    op = ctx.decryptor() if decrypt else ctx.encryptor()
    return op.update(data) + op.finalize()


def _cmac(key: bytes, data: bytes) -> bytes:
    mac = CMAC(algorithms.AES(key))
    mac.update(data)
    return mac.finalize()


def _tpl_position(frame: bytes) -> tuple[int, int | None]:
    """Index of the TPL CI after an ELL without session data and an AFL (-1: none); the AFL's index."""
    pos, afl_pos = 10, None
    if frame[pos] in ELL_LENGTHS:
        parsed = parse_ell(frame, pos)
        if parsed is None or parsed[0].sn is not None:
            return -1, None
        pos = parsed[1]
    if frame[pos] == 0x90:
        afl_pos = pos
        pos = parse_afl(frame, pos)[1]
    return pos, afl_pos


def mode5(frame: bytes, key: bytes) -> bytes | None:
    """Short or long TPL in mode 0 (or mode 5 stored decrypted) -> mode 5: whole 2F2F-led blocks encrypted."""
    pos, afl_pos = _tpl_position(frame)
    tpl = parse_tpl(frame, pos) if pos > 0 else None
    if afl_pos is not None or tpl is None or tpl.ci not in (0x7A, 0x72) or tpl.mode not in (0, 5):
        return None
    data = frame[tpl.end :]
    if tpl.mode == 5 and data[:2] != b"\x2f\x2f":
        return None
    plain = data if data[:2] == b"\x2f\x2f" else b"\x2f\x2f" + data
    if len(plain) < 16:
        plain += b"\x2f" * (16 - len(plain))
    n = len(plain) // 16
    cfg = (tpl.cfg & ~0x1FF0) | (5 << 8) | (n << 4)
    if tpl.ci == 0x72:
        assert tpl.m_field is not None and tpl.id_bytes is not None
        iv = tpl.m_field + tpl.id_bytes + bytes([tpl.version or 0, tpl.device_type or 0])
    else:
        iv = frame[2:10]
    cipher = encrypt_mode5(key, iv + bytes([tpl.acc]) * 8, plain[: 16 * n]) + plain[16 * n :]
    return _with_length(frame[1 : tpl.end - 2] + cfg.to_bytes(2, "little") + cipher)


def mode7(frame: bytes, key: bytes) -> bytes | None:
    """AFL + TPL in mode 7 stored decrypted -> encrypted with the counter-derived key, MAC recomputed."""
    pos, afl_pos = _tpl_position(frame)
    tpl = parse_tpl(frame, pos) if pos > 0 else None
    if afl_pos is None or tpl is None or tpl.mode != 7 or frame[tpl.end : tpl.end + 2] != b"\x2f\x2f":
        return None
    afl = parse_afl(frame, afl_pos)[0]
    assert afl.mcr is not None
    derive = b"\x07" * 7
    kenc = _cmac(key, b"\x00" + afl.mcr + frame[4:8] + derive)
    kmac = _cmac(key, b"\x01" + afl.mcr + frame[4:8] + derive)
    data = frame[tpl.end :]
    n = tpl.n_blocks * 16 if 0 < tpl.n_blocks * 16 <= len(data) else len(data) - len(data) % 16
    out = bytearray(frame[: tpl.end] + _aes(kenc, modes.CBC(bytes(16)), data[:n]) + data[n:])
    if afl.mac:
        mac = _cmac(kmac, afl.mac_input_prefix() + bytes(out[pos:]))[: len(afl.mac)]
        at = frame.index(afl.mac, afl_pos)
        out[at : at + len(mac)] = mac
    return bytes(out)


def _ctr(frame: bytes, key: bytes, cc: int, sn: bytes, body: bytes) -> bytes:
    # OMS increments only the last counter byte; from 0 and for < 256 blocks that is plain AES-CTR
    return _aes(key, modes.CTR(frame[2:10] + bytes([cc]) + sn + bytes(3)), body)


def ell(frame: bytes, key: bytes) -> bytes | None:
    """ELL AES-CTR (CI 8D) around everything after the link header, or re-encrypting a stored-plain 8D."""
    ci = frame[10]
    if ci == 0x8D:
        head, body = frame[:17], frame[17:]
        if crc16_en13757(body[2:]) != int.from_bytes(body[:2], "little"):
            return None
        return head + _ctr(frame, key, frame[11], frame[13:17], body)
    diehl = manufacturer_code(int.from_bytes(frame[2:4], "little")) in DIEHL_MANUFACTURERS
    if ci in ELL_LENGTHS or ci == 0x90 or diehl:
        return None  # nested ELL/AFL not spoken; Diehl's layouts read header bytes at fixed places
    if apatorna1(frame, key) is not None:
        return None  # already encrypted inside, under the maker's default key
    cc, sn = 0x20, ((1 << 29) | 0x4711).to_bytes(4, "little")
    app = frame[10:]
    body = crc16_en13757(app).to_bytes(2, "little") + app
    return _with_length(frame[1:10] + bytes([0x8D, cc, 0x42]) + sn + _ctr(frame, key, cc, sn, body))


def prios(frame: bytes, key: bytes) -> bytes | None:
    """Diehl PRIOS: the LFSR stream of the default key undone, then applied with the meter's own key."""
    if frame[10] not in PRIOS_CIS or manufacturer_code(int.from_bytes(frame[2:4], "little")) not in DIEHL_MANUFACTURERS:
        return None
    for default in PRIOS_DEFAULT_KEYS:
        plain = lfsr_decode(frame, seed_from_key(default))
        if plain[:1] == b"\x4b":
            return frame[:15] + lfsr_decode(frame[:15] + plain, seed_from_key(key[:8]))
    return None


def apatorna1(frame: bytes, key: bytes) -> bytes | None:
    """Apator NA-1: one AES-CBC block under the all-zero default key, re-encrypted under `key`."""
    if frame[2:4] != bytes.fromhex("0106") or frame[10] not in (0xA0, 0xA1) or len(frame) < 29:
        return None
    iv = frame[2:10] + bytes([frame[11]]) * 8
    if key == bytes(16):
        return None  # that is the default key the frame already has
    block = _aes(bytes(16), modes.CBC(iv), frame[13:29], decrypt=True)
    return frame[:13] + encrypt_mode5(key, iv, block) + frame[29:]


FORMS: dict[str, Callable[[bytes, bytes], bytes | None]] = {
    "mode5": mode5, "mode7": mode7, "ell": ell, "prios": prios, "apatorna1": apatorna1,
}


def _plaintext_telegrams() -> Iterator[tuple[str, Telegrams, Reading]]:
    """(driver, frames, reading without keys) for each telegram that decodes to a driver's reading."""
    sources: list[Telegrams] = [
        (*(bytes.fromhex(h) for h in vec.preceding_hex), bytes.fromhex(vec.telegram_hex))
        for spec in ALL_DRIVERS for vec in spec.vectors
    ]
    sources += [(*(bytes.fromhex(h) for h in case["preceding_telegrams_hex"]), bytes.fromhex(case["telegram_hex"]))
                for case in load_cases() if not case["key"]]
    seen: set[Telegrams] = set()
    for frames in sources:
        if frames in seen:
            continue
        seen.add(frames)
        result = _decode({}, frames)
        if isinstance(result, Reading) and result.driver != "generic":
            yield result.driver, frames, result


def _decode(keys: dict[str, bytes], frames: Telegrams) -> Reading | DecodeError:
    dec = WmbusDecoder(keys=keys)
    for earlier in frames[:-1]:
        dec.decode(earlier)
    return dec.decode(frames[-1])


def _encrypted(frames: Telegrams, form: str, key: bytes) -> Telegrams | None:
    """Each frame (cut to its L-field, as the decoder reads it) in the given encrypted form."""
    out = tuple(FORMS[form](frame[: frame[0] + 1], key) for frame in frames)
    return None if any(f is None for f in out) else out  # type: ignore[return-value]


PLAIN = list(_plaintext_telegrams())
VECTORS = [
    pytest.param(frames, encrypted, key, want, id=f"{driver}-{form}-{name}-{i}")
    for i, (driver, frames, want) in enumerate(PLAIN)
    for form in FORMS for name, key in KEYS.items()
    if (encrypted := _encrypted(frames, form, key)) is not None
]


@pytest.mark.parametrize(("plain", "encrypted", "key", "want"), VECTORS)
def test_encrypted_decodes_exactly_as_its_plaintext(plain: Telegrams, encrypted: Telegrams, key: bytes,
                                                    want: Reading) -> None:
    assert encrypted[-1] != plain[-1]
    keys = {want.meter_id: key, format_id(plain[-1][4:8]): key}
    assert _decode(keys, encrypted) == want
    refused = _decode(keys, plain)
    if want.driver not in DEFAULT_KEYED:
        assert isinstance(refused, DecodeError) and refused.code == "unencrypted_for_keyed_meter", refused


def test_every_driver_has_encrypted_vectors_under_both_keys() -> None:
    for name in KEYS:
        covered = {str(param.id).split("-")[0] for param in VECTORS if f"-{name}-" in str(param.id)}
        # apatorna1's frames already carry the all-zero default key: re-keyed under the fleet key only
        assert covered | ({"apatorna1"} if name == "zero" else set()) == {spec.name for spec in ALL_DRIVERS}


def test_a_wrong_key_is_an_error_never_a_reading() -> None:
    checked = 0
    for driver, frames, want in PLAIN:
        if driver != "apator162":
            continue
        encrypted = _encrypted(frames, "mode5", KEYS["fleet"])
        assert encrypted is not None
        result = _decode({want.meter_id: KEYS["zero"]}, encrypted)
        assert isinstance(result, DecodeError) and result.code == "wrong_key", result
        checked += 1
    assert checked >= 10
