"""Secrets the application keeps for itself: the customer-link secret and the master key that seals meters'
AES keys at rest.

A secret that is not configured is generated once and kept in a file under data_dir readable by its owner
only (0600), so no installation ever runs on a guessable default such as "change-me". Sealing uses AES-GCM
(cryptography) with the meter id as associated data: a sealed key copied onto another meter does not open.
A sealed value names the fingerprint of the master key that sealed it, so rotation (a new master key, the
old ones kept in `previous_master_keys` until `meterflow keys rotate` has resealed everything) and a missing
key give a clear error instead of garbage.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from meterflow.config import Settings, load_settings

MAGIC = b"MFK1"
FINGERPRINT_BYTES = 4
NONCE_BYTES = 12
PLAIN_KEY_BYTES = 16
WEAK_SECRETS = frozenset({"change-me", "changeme", "secret", "password", "test", ""})


class SecretError(RuntimeError):
    """A secret is missing, weak, or does not open what it should; the message says what to do."""


def kept_secret(path: Path, nbytes: int = 32) -> bytes:
    """The secret in `path`, created (random, mode 0600) when the file does not exist yet."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for _ in range(50):  # another process may be writing it this very moment
            data = path.read_bytes().strip()
            if len(data) >= 16:
                return data
            time.sleep(0.02)
        raise SecretError(f"{path} holds a secret shorter than 16 bytes: delete it to have a new one made") \
            from None
    value = base64.urlsafe_b64encode(secrets.token_bytes(nbytes))
    with os.fdopen(fd, "wb") as fh:
        fh.write(value + b"\n")
    return value


def link_secret(settings: Settings) -> bytes:
    """The secret that signs customer links: configured (and not weak), else kept under data_dir."""
    configured = settings.api.customer_link_secret
    if configured is not None:
        value = configured.get_secret_value()
        if value.strip().lower() in WEAK_SECRETS or len(value) < 16:
            raise SecretError("api.customer_link_secret is a guessable or short value (use 16+ random characters, "
                              "e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`), or unset it "
                              "to have one generated and kept in data_dir/link-secret")
        return value.encode()
    return kept_secret(Path(settings.data_dir) / "link-secret")


def _decode_master(text: str) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(text.strip() + "=" * (-len(text.strip()) % 4))
    except (binascii.Error, ValueError) as exc:
        raise SecretError("secrets.master_key is not base64 (make one: meterflow keys master-key)") from exc
    if len(raw) != 32:
        raise SecretError(f"secrets.master_key must be 32 bytes (base64 of 32 random bytes), got {len(raw)}")
    return raw


def fingerprint(master: bytes) -> bytes:
    return hashlib.sha256(b"meterflow-master-key:" + master).digest()[:FINGERPRINT_BYTES]


@functools.lru_cache(maxsize=8)
def _aead(master: bytes) -> AESGCM:
    """One cipher object per master key: loading 100,000 keys must not build 100,000 of them."""
    return AESGCM(master)


def new_master_key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


@dataclass(frozen=True)
class Keyring:
    """The current master key (seals) and every accepted one (opens), by fingerprint."""

    current: bytes
    accepted: dict[bytes, bytes]

    @classmethod
    def from_settings(cls, settings: Settings) -> Keyring:
        configured = settings.secrets.master_key
        if configured is not None:
            current = _decode_master(configured.get_secret_value())
        else:
            path = Path(settings.secrets.master_key_file).expanduser()
            current = _decode_master(kept_secret(path).decode())
        keys = [current, *(_decode_master(k.get_secret_value()) for k in settings.secrets.previous_master_keys)]
        return cls(current, {fingerprint(k): k for k in keys})

    def seal(self, meter_id: str, key: bytes) -> bytes:
        if len(key) != PLAIN_KEY_BYTES:
            raise SecretError(f"an AES-128 key is {PLAIN_KEY_BYTES} bytes, got {len(key)}")
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = _aead(self.current).encrypt(nonce, key, meter_id.encode())
        return MAGIC + fingerprint(self.current) + nonce + sealed

    def open(self, meter_id: str, value: bytes) -> bytes:
        """The plain key of a sealed value (a legacy unsealed 16-byte key passes as it is)."""
        if len(value) == PLAIN_KEY_BYTES:
            return value
        if not value.startswith(MAGIC):
            raise SecretError(f"the key of meter {meter_id} is neither sealed nor a 16-byte key")
        fp = value[len(MAGIC):len(MAGIC) + FINGERPRINT_BYTES]
        master = self.accepted.get(fp)
        if master is None:
            raise SecretError(f"the key of meter {meter_id} was sealed with master key {fp.hex()}, which is not "
                              "configured: set secrets.master_key (or add it to secrets.previous_master_keys)")
        body = value[len(MAGIC) + FINGERPRINT_BYTES:]
        try:
            return _aead(master).decrypt(body[:NONCE_BYTES], body[NONCE_BYTES:], meter_id.encode())
        except InvalidTag as exc:
            raise SecretError(f"the sealed key of meter {meter_id} does not open (tampered, or moved "
                              "from another meter)") from exc

    def is_current(self, value: bytes) -> bool:
        return value.startswith(MAGIC + fingerprint(self.current))


def default_keyring() -> Keyring:
    """The keyring of the settings in force (environment and settings file) for callers without settings."""
    return Keyring.from_settings(load_settings())
