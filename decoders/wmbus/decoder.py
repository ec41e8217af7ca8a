"""WmbusDecoder: frame bytes -> Reading or DecodeError, never an exception.

Pipeline: normalise (link CRCs; format B only as a fallback) -> link header (Diehl address fixes) ->
ELL (AES-CTR) -> AFL (MAC, fragments) -> TPL (mode 0/5/7, DES) or manufacturer CI -> records (full or
compact) -> driver rules -> plausibility (decoders.plausible).
State across frames: learned compact formats, pending AFL fragments; keys are read on every frame.
A meter with a key accepts only telegrams opened with that key (ELL, TPL or the maker's own cipher):
anything else is `unencrypted_for_keyed_meter`, refused before its records are parsed or learned.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any

from decoders.plausible import WMBUS_HEX_ID, WMBUS_ID, Rules, vet
from decoders.reading import DecodeError, DecodeResult, Reading
from decoders.wmbus import diehl_support
from decoders.wmbus.afl import AflError, AflHeader, parse_afl
from decoders.wmbus.compact import SignatureCache
from decoders.wmbus.crc import crc16_en13757
from decoders.wmbus.drivers import GENERIC, DriverSpec, FrameView, SpecialResult, find_driver
from decoders.wmbus.ell import ELL_LENGTHS, parse_ell
from decoders.wmbus.link import (
    LONG_FORMAT_B,
    WIRED_START,
    device_type_name,
    format_id,
    manufacturer_code,
    normalise_frame,
    strip_format_b,
)
from decoders.wmbus.records import Parsed, Record, RecordError, parse_records, parse_with_format
from decoders.wmbus.security import (
    KeyMaterial,
    aes_cmac,
    des_cbc_decrypt,
    ell_counter_block,
    key_material,
    mode5_iv,
    mode7_derive,
)
from decoders.wmbus.tpl import TPL_CIS, TplHeader, parse_tpl, status_words
from decoders.wmbus.units import field_value
from meterflow.plausibility import PlausibilitySettings

_FILL = b"\x2f\x2f"
_MAX_PENDING_FRAGMENTS = 10_000


class _Fail(Exception):
    """Internal short-cut: carries the DecodeError out of nested steps."""

    def __init__(self, error: DecodeError) -> None:
        super().__init__(error.code)
        self.error = error


def _open_mode5(key: bytes, iv: bytes, data: bytes, n: int) -> bytes | None:
    """The first n bytes decrypted (AES-CBC) plus the unencrypted rest, or None when the 2F2F check fails."""
    plain = key_material(key).cbc_decrypt(iv, data[:n])
    return plain + data[n:] if plain[:2] == _FILL else None


class WmbusDecoder:
    """Decodes wireless (and wired long-frame) M-Bus telegrams of water meters and others."""

    def __init__(self, keys: Mapping[str, bytes] | None = None, signature_cache: Path | None = None,
                 plausibility: PlausibilitySettings | None = None) -> None:
        self.keys: Mapping[str, bytes] = keys if keys is not None else {}
        settings = plausibility or PlausibilitySettings()
        self._rules = Rules(settings, WMBUS_ID, labels_from_input=False)
        self._rules_hex = Rules(settings, WMBUS_HEX_ID, labels_from_input=False)
        self.signatures = SignatureCache(signature_cache)
        self._fragments: dict[str, list[bytes]] = {}
        # while a frame is decoded as it is and may be decoded again as format B: the fragment lists as
        # they were before each change, so the second attempt starts from the same state
        self._journal: list[tuple[str, list[bytes] | None]] | None = None

    def save(self) -> None:
        """Persist learned compact-frame format signatures."""
        self.signatures.save()

    def decode(self, frame: bytes, normalised: bool = False) -> DecodeResult:
        """Decode one frame (format A, format B, CRC-stripped, or a wired long frame).

        normalised=True: `frame` is already `normalise_frame`'s output (as the decoder service computes it
        for its digests), so that step is not repeated. A frame of exactly L+1 bytes is first decoded as a
        CRC-stripped frame; only when that fails (an error, or records that do not parse to the end) and
        its last two bytes are the format B CRC of the rest is it decoded again without them. (Frames
        over 128 bytes whose two format B CRCs both match are read as format B straight away.)
        """
        try:
            raw = bytes(frame)
            if normalised:
                return self._decode_either(raw)
            norm = normalise_frame(raw)
            if isinstance(norm, DecodeError):
                return norm
            return self._decode_either(norm)
        except _Fail as fail:
            return fail.error
        except Exception as exc:  # last line of defence: decoding never raises
            return DecodeError("bad_record", f"undecodable frame ({type(exc).__name__}: {exc})")

    # -- steps -------------------------------------------------------------------------------------

    def _key_for(self, meter_id: str) -> bytes | None:
        key = self.keys.get(meter_id)
        if key is None and meter_id != meter_id.upper():
            key = self.keys.get(meter_id.upper())
        return key

    def _decode_either(self, frame: bytes) -> DecodeResult:
        """The frame as it is (CRC-stripped) or, when that does not validate, as format B."""
        if not frame or len(frame) != frame[0] + 1 or _wired(frame):
            return self._decode(frame)
        if len(frame) > LONG_FORMAT_B:  # two CRCs: a stripped frame matches both 1 time in 2**32
            long_b = strip_format_b(frame)
            if long_b is not None:
                return self._decode(long_b)
        self._journal = []
        try:
            first = self._attempt(frame)
        finally:
            journal, self._journal = self._journal, None
        rank = _rank(first)
        if rank == 2 or (isinstance(first, DecodeError) and first.code == "fragment_pending"):
            return first  # a stored fragment cannot be validated on its own: taken as it is
        stripped = strip_format_b(frame)
        if stripped is None:
            return first
        for meter_id, parts in reversed(journal):  # undo the first attempt's fragment changes
            if parts is None:
                self._fragments.pop(meter_id, None)
            else:
                self._fragments[meter_id] = parts
        second = self._attempt(stripped)
        return second if _rank(second) > rank else first

    def _attempt(self, frame: bytes) -> DecodeResult:
        try:
            return self._decode(frame)
        except _Fail as fail:
            return fail.error
        except Exception as exc:  # as in decode(): an attempt never raises
            return DecodeError("bad_record", f"undecodable frame ({type(exc).__name__}: {exc})")

    def _decode(self, frame: bytes) -> DecodeResult:
        """A normalised frame (CRC-stripped wireless or wired): one interpretation, no fallback."""
        if not frame:
            return DecodeError("truncated", "empty frame")
        if _wired(frame):
            return self._decode_wired(frame)
        if len(frame) < 11:
            return DecodeError("truncated", "frame shorter than a link header and CI")
        c_field = frame[1]
        m_raw = bytes(frame[2:4])
        manufacturer = manufacturer_code(m_raw[0] | (m_raw[1] << 8))
        id_bytes, version, dtype = bytes(frame[4:8]), frame[8], frame[9]
        ci = frame[10]
        cfg = (frame[13] | (frame[14] << 8)) if len(frame) >= 15 else 0
        diehl = diehl_support.interpretation(c_field, manufacturer, ci, cfg)
        if diehl in ("prios", "real_data"):  # address field in Diehl's own order
            id_bytes, version, dtype = bytes(frame[6:10]), frame[4], frame[5]
        elif diehl == "sap_prios":
            version, dtype = 0x00, 0x07
        meter_id = format_id(id_bytes)
        ident = _Ident(meter_id, manufacturer, version, dtype)
        address = bytes(frame[4:10])  # as transmitted: used in IVs and counter blocks
        try:
            return self._decode_wireless(frame, ident, m_raw, address, diehl)
        except _Fail as fail:
            err = fail.error
            return DecodeError(err.code, err.detail, meter_id=ident.meter_id, manufacturer=ident.manufacturer)

    def _decode_wireless(self, frame: bytes, ident: _Ident, m_raw: bytes, address: bytes,
                         diehl: str) -> DecodeResult:
        pos = 10
        ci = frame[pos]
        opened = False  # whether some layer was opened with the meter's key
        # ELL
        if ci in ELL_LENGTHS:
            parsed_ell = parse_ell(frame, pos)
            if parsed_ell is None:
                raise _Fail(DecodeError("truncated", "frame ends inside the ELL header"))
            ell, pos = parsed_ell
            if ell.encryption not in (0, 1):
                raise _Fail(DecodeError("unsupported_security", f"ELL encryption {ell.encryption}"))
            if ell.sn is not None:
                frame, pos, opened = self._open_ell(frame, pos, ell.cc, ell.sn, ell.encryption, ident, m_raw,
                                                    address)
            if pos >= len(frame):
                raise _Fail(DecodeError("truncated", "no application data after the ELL"))
            ci = frame[pos]
        # AFL
        afl: AflHeader | None = None
        if ci == 0x90:
            try:
                afl, pos = parse_afl(frame, pos)
            except AflError as exc:
                raise _Fail(DecodeError("truncated", str(exc))) from None
            if afl.more_fragments or afl.fragment_id > 0 or ident.meter_id in self._fragments:
                assembled = self._fragment(ident.meter_id, afl, frame[pos:])
                if assembled is None:
                    raise _Fail(DecodeError("fragment_pending", f"AFL fragment {afl.fragment_id} stored"))
                frame = frame[:pos] + assembled
            if pos >= len(frame):
                raise _Fail(DecodeError("truncated", "no TPL after the AFL"))
            ci = frame[pos]
        spec = find_driver(ident.manufacturer, ident.version, ident.device_type, ci)
        key = self._key_for(ident.meter_id)
        # manufacturer-specific payloads
        if spec.special is not None and ci in spec.special_cis:
            tpl_cfg = (frame[pos + 3] | (frame[pos + 4] << 8)) if ci == 0x7A and len(frame) > pos + 4 else 0
            view = FrameView(frame, m_raw, address, pos, tpl_cfg, key)
            result = spec.special(view)
            if isinstance(result, DecodeError):
                raise _Fail(result)
            if result is not None:
                if key is not None and not (opened or result.keyed):
                    raise _Fail(_unencrypted(ident))
                return self._reading_from_special(ident, spec, result)
        if ci not in TPL_CIS and ci != 0x71:
            if 0xA0 <= ci <= 0xB7:
                raise _Fail(DecodeError("unknown_ci", f"manufacturer-specific CI {ci:02X} without a driver"))
            raise _Fail(DecodeError("unknown_ci", f"CI {ci:02X}"))
        if ci == 0x71:
            raise _Fail(DecodeError("unknown_ci", "alarm frame (CI 71)"))
        tpl = parse_tpl(frame, pos)
        if tpl is None:
            raise _Fail(DecodeError("truncated", "frame ends inside the TPL header"))
        if tpl.id_bytes is not None and tpl.m_field is not None:
            ident = _Ident(format_id(tpl.id_bytes), manufacturer_code(tpl.m_field[0] | (tpl.m_field[1] << 8)),
                           tpl.version or 0, tpl.device_type or 0)
            spec = find_driver(ident.manufacturer, ident.version, ident.device_type, ci)
            key = self._key_for(ident.meter_id)
            iv_m, iv_a = tpl.m_field, tpl.id_bytes + bytes([ident.version, ident.device_type])
        else:
            iv_m, iv_a = m_raw, address
        payload, tpl_opened = self._open_tpl(frame, tpl, key, iv_m, iv_a, afl, diehl, ident)
        if key is not None and not (opened or tpl_opened):
            raise _Fail(_unencrypted(ident))
        if payload[:2] == _FILL:  # the decryption check (or fill): records start after it, as in plaintext
            payload = payload[2:]
        parsed = self._records(payload, tpl.compact, keyed=key is not None)
        return self._reading(ident, spec, parsed, tpl.sts)

    def _open_ell(self, frame: bytes, pos: int, cc: int, sn: bytes, enc: int, ident: _Ident,
                  m_raw: bytes, address: bytes) -> tuple[bytes, int, bool]:
        """Check (and decrypt) the ELL payload whose first two bytes are the payload CRC; True: decrypted."""
        body = frame[pos:]
        if len(body) < 2:
            raise _Fail(DecodeError("truncated", "ELL payload without its CRC"))
        if crc16_en13757(body[2:]) == int.from_bytes(body[:2], "little"):
            return frame[:pos] + body[2:], pos, False  # plaintext (never encrypted or stored decrypted)
        if enc == 0:
            raise _Fail(DecodeError("bad_crc", "ELL payload CRC mismatch"))
        key = self._key_for(ident.meter_id)
        if key is None:
            raise _Fail(DecodeError("no_key", "ELL AES-CTR frame and no key for the meter"))
        if len(key) != 16:
            raise _Fail(DecodeError("unsupported_security", "ELL needs a 16-byte AES key"))
        plain = key_material(key).ctr_crypt(ell_counter_block(m_raw, address, cc, sn), body)
        if crc16_en13757(plain[2:]) != int.from_bytes(plain[:2], "little"):
            raise _Fail(DecodeError("wrong_key", "ELL payload CRC mismatch after decryption"))
        return frame[:pos] + plain[2:], pos, True

    def _remember_fragments(self, meter_id: str) -> None:
        if self._journal is not None:
            old = self._fragments.get(meter_id)
            self._journal.append((meter_id, None if old is None else list(old)))

    def _fragment(self, meter_id: str, afl: AflHeader, data: bytes) -> bytes | None:
        self._remember_fragments(meter_id)
        parts = self._fragments.setdefault(meter_id, [])
        if afl.fragment_id == 0 or (not parts and afl.fragment_id != 0):
            parts.clear()
        parts.append(bytes(data))
        if afl.more_fragments:
            if len(self._fragments) > _MAX_PENDING_FRAGMENTS:
                for pending in list(self._fragments):
                    self._remember_fragments(pending)
                self._fragments.clear()
            return None
        del self._fragments[meter_id]
        return b"".join(parts)

    def _open_tpl(self, frame: bytes, tpl: TplHeader, key: bytes | None, iv_m: bytes, iv_a: bytes,
                  afl: AflHeader | None, diehl: str, ident: _Ident) -> tuple[bytes, bool]:
        """The plaintext application data after the TPL header; True when it was opened with `key`."""
        data = frame[tpl.end :]
        if tpl.ci in (0x78, 0x79):
            return data, False
        mode = tpl.mode
        if diehl == "real_data":
            decoded = diehl_support.real_data_decode(frame, key)
            return (decoded, key is not None) if decoded is not None else (data, False)
        if mode == 0:
            return data, False
        n = tpl.n_blocks * 16
        if data[:2] == _FILL:
            # flagged encrypted but stored already decrypted; a ciphertext that merely starts with
            # 2F2F (1 in 65536) is caught by also trying the key when there is one
            if mode == 5 and key is not None and len(key) == 16 and 0 < n <= len(data):
                opened = _open_mode5(key, mode5_iv(iv_m, iv_a, tpl.acc), data, n)
                if opened is not None:
                    return opened, True
            return data, False
        if mode == 5:
            if key is None and diehl == "oms":
                key = diehl_support.DIEHL_DEFAULT_AES_KEY
            if key is None:
                raise _Fail(DecodeError("no_key", "mode 5 frame and no key for the meter"))
            if len(key) != 16:
                raise _Fail(DecodeError("unsupported_security", "mode 5 needs a 16-byte AES key"))
            if n == 0 or n > len(data):
                n = len(data) - len(data) % 16
            if n == 0:
                raise _Fail(DecodeError("truncated", "no whole AES block to decrypt"))
            opened = _open_mode5(key, mode5_iv(iv_m, iv_a, tpl.acc), data, n)
            if opened is None:
                raise _Fail(DecodeError("wrong_key", "decrypted data does not start with 2F2F"))
            return opened, True
        if mode == 7:
            return self._open_mode7(frame, tpl, key, data, n, afl, ident), True
        if mode in (2, 3):
            if key is None:
                raise _Fail(DecodeError("no_key", "DES frame and no key for the meter"))
            if len(key) != 8:
                raise _Fail(DecodeError("unsupported_security", "DES modes need an 8-byte key"))
            if n == 0 or n > len(data):
                n = len(data) - len(data) % 8
            iv = bytes(8) if mode == 2 else (iv_m + iv_a)[:8]
            des_plain = des_cbc_decrypt(key, iv, data[:n])
            if des_plain is None:
                raise _Fail(DecodeError("unsupported_security", "DES not available"))
            if des_plain[:2] != _FILL:
                raise _Fail(DecodeError("wrong_key", "DES decrypted data does not start with 2F2F"))
            return des_plain + data[n:], True
        raise _Fail(DecodeError("unsupported_security", f"security mode {mode}"))

    def _open_mode7(self, frame: bytes, tpl: TplHeader, key: bytes | None, data: bytes, n: int,
                    afl: AflHeader | None, ident: _Ident) -> bytes:
        """Mode 7: AES-CBC, zero IV, Kenc/Kmac derived by CMAC from the AFL message counter."""
        if afl is None or afl.mcr is None:
            raise _Fail(DecodeError("unsupported_security", "mode 7 without an AFL message counter"))
        if key is None:
            raise _Fail(DecodeError("no_key", "mode 7 frame and no key for the meter"))
        if len(key) != 16:
            raise _Fail(DecodeError("unsupported_security", "mode 7 needs a 16-byte AES key"))
        id_le = bytes(frame[4:8])
        if n == 0 or n > len(data):
            n = len(data) - len(data) % 16
        kenc = mode7_derive(key, 0x00, afl.mcr, id_le)
        # per-message keys: not cached (the counter changes every frame)
        plain = KeyMaterial(kenc).cbc_decrypt(bytes(16), data[:n])
        mac_ok = True
        if afl.mac:
            kmac = mode7_derive(key, 0x01, afl.mcr, id_le)
            tpl_start = tpl.end - (13 if tpl.id_bytes is not None else 5) - (1 if tpl.cfg_ext is not None else 0)
            mac_data = afl.mac_input_prefix() + frame[tpl_start:]
            mac_ok = hmac.compare_digest(aes_cmac(kmac, mac_data)[: len(afl.mac)], afl.mac)
        if plain[:2] != _FILL:
            raise _Fail(DecodeError("wrong_key", "mode 7: no 2F2F after decryption" +
                                    ("" if mac_ok else " and MAC mismatch")))
        if not mac_ok:
            raise _Fail(DecodeError("bad_mac", "AFL MAC verification failed"))
        return plain + data[n:]

    def _records(self, payload: bytes, compact: bool, keyed: bool = False) -> Parsed:
        """keyed: the frame was opened with its meter's key (the caller refuses it otherwise), so a format
        it teaches is trusted, and a compact frame is read only with a trusted format."""
        try:
            if compact:
                if payload[:2] == _FILL:  # decrypted compact frames keep the 2F2F check bytes
                    payload = payload[2:]
                if len(payload) < 4:
                    raise _Fail(DecodeError("truncated", "compact frame without its signature"))
                sig = int.from_bytes(payload[0:2], "little")
                fmt = self.signatures.get(sig, trusted_only=keyed)
                if fmt is None:
                    raise _Fail(DecodeError("unknown_format_signature", f"format signature {sig:04x} never seen"))
                return parse_with_format(fmt, payload, 4, len(payload))
            parsed = parse_records(payload, lenient=True)
        except RecordError as exc:
            raise _Fail(DecodeError("bad_record", str(exc))) from None
        if parsed.trailing_error is None:
            self.signatures.learn(parsed.format_bytes, trusted=keyed)
        return parsed

    def _decode_wired(self, frame: bytes) -> DecodeResult:
        length = frame[1]
        if length < 3:
            return DecodeError("bad_length", "wired frame too short for C, A and CI")
        ci = frame[6]
        end = 4 + length
        if ci not in (0x72, 0x73, 0x76, 0x7A, 0x78) or (ci in (0x72, 0x73, 0x76) and length < 15):
            return DecodeError("unknown_ci", f"wired frame CI {ci:02X}")
        if ci in (0x72, 0x73, 0x76):
            ident = _Ident(format_id(frame[7:11]), manufacturer_code(frame[11] | (frame[12] << 8)),
                           frame[13], frame[14])
            sts = frame[16]
            body = frame[19:end]
        else:
            ident = _Ident(f"{frame[5]:08d}", "", 0, 0)
            sts = frame[8] if ci == 0x7A else 0
            body = frame[7 + (4 if ci == 0x7A else 0) : end]
        spec = find_driver(ident.manufacturer, ident.version, ident.device_type)
        if self._key_for(ident.meter_id) is not None:  # wired frames carry no encryption this decoder opens
            return _unencrypted(ident)
        try:
            parsed = self._records(body, False)
        except _Fail as fail:
            err = fail.error
            return DecodeError(err.code, err.detail, meter_id=ident.meter_id, manufacturer=ident.manufacturer)
        return self._reading(ident, spec, parsed, sts)

    # -- readings ----------------------------------------------------------------------------------

    def _reading(self, ident: _Ident, spec: DriverSpec, parsed: Parsed, sts: int) -> DecodeResult:
        fields: dict[str, Any] = {}
        total = target = flow = None
        target_date: date | None = None
        meter_time: datetime | None = None
        target_storage = spec.target_storage
        older_volumes: dict[int, float] = {}  # storage -> value, for the billing-value fallback
        older_dates: dict[int, date] = {}
        for rec in parsed.records:
            q = rec.info.quantity
            if rec.plain:
                value = rec.value
                if q == "volume" and isinstance(value, (int, float)):
                    if rec.storage == 0 and total is None:
                        total = float(value)
                        continue
                    if rec.storage:
                        older_volumes.setdefault(rec.storage, float(value))
                    if rec.storage == target_storage and target is None:
                        target = float(value)
                        continue
                elif q == "volume_flow" and rec.storage == 0 and flow is None and isinstance(value, (int, float)):
                    flow = float(value)
                    continue
                if q in ("date", "datetime") and rec.storage and isinstance(value, date):
                    older_dates.setdefault(rec.storage, value.date() if isinstance(value, datetime) else value)
                if q in ("date", "datetime") and rec.storage == target_storage and target_date is None:
                    if isinstance(value, datetime):
                        target_date = value.date()
                    elif isinstance(value, date):
                        target_date = value
                        continue
                elif q == "datetime" and rec.storage == 0 and meter_time is None and isinstance(value, datetime):
                    meter_time = value
                    continue
            name, value = field_value(rec)
            if q == "manufacturer_specific" and rec.vifes and rec.vifes[0] in (0x20, 0x23):
                name = "info_codes"
            base = name
            i = 2
            while name in fields:
                name = f"{base}_{i}"
                i += 1
            fields[name] = value
        if target is None and older_volumes and target_storage not in older_volumes:
            # no value at the driver's billing storage: the most recent stored value is the best guess
            # (e.g. the OMS standard 4C13/426C in storage 1 for a driver whose own storage is 3), dated
            # by its own storage's date when it has one
            storage = min(older_volumes)
            target = older_volumes[storage]
            target_date = older_dates.get(storage) or target_date
        extra_alarms: tuple[str, ...] = ()
        if spec.record_hook is not None:
            hooked = spec.record_hook(parsed.records)
            if hooked is not None:
                total = hooked.total_m3 if hooked.total_m3 is not None else total
                target = hooked.target_m3 if hooked.target_m3 is not None else target
                target_date = hooked.target_date or target_date
                fields.update(hooked.fields)
        if parsed.trailing_error is not None:
            fields["trailing_data_error"] = parsed.trailing_error
        if spec.mfct_data is not None and spec.requires_total:
            total = None  # the total of a manufacturer layout comes from that layout, never from OMS records
        if parsed.manufacturer_data is not None and spec.mfct_data is not None:
            special = spec.mfct_data(parsed.manufacturer_data)
            if special.total_m3 is not None:
                total = special.total_m3
            if special.target_m3 is not None:
                target = special.target_m3
            fields.update(special.fields)
            extra_alarms = special.alarms
        elif parsed.manufacturer_data:
            fields["manufacturer_data"] = parsed.manufacturer_data.hex()
        status, alarms = status_words(sts)
        if spec.alarms_from_fields is not None:
            extra_alarms += spec.alarms_from_fields(fields)
        all_alarms = tuple(dict.fromkeys(alarms + extra_alarms)) if extra_alarms else alarms
        return self._vet(spec, Reading(
            meter_id=ident.meter_id,
            manufacturer=ident.manufacturer,
            version=ident.version,
            device_type=device_type_name(ident.device_type),
            driver=spec.name,
            total_m3=total,
            target_m3=target,
            target_date=target_date,
            flow_m3h=flow,
            meter_time=meter_time,
            status=status,
            alarms=all_alarms,
            fields=fields,
        ))

    def _reading_from_special(self, ident: _Ident, spec: DriverSpec, result: SpecialResult) -> DecodeResult:
        return self._vet(spec, Reading(
            meter_id=ident.meter_id,
            manufacturer=ident.manufacturer,
            version=ident.version,
            device_type=device_type_name(ident.device_type),
            driver=spec.name,
            total_m3=result.total_m3,
            target_m3=result.target_m3,
            target_date=result.target_date,
            status=result.status or "OK",
            alarms=result.alarms,
            fields=dict(result.fields),
        ))

    def _vet(self, spec: DriverSpec, reading: Reading) -> DecodeResult:
        """Driver sense (a layout that always has a total) and the plausibility rules of every path."""
        if spec.requires_total and reading.total_m3 is None:
            return DecodeError("missing_volume", f"a {spec.name} frame always carries its total volume; this one "
                               "has none (not the driver's layout: wrong key, or a forged frame)",
                               meter_id=reading.meter_id, manufacturer=reading.manufacturer)
        return vet(reading, self._rules_hex if spec.hex_ids else self._rules)


def _unencrypted(ident: _Ident) -> DecodeError:
    return DecodeError("unencrypted_for_keyed_meter", "the meter has a key but this telegram was not encrypted "
                       "with it", meter_id=ident.meter_id, manufacturer=ident.manufacturer)


def _wired(frame: bytes) -> bool:
    return frame[0] == WIRED_START and len(frame) >= 6 and frame[3] == WIRED_START


def _rank(result: DecodeResult) -> int:
    """2: a reading whose records parse to the end; 1: a reading with unparsable trailing data; 0: an error."""
    if isinstance(result, Reading):
        return 1 if "trailing_data_error" in result.fields else 2
    return 0


class _Ident:
    __slots__ = ("device_type", "manufacturer", "meter_id", "version")

    def __init__(self, meter_id: str, manufacturer: str, version: int, device_type: int) -> None:
        self.meter_id = meter_id
        self.manufacturer = manufacturer
        self.version = version
        self.device_type = device_type


__all__ = ["GENERIC", "Record", "WmbusDecoder"]
