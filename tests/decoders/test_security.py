"""Mode 5, mode 7 (CMAC key derivation, MAC) and ELL AES-CTR, checked against independent computations."""

from __future__ import annotations

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.cmac import CMAC

from decoders.reading import DecodeError, Reading
from decoders.wmbus import WmbusDecoder
from decoders.wmbus.security import ell_counter_block, key_material, mode7_derive
from decoders.wmbus.testing import ell_ctr_frame, mode5_frame, mode7_frame, water_records

KEY = bytes(range(16))
METER = "12345678"


def test_mode7_key_derivation_matches_cmac_primitive() -> None:
    counter = (0x01020304).to_bytes(4, "little")
    id_le = bytes.fromhex(METER)[::-1]
    # OMS: Kenc = CMAC(K, 0x00 || counter(4) || id(4) || 07 x 7)
    block = b"\x00" + counter + id_le + b"\x07" * 7
    assert len(block) == 16
    mac = CMAC(algorithms.AES(KEY))
    mac.update(block)
    assert mode7_derive(KEY, 0x00, counter, id_le) == mac.finalize()
    # a hand-built single-block CMAC: K1 from L = AES(K, 0); complete block -> AES(K, M xor K1)
    enc = Cipher(algorithms.AES(KEY), modes.ECB()).encryptor()
    big_l = int.from_bytes(enc.update(bytes(16)), "big")
    k1 = (big_l << 1) & ((1 << 128) - 1)
    if big_l >> 127:
        k1 ^= 0x87
    expected = enc.update((int.from_bytes(block, "big") ^ k1).to_bytes(16, "big"))
    assert mode7_derive(KEY, 0x00, counter, id_le) == expected
    assert mode7_derive(KEY, 0x01, counter, id_le) != expected


def test_mode7_derivation_on_cached_keys_equals_cmac_for_many_keys() -> None:
    import hashlib

    for i in range(64):  # both branches of the K1 doubling (top bit of E(0) set or not) occur
        key = hashlib.sha256(bytes([i])).digest()[:16]
        block = bytes([i & 1]) + i.to_bytes(4, "little") + bytes.fromhex(METER)[::-1] + b"\x07" * 7
        mac = CMAC(algorithms.AES(key))
        mac.update(block)
        assert mode7_derive(key, i & 1, i.to_bytes(4, "little"), bytes.fromhex(METER)[::-1]) == mac.finalize()


def test_mode7_roundtrip_with_mac() -> None:
    frame = mode7_frame(METER, KEY, water_records(12345, 11000), counter=77)
    result = WmbusDecoder(keys={METER: KEY}).decode(frame)
    assert isinstance(result, Reading), result
    assert result.total_m3 == 12.345 and result.target_m3 == 11.0


def test_mode7_bad_mac_and_wrong_key() -> None:
    tampered = mode7_frame(METER, KEY, water_records(1), counter=5, tamper_mac=True)
    result = WmbusDecoder(keys={METER: KEY}).decode(tampered)
    assert isinstance(result, DecodeError) and result.code == "bad_mac"
    good = mode7_frame(METER, KEY, water_records(1), counter=5)
    wrong = WmbusDecoder(keys={METER: bytes(16)}).decode(good)
    assert isinstance(wrong, DecodeError) and wrong.code == "wrong_key"
    assert WmbusDecoder().decode(good) == DecodeError("no_key", "mode 7 frame and no key for the meter",
                                                      meter_id=METER, manufacturer="KAM")


def test_ell_ctr_counter_block_layout_and_decrypt() -> None:
    m, a, cc, sn = b"\x2d\x2c", bytes.fromhex("78563412" "1b16"), 0x20, bytes.fromhex("45230120")
    block = ell_counter_block(m, a, cc, sn)
    assert block == m + a + bytes([cc]) + sn + b"\x00\x00" + b"\x00"
    # CTR against the library's own CTR mode (which increments the whole block; equal for < 256 blocks)
    data = bytes(range(40))
    ours = key_material(KEY).ctr_crypt(block, data)
    ref = Cipher(algorithms.AES(KEY), modes.CTR(block)).encryptor().update(data)
    assert ours == ref
    frame = ell_ctr_frame(METER, KEY, b"\x78" + water_records(4321))
    result = WmbusDecoder(keys={METER: KEY}).decode(frame)
    assert isinstance(result, Reading) and result.total_m3 == 4.321
    wrong = WmbusDecoder(keys={METER: bytes(16)}).decode(frame)
    assert isinstance(wrong, DecodeError) and wrong.code == "wrong_key"


def test_mode5_keys_are_read_live_and_wrong_key_reported() -> None:
    keys: dict[str, bytes] = {}
    dec = WmbusDecoder(keys=keys)
    frame = mode5_frame(METER, KEY, water_records(999))
    first = dec.decode(frame)
    assert isinstance(first, DecodeError) and first.code == "no_key"
    keys[METER] = bytes(16)
    second = dec.decode(frame)
    assert isinstance(second, DecodeError) and second.code == "wrong_key"
    keys[METER] = KEY
    third = dec.decode(frame)
    assert isinstance(third, Reading) and third.total_m3 == 0.999


def test_afl_fragments_reassemble() -> None:
    from decoders.wmbus.testing import link_header

    head = link_header(METER, "KAM")
    tpl = bytes([0x7A, 1, 0, 0, 0]) + water_records(5555, 5000)
    part1, part2 = tpl[:7], tpl[7:]

    def frag(fid: int, more: bool, data: bytes) -> bytes:
        fcl = (0x4000 if more else 0) | fid
        body = head + bytes([0x90, 2]) + fcl.to_bytes(2, "little") + data
        return bytes([len(body)]) + body

    dec = WmbusDecoder()
    first = dec.decode(frag(0, True, part1))
    assert isinstance(first, DecodeError) and first.code == "fragment_pending"
    second = dec.decode(frag(1, False, part2))
    assert isinstance(second, Reading), second
    assert second.total_m3 == 5.555 and second.target_m3 == 5.0


def test_des_cbc_on_a_cached_ecb_decryptor_equals_cbc() -> None:
    import hashlib

    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES

    from decoders.wmbus.security import des_cbc_decrypt

    for i in range(20):  # the cached decryptor serves every IV and frame of its key
        digest = hashlib.sha256(bytes([i])).digest()
        key, iv, data = digest[:8], digest[8:16], digest * (i % 3 + 1)
        ref = Cipher(TripleDES(key * 3), modes.CBC(iv)).decryptor()
        want = ref.update(data) + ref.finalize()
        assert des_cbc_decrypt(key, iv, data) == want
        assert des_cbc_decrypt(key, iv, data) == want  # the cached decryptor keeps no state between frames
