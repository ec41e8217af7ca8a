"""The decoder's pure part: an MQTT message (topic + payload) -> staged frames and dead letters. No I/O.

Nothing a frame contains can stop it: decoding, checking and encoding of each frame run under their own
guard, so a frame that breaks any of them (a decoder bug, a value that JSON cannot hold, a reading outside
the plausibility rules, text with NUL bytes) becomes a dead letter with a reason, and the frames around it
are staged as usual. The gateway id is the topic's, never the envelope's: the broker's ACL vouches for
the topic, nobody vouches for the payload.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from decoders.reading import DecodeError, Reading
from meterflow.envelope import EnvelopeError, decode_batch, gateway_from_topic
from meterflow.plausibility import PlausibilitySettings, Refusal, check_index, check_time
from storage.writer import DeadLetter, StagedFrame

KINDS = ("wmbus", "modbus", "wmbusmeters")
# a frame failing with these may decode once a (new) key for its meter is loaded; the decoder reports
# wrong_key rather than no_key for makes with well-known default keys
KEY_CODES = frozenset({"no_key", "wrong_key"})
# readings.time is the meter's clock unless that clock is plainly wrong (then the gateway receive time)
CLOCK_UNSET_BEFORE = datetime(2001, 1, 1, tzinfo=UTC)
CLOCK_AHEAD_LIMIT = timedelta(days=1)
MAX_TEXT = 200  # longest meter id, status or alarm word stored
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_BATCH_ID = re.compile(rb'"batch"\s*:\s*"([^"\\]{1,200})"')


def digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


def _utc(t: Any, fallback: datetime) -> datetime:
    if isinstance(t, (int, float)) and not isinstance(t, bool) and 0 < t < 1e11:
        return datetime.fromtimestamp(t, UTC)
    return fallback


def _rssi(value: Any) -> int | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and -32768 <= value <= 32767:
        return int(value)
    return None


def clean_text(text: str | None) -> str | None:
    """Text as PostgreSQL can store it: no NUL or other control characters, bounded length."""
    if text is None:
        return None
    if _CONTROL.search(text):
        text = _CONTROL.sub("", text)
    return text[:MAX_TEXT]


def _clean_json(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {str(k).replace("\x00", ""): _clean_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean_json(v) for v in value]
    return value


def encode_fields(fields: Mapping[str, Any]) -> bytes | None:
    """The jsonb of a reading's extra fields; NUL removed (jsonb refuses \\u0000). Raises TypeError for
    what JSON cannot hold (an integer beyond 64 bits)."""
    if not fields:
        return None
    data = orjson.dumps(fields, default=str)
    if b"\\u0000" in data:
        data = orjson.dumps(_clean_json(fields), default=str)
    return data


class BadValue(Exception):
    """A decoded value that must not reach the database; carries the dead letter's code."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.reason)
        self.code = refusal.code


class FrameFailed(Exception):
    """One frame failed (its cause is __cause__); carries what its dead letter needs."""

    def __init__(self, frame: bytes, meter_id: str | None = None) -> None:
        super().__init__("frame failed")
        self.frame = frame
        self.meter_id = meter_id


def _check(refusal: Refusal | None) -> None:
    if refusal is not None:
        raise BadValue(refusal)


@dataclass
class Processed:
    """What one message (or one retried dead letter) gives: staged frames, dead letters, and whom to ack."""

    rows: list[StagedFrame] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    gateway_id: str | None = None
    batch_id: str | None = None

    def split(self) -> tuple[list[StagedFrame], list[DeadLetter]]:
        return self.rows, self.dead


