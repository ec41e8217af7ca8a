"""AES for OMS security: mode 5 (CBC, IV from header), mode 7 (CBC, zero IV, CMAC-derived keys), ELL CTR.

Speed: building a `Cipher` costs more than decrypting a telegram, so each key gets one cached ECB
decryptor/encryptor and CBC/CTR are done on top of it (P_i = D(C_i) xor C_{i-1}; CTR = E(counter) xor C).
One cached object per key serves every IV. The cache is keyed by the key bytes themselves, so a changed
key for a meter simply misses the cache; it is bounded (LRU-ish clear) so memory stays flat.
"""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.cmac import CMAC

ZERO_BLOCK = bytes(16)
_MAX_CACHED_KEYS = 1 << 18  # ~1 KB each: bounded memory even for very large fleets


class KeyMaterial:
    """Cached AES-ECB primitives for one 16-byte key."""

    __slots__ = ("_cmac_k1", "_dec", "_enc_ctx", "key")

    def __init__(self, key: bytes) -> None:
        self.key = key
        self._dec: Any = Cipher(algorithms.AES(key), modes.ECB()).decryptor()
        self._enc_ctx: Any = None  # built on first use: most meters only ever need decryption
        self._cmac_k1: int | None = None  # CMAC subkey K1, for one-block CMACs (mode-7 key derivation)

    @property
    def _enc(self) -> Any:
        if self._enc_ctx is None:
            self._enc_ctx = Cipher(algorithms.AES(self.key), modes.ECB()).encryptor()
        return self._enc_ctx

    def ecb_decrypt(self, data: bytes) -> bytes:
        out: bytes = self._dec.update(data)
        return out

    def ecb_encrypt(self, data: bytes) -> bytes:
        out: bytes = self._enc.update(data)
        return out

    def cbc_decrypt(self, iv: bytes, data: bytes) -> bytes:
        """CBC decryption of whole blocks; len(data) must be a multiple of 16."""
        plain = self._dec.update(data)
        prev = iv + data[:-16]
        n = len(data)
        return (int.from_bytes(plain, "big") ^ int.from_bytes(prev, "big")).to_bytes(n, "big")

    def cbc_encrypt(self, iv: bytes, data: bytes) -> bytes:
        out = bytearray()
        prev = iv
        for i in range(0, len(data), 16):
            block = bytes(a ^ b for a, b in zip(data[i : i + 16], prev, strict=True))
            prev = self._enc.update(block)
            out += prev
        return bytes(out)

    def cmac_block(self, block: bytes) -> bytes:
        """AES-CMAC of exactly one whole 16-byte block: E(M xor K1), K1 from E(0) (RFC 4493), on the
        cached encryptor, so a mode-7 telegram derives its keys without building a CMAC object."""
        k1 = self._cmac_k1
        if k1 is None:
            ell = int.from_bytes(self._enc.update(ZERO_BLOCK), "big")
            k1 = ((ell << 1) & ((1 << 128) - 1)) ^ (0x87 if ell >> 127 else 0)
            self._cmac_k1 = k1
        out: bytes = self._enc.update((int.from_bytes(block, "big") ^ k1).to_bytes(16, "big"))
        return out

    def ctr_crypt(self, counter_block: bytes, data: bytes) -> bytes:
        """CTR with the last byte of the 16-byte counter block incremented per block (OMS ELL)."""
        n_blocks = (len(data) + 15) // 16
        prefix = counter_block[:15]
        start = counter_block[15]
        blocks = b"".join(prefix + bytes([(start + i) & 0xFF]) for i in range(n_blocks))
        stream = self._enc.update(blocks)[: len(data)]
        n = len(data)
        return (int.from_bytes(stream, "big") ^ int.from_bytes(data, "big")).to_bytes(n, "big")


_cache: dict[bytes, KeyMaterial] = {}


def key_material(key: bytes) -> KeyMaterial:
    """The cached primitives for `key` (O(1) lookup; the oldest entries go when the bound is reached)."""
    km = _cache.get(key)
    if km is None:
        if len(_cache) >= _MAX_CACHED_KEYS:
            # evict the oldest eighth (dicts keep insertion order): no full-cache thrash
            for old in list(_cache)[: _MAX_CACHED_KEYS // 8]:
                del _cache[old]
        km = KeyMaterial(key)
        _cache[key] = km
    return km


def aes_cmac(key: bytes, data: bytes) -> bytes:
    mac = CMAC(algorithms.AES(key))
    mac.update(data)
    return mac.finalize()


def mode5_iv(m_field: bytes, address: bytes, acc: int) -> bytes:
    """IV = M (2) || A (id 4, version, type) || 8 x access number."""
    return m_field + address + bytes([acc]) * 8


def ell_counter_block(m_field: bytes, address: bytes, cc: int, sn: bytes, fn: int = 0, bc: int = 0) -> bytes:
    """ELL AES-CTR counter block: M(2) A(6) CC(1) SN(4) FN(2, little endian) BC(1)."""
    return m_field + address + bytes([cc]) + sn + fn.to_bytes(2, "little") + bytes([bc])


def mode7_derive(master: bytes, constant: int, counter: bytes, meter_id: bytes) -> bytes:
    """OMS key derivation: CMAC(K, D || C(4) || ID(4) || 0x07 * 7). D=0x00 Kenc, 0x01 Kmac (from meter).

    The input is one whole block, so the master key's cached primitives do it (no per-telegram CMAC)."""
    return key_material(master).cmac_block(bytes([constant]) + counter + meter_id + b"\x07" * 7)


_des_cache: dict[bytes, Any] = {}


def des_cbc_decrypt(key: bytes, iv: bytes, data: bytes) -> bytes | None:
    """Single DES (as TripleDES with K1=K2=K3) for the legacy modes 2/3, CBC on one cached ECB decryptor
    per key as for AES; len(data) must be a multiple of 8. None if DES is unavailable."""
    dec = _des_cache.get(key)
    if dec is None:
        try:
            from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
        except ImportError:  # pragma: no cover - older cryptography
            return None
        if len(_des_cache) >= _MAX_CACHED_KEYS:
            _des_cache.clear()
        dec = Cipher(TripleDES(key * 3), modes.ECB()).decryptor()
        _des_cache[key] = dec
    if not data:
        return b""
    plain = dec.update(data)
    prev = iv + data[:-8]
    return (int.from_bytes(plain, "big") ^ int.from_bytes(prev, "big")).to_bytes(len(data), "big")