class FrameProcessor:
    """Message -> staged frames and dead letters. One instance per service (the decoder keeps caches)."""

    def __init__(self, keys: Mapping[str, bytes], timezone: str = "UTC", wmbus_decoder: Any | None = None,
                 plausibility: PlausibilitySettings | None = None) -> None:
        self.keys = keys
        self.tz = ZoneInfo(timezone)
        self.plausibility = plausibility or PlausibilitySettings()
        self._wmbus = wmbus_decoder
        self.no_key_seen = False

    @property
    def wmbus(self) -> Any:
        if self._wmbus is None:
            from decoders.wmbus import WmbusDecoder

            self._wmbus = WmbusDecoder(self.keys, plausibility=self.plausibility)
        return self._wmbus

    # -- public ------------------------------------------------------------------------------------------

    def process(self, topic: str, payload: bytes, now: datetime | None = None) -> Processed:
        """One MQTT message. The gateway is the topic's; the batch id (for the commit ack) the envelope's."""
        now = now or datetime.now(UTC)
        kind = topic.rsplit("/", 1)[-1]
        gw = gateway_from_topic(topic)
        out = Processed(gateway_id=gw)
        if kind == "wmbusmeters":
            self._guarded(out, "wmbusmeters", gw, now, payload, partial(self._wmbusmeters, out, gw, payload, now))
            return out
        try:
            batch = decode_batch(payload)
            if batch.kind != kind or kind not in ("wmbus", "modbus"):
                raise EnvelopeError(f"envelope kind {batch.kind!r} on topic kind {kind!r}")
        except EnvelopeError as exc:
            found = _BATCH_ID.search(payload[:4096])
            out.batch_id = found.group(1).decode("utf-8", "replace") if found else None
            out.dead.append(DeadLetter(digest(payload), kind, "bad_envelope", str(exc), None, None, gw, now, payload))
            return out
        out.batch_id = batch.batch_id or None
        self.frames(out, kind, gw, batch.frames, now)
        return out

    def frames(self, out: Processed, kind: str, gw: str | None, frames: list[Any], now: datetime) -> None:
        """Stage envelope frames of one kind into `out`, each under its own guard."""
        one = self._wmbus_frame if kind == "wmbus" else self._modbus_frame
        for f in frames:
            if not isinstance(f, dict):
                body = _json_or_repr(f)
                out.dead.append(DeadLetter(digest(body), kind, "bad_frame", "frame entry is not a JSON object",
                                           None, None, gw, now, body))
                continue
            received = _utc(f.get("t"), now)
            self._guarded(out, kind, gw, received, None, partial(one, out, gw, f, received))

    def retry(self, kind: str, code: str, gw: str | None, received: datetime, payload: bytes,
              rssi: int | None = None) -> Processed:
        """Decode a dead letter again (after its key arrived, or a decoder fix): `reprocess`, the service's
        no-key retry and the ingest benchmark call this."""
        out = Processed(gateway_id=gw)
        if code == "bad_envelope" and kind in ("wmbus", "modbus"):
            return self.process(f"reprocess/{gw or 'unknown'}/{kind}", payload, received)
        if kind == "wmbus":
            self.frames(out, kind, gw, [{"t": received.timestamp(), "hex": payload.hex(), "rssi": rssi}], received)
        elif kind == "modbus":
            try:
                frame = orjson.loads(payload)
            except orjson.JSONDecodeError:
                frame = None
            self.frames(out, kind, gw, [frame] if frame is not None else [], received)
        elif kind == "wmbusmeters":
            self._guarded(out, kind, gw, received, payload, partial(self._wmbusmeters, out, gw, payload, received))
        return out

    # -- one frame -----------------------------------------------------------------------------------------

    def _guarded(self, out: Processed, kind: str, gw: str | None, received: datetime, payload: bytes | None,
                 work: Callable[[], None]) -> None:
        """Run one frame's work; whatever it raises dead-letters that frame only."""
        rows, dead = len(out.rows), len(out.dead)
        try:
            work()
        except Exception as exc:  # a frame must never stop the batch
            del out.rows[rows:], out.dead[dead:]
            body, meter_id = payload or b"", None
            cause: BaseException = exc
            if isinstance(exc, FrameFailed):
                body, meter_id, cause = exc.frame, exc.meter_id, exc.__cause__ or exc
            if isinstance(cause, BadValue):
                code, detail = cause.code, str(cause)
            else:
                code, detail = "decoder_failed", f"{cause.__class__.__name__}: {cause}"
            out.dead.append(DeadLetter(digest(body or detail.encode()), kind, code, detail[:1000],
                                       clean_text(meter_id), None, gw, received, body))

    def _wmbus_frame(self, out: Processed, gw: str | None, f: dict[str, Any], received: datetime) -> None:
        from decoders.wmbus import normalise_frame, peek_header

        hx = f.get("hex")
        try:
            raw = bytes.fromhex(hx)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            text = str(hx).encode()
            out.dead.append(DeadLetter(digest(text), "wmbus", "not_hex", "frame is not a hex string", None, None,
                                       gw, received, text))
            return
        norm = normalise_frame(raw)  # the digest is over the normalised frame; decode is told so
        if isinstance(norm, DecodeError):
            head = peek_header(raw)
            out.dead.append(DeadLetter(digest(raw), "wmbus", norm.code, norm.detail,
                                       clean_text(head[0]) if head else None, clean_text(head[1]) if head else None,
                                       gw, received, raw))
            return
        d = digest(norm)
        rssi = _rssi(f.get("rssi"))
        try:
            res = self.wmbus.decode(norm, normalised=True)
        except Exception as exc:
            raise FrameFailed(norm) from exc
        if isinstance(res, Reading):
            self._stage(out, res, d, "wmbus", gw, received, rssi, norm)
            return
        if res.code in KEY_CODES:
            self.no_key_seen = True
        meter_id = clean_text(res.meter_id)
        out.rows.append(StagedFrame(d, "wmbus", meter_id, gw, received, rssi, norm, False))
        out.dead.append(DeadLetter(d, "wmbus", res.code, res.detail, meter_id, clean_text(res.manufacturer), gw,
                                   received, norm))

    def _modbus_frame(self, out: Processed, gw: str | None, f: dict[str, Any], received: datetime) -> None:
        body = orjson.dumps(f, option=orjson.OPT_SORT_KEYS)
        d = digest(body)
        meter_id = clean_text(f.get("meter_id")) if isinstance(f.get("meter_id"), str) else None
        res: Reading | DecodeError
        try:
            from decoders.modbus import decode_registers
        except ImportError:
            res = DecodeError("bad_modbus", "no Modbus decoder installed (decoders.modbus)", meter_id)
        else:
            if not meter_id or not isinstance(f.get("profile"), str) or not isinstance(f.get("words"), list):
                res = DecodeError("bad_modbus", "modbus frame needs meter_id, profile and words", meter_id)
            else:
                try:
                    res = decode_registers(f["profile"], int(f.get("address") or 0), list(f["words"]),
                                           meter_id=meter_id)
                except Exception as exc:
                    raise FrameFailed(body, meter_id) from exc
        if isinstance(res, Reading):
            self._stage(out, res, d, "modbus", gw, received, None, body, meter_id)
            return
        out.rows.append(StagedFrame(d, "modbus", meter_id, gw, received, None, body, False))
        out.dead.append(DeadLetter(d, "modbus", res.code, res.detail, meter_id, None, gw, received, body))

    def _wmbusmeters(self, out: Processed, gw: str | None, payload: bytes, now: datetime) -> None:
        from decoders.wmbusmeters import SOURCE, to_reading

        d = digest(payload)
        res = to_reading(payload, self.tz)
        if isinstance(res, DecodeError):
            out.dead.append(DeadLetter(d, SOURCE, res.code, res.detail, clean_text(res.meter_id), None, gw, now,
                                       payload))
            return
        self._stage(out, res, d, SOURCE, gw, now, None, payload)

    def _stage(self, out: Processed, r: Reading, d: bytes, kind: str, gw: str | None, received: datetime,
               rssi: int | None, frame: bytes, meter_id: str | None = None) -> None:
        """A decoded reading, checked (the kernel's plausibility rules, text, JSON) before it is staged; a
        frame failing a check raises BadValue with the frame attached."""
        try:
            out.rows.append(self._checked_row(r, d, kind, gw, received, rssi, frame, meter_id))
        except Exception as exc:
            raise FrameFailed(frame, meter_id or r.meter_id) from exc

    def _checked_row(self, r: Reading, d: bytes, kind: str, gw: str | None, received: datetime,
                     rssi: int | None, frame: bytes, meter_id: str | None) -> StagedFrame:
        t = r.meter_time
        fields = r.fields
        if t is None:
            t = received
        elif t < CLOCK_UNSET_BEFORE or t - received > CLOCK_AHEAD_LIMIT:
            # a meter whose clock was never set (year 2000) or runs far ahead would key all its telegrams to
            # one time and collapse them into one reading: key by the receive time, keep what the meter said
            fields = {**fields, "meter_time": t.isoformat()}
            t = received
        _check(check_time(t, settings=self.plausibility))
        _check(check_index(r.total_m3))
        _check(check_index(r.target_m3))
        if r.flow_m3h is not None and not (isinstance(r.flow_m3h, int | float) and math.isfinite(r.flow_m3h)
                                           and abs(r.flow_m3h) < 1e9):
            raise BadValue(Refusal("bad_flow", f"flow {r.flow_m3h!r} m3/h is not a plausible number"))
        mid = meter_id or r.meter_id
        if not isinstance(mid, str) or not mid or clean_text(mid) != mid:
            raise BadValue(Refusal("bad_meter_id", f"meter id {str(mid)[:40]!r} is empty, too long or has "
                                                   "control characters"))
        try:
            encoded = encode_fields(fields)
        except TypeError as exc:  # orjson: an integer beyond 64 bits, a type JSON cannot hold
            raise BadValue(Refusal("value_out_of_range", f"a decoded value cannot be stored: {exc}")) from None
        return StagedFrame(d, kind, mid, gw, received, rssi, frame, True, t, r.total_m3, r.target_m3,
                           r.target_date, r.flow_m3h, clean_text(r.status), [clean_text(a) or "" for a in r.alarms],
                           kind, encoded)


def _json_or_repr(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except (TypeError, orjson.JSONEncodeError):
        return repr(value).encode()
