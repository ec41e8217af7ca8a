"""`meterflow decoder`: consume the gateways' MQTT batches, decode, store; acknowledge only what is committed.

Threads:
  paho network thread  receives a message, decodes its frames (pure work, ~microseconds per frame) into
                       staged rows, and appends them and the message id to the pending batch;
  writer thread        takes the pending batch when it is big or old enough, writes it in one transaction
                       (storage.writer), and only then acknowledges its messages (paho manual ack).
Because a message is acked only after commit, the broker keeps (and redelivers) whatever a crash or a
database outage leaves unacknowledged; the store is idempotent, so a redelivery adds nothing. While the
database is down the writer retries, no acks go out, and the broker stops sending once the client's
receive maximum (MQTT 5) or its inflight limit (3.1.1) is reached: consumption stops and resumes by itself.

Sessions are persistent (clean start off, a stable client id), so messages published while the decoder
is away are queued by the broker. Several decoders share the load with an MQTT 5 shared subscription
($share/<group>/...); on a 3.1.1 broker (the embedded amqtt) a plain subscription is used.
"""

from __future__ import annotations

import hashlib
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import orjson
import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from decoders.reading import DecodeError, Reading
from meterflow.config import Settings
from meterflow.envelope import EnvelopeError, decode_batch, gateway_from_topic, subscription
from meterflow.logs import ctx, get_logger
from meterflow.metrics import counter, histogram, serve_metrics
from storage.writer import BatchWriter, DeadLetter, FrameRow, WriteResult, jsonb

log = get_logger(__name__)

KINDS = ("wmbus", "modbus", "wmbusmeters")
# a frame failing with these may decode once a (new) key for its meter is loaded; the decoder reports
# wrong_key rather than no_key for makes with well-known default keys
KEY_CODES = frozenset({"no_key", "wrong_key"})
SESSION_EXPIRY_S = 7 * 24 * 3600
# readings.time is the meter's clock unless that clock is plainly wrong (then the gateway receive time)
CLOCK_UNSET_BEFORE = datetime(2001, 1, 1, tzinfo=UTC)
CLOCK_AHEAD_LIMIT = timedelta(days=1)

FRAMES = counter("meterflow_decoder_frames_total", "Frames committed (decoded or dead-lettered)", ("kind",))
READINGS = counter("meterflow_decoder_readings_total", "New rows in readings")
DUPLICATES = counter("meterflow_decoder_duplicates_total", "Decoded frames that were already stored")
DEAD = counter("meterflow_decoder_dead_letters_total", "Frames or messages dead-lettered", ("reason",))
MESSAGES = counter("meterflow_decoder_messages_total", "MQTT messages committed and acknowledged")
DB_ERRORS = counter("meterflow_decoder_db_errors_total", "Failed batch writes (retried)")
BATCH_SECONDS = histogram("meterflow_decoder_batch_seconds", "Time to write and commit one batch",
                          buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))


def _digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


def _utc(t: Any, fallback: datetime) -> datetime:
    if isinstance(t, (int, float)) and not isinstance(t, bool) and 0 < t < 1e11:
        return datetime.fromtimestamp(t, UTC)
    return fallback


def _rssi(value: Any) -> int | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and -32768 <= value <= 32767:
        return int(value)
    return None


class FrameProcessor:
    """Message -> staged rows and dead letters. No I/O; one instance per service (decoder caches)."""

    def __init__(self, keys: Mapping[str, bytes], timezone: str = "UTC",
                 wmbus_decoder: Any | None = None) -> None:
        self.keys = keys
        self.tz = ZoneInfo(timezone)
        self._wmbus = wmbus_decoder
        self.no_key_seen = False

    @property
    def wmbus(self) -> Any:
        if self._wmbus is None:
            from decoders.wmbus import WmbusDecoder

            self._wmbus = WmbusDecoder(self.keys)
        return self._wmbus

    def process(self, topic: str, payload: bytes,
                now: datetime | None = None) -> tuple[list[FrameRow], list[DeadLetter]]:
        now = now or datetime.now(UTC)
        kind = topic.rsplit("/", 1)[-1]
        gw = gateway_from_topic(topic)
        if kind == "wmbusmeters":
            return self._wmbusmeters(gw, payload, now)
        try:
            batch = decode_batch(payload)
            if batch.kind != kind or kind not in ("wmbus", "modbus"):
                raise EnvelopeError(f"envelope kind {batch.kind!r} on topic kind {kind!r}")
        except EnvelopeError as exc:
            return [], [DeadLetter(_digest(payload), kind, "bad_envelope", str(exc), None, None, gw, now, payload)]
        gw = batch.gateway_id or gw
        if kind == "wmbus":
            return self._wmbus_frames(gw, batch.frames, now)
        return self._modbus_frames(gw, batch.frames, now)

    def _wmbus_frames(self, gw: str | None, frames: list[dict[str, Any]],
                      now: datetime) -> tuple[list[FrameRow], list[DeadLetter]]:
        from decoders.wmbus import normalise_frame, peek_header

        decode = self.wmbus.decode
        rows: list[FrameRow] = []
        dead: list[DeadLetter] = []
        for f in frames:
            received = _utc(f.get("t"), now)
            hx = f.get("hex")
            try:
                raw = bytes.fromhex(hx)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                text = str(hx).encode()
                dead.append(DeadLetter(_digest(text), "wmbus", "not_hex", "frame is not a hex string", None, None,
                                       gw, received, text))
                continue
            norm = normalise_frame(raw)  # the digest is over the normalised frame; decode is told so
            if isinstance(norm, DecodeError):
                head = peek_header(raw)
                dead.append(DeadLetter(_digest(raw), "wmbus", norm.code, norm.detail, head[0] if head else None,
                                       head[1] if head else None, gw, received, raw))
                continue
            digest = _digest(norm)
            rssi = _rssi(f.get("rssi"))
            res = decode(norm, normalised=True)
            if type(res) is Reading or isinstance(res, Reading):
                rows.append(self._row(res, digest, "wmbus", gw, received, rssi, norm))
            else:
                err: DecodeError = res
                if err.code in KEY_CODES:
                    self.no_key_seen = True
                rows.append((digest, "wmbus", err.meter_id, gw, received, rssi, norm, False,
                             None, None, None, None, None, None, None, None, None))
                dead.append(DeadLetter(digest, "wmbus", err.code, err.detail, err.meter_id, err.manufacturer, gw,
                                       received, norm))
        return rows, dead

    @staticmethod
    def _row(r: Reading, digest: bytes, kind: str, gw: str | None, received: datetime, rssi: int | None,
             frame: bytes, meter_id: str | None = None) -> FrameRow:
        t = r.meter_time
        fields = r.fields
        if t is None:
            t = received
        elif t < CLOCK_UNSET_BEFORE or t - received > CLOCK_AHEAD_LIMIT:
            # a meter whose clock was never set (year 2000) or runs far ahead would key all its telegrams to
            # one time and collapse them into one reading: key by the receive time, keep what the meter said
            fields = {**fields, "meter_time": t.isoformat()}
            t = received
        return (digest, kind, meter_id or r.meter_id, gw, received, rssi, frame, True,
                t, r.total_m3, r.target_m3, r.target_date, r.flow_m3h, r.status,
                list(r.alarms), kind, jsonb(fields))

    def _modbus_frames(self, gw: str | None, frames: list[dict[str, Any]],
                       now: datetime) -> tuple[list[FrameRow], list[DeadLetter]]:
        rows: list[FrameRow] = []
        dead: list[DeadLetter] = []
        decode_registers: Callable[..., Reading | DecodeError] | None
        try:
            from decoders.modbus import decode_registers
        except ImportError:
            decode_registers = None
        for f in frames:
            received = _utc(f.get("t"), now)
            body = orjson.dumps(f, option=orjson.OPT_SORT_KEYS)
            digest = _digest(body)
            meter_id = f.get("meter_id") if isinstance(f.get("meter_id"), str) else None
            res: Reading | DecodeError
            if decode_registers is None:
                res = DecodeError("bad_modbus", "no Modbus decoder installed (decoders.modbus)", meter_id)
            elif not meter_id or not isinstance(f.get("profile"), str) or not isinstance(f.get("words"), list):
                res = DecodeError("bad_modbus", "modbus frame needs meter_id, profile and words", meter_id)
            else:
                try:
                    res = decode_registers(f["profile"], int(f.get("address") or 0), list(f["words"]),
                                           meter_id=meter_id)
                except Exception as exc:  # a decoder bug must not kill the service
                    res = DecodeError("bad_modbus", f"decoder failed: {exc.__class__.__name__}: {exc}", meter_id)
            if isinstance(res, Reading):
                rows.append(self._row(res, digest, "modbus", gw, received, None, body, meter_id))
            else:
                rows.append((digest, "modbus", meter_id, gw, received, None, body, False,
                             None, None, None, None, None, None, None, None, None))
                dead.append(DeadLetter(digest, "modbus", res.code, res.detail, meter_id, None, gw, received, body))
        return rows, dead

    def _wmbusmeters(self, gw: str | None, payload: bytes,
                     now: datetime) -> tuple[list[FrameRow], list[DeadLetter]]:
        from decoders.wmbusmeters import SOURCE, to_reading

        digest = _digest(payload)
        res = to_reading(payload, self.tz)
        if isinstance(res, DecodeError):
            return [], [DeadLetter(digest, SOURCE, res.code, res.detail, res.meter_id, None, gw, now, payload)]
        return [self._row(res, digest, SOURCE, gw, now, None, payload)], []


@dataclass
class _Pending:
    rows: list[FrameRow] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    acks: list[tuple[int, int, int]] = field(default_factory=list)  # (connection generation, mid, qos)
    messages: int = 0
    first_at: float = 0.0


def transient(exc: BaseException) -> bool:
    """A failure of the connection or server (retry the batch), not of the data (isolate the bad row)."""
    return isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError)) or not isinstance(exc, psycopg.Error)


def _clean(text: str | None) -> str | None:
    return text.replace("\x00", "") if text is not None else None


def merge_results(a: WriteResult, b: WriteResult) -> WriteResult:
    out = WriteResult(frames=a.frames + b.frames, decoded=a.decoded + b.decoded, new_frames=a.new_frames + b.new_frames,
                      readings=a.readings + b.readings, resolved=a.resolved + b.resolved,
                      dead_letters=a.dead_letters + b.dead_letters, seconds=a.seconds + b.seconds)
    for code, n in [*a.dead_by_code.items(), *b.dead_by_code.items()]:
        out.dead_by_code[code] = out.dead_by_code.get(code, 0) + n
    return out


def broker_speaks_v5(host: str, port: int, timeout: float = 3.0) -> bool:
    """Probe with a bare MQTT 5 CONNECT: a 3.1.1-only broker refuses the version or drops the connection."""
    client_id = b"meterflow-probe"
    var = b"\x00\x04MQTT\x05\x02\x00\x0a\x00" + len(client_id).to_bytes(2, "big") + client_id
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(bytes([0x10, len(var)]) + var)
            head = sock.recv(4)
            ok = len(head) >= 4 and head[0] == 0x20 and head[3] == 0
            if ok:
                sock.sendall(b"\xe0\x00")
            return ok
    except OSError:
        return False


@dataclass(frozen=True)
class BrokerUrl:
    host: str
    port: int
    tls: bool

    @classmethod
    def parse(cls, url: str) -> BrokerUrl:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
            raise ValueError(f"broker URL must be mqtt://host:port or mqtts://host:port, not {url!r}")
        tls = parts.scheme in ("mqtts", "ssl")
        return cls(parts.hostname or "127.0.0.1", parts.port or (8883 if tls else 1883), tls)


class DecoderService:
    """The decoder as a library: `start()` runs it in background threads until `stop()`."""

    def __init__(
        self,
        settings: Settings,
        dsn: str,
        mqtt_url: str | None = None,
        *,
        client_id: str | None = None,
        topic_prefix: str | None = None,
        kinds: tuple[str, ...] = KINDS,
        protocol: str = "auto",
        receive_maximum: int = 1000,
        session_expiry: int = SESSION_EXPIRY_S,
        key_refresh_seconds: float = 30.0,
        metrics_port: int | None = None,
        wmbus_decoder: Any | None = None,
        migrate: bool = True,
    ) -> None:
        url = mqtt_url or settings.mqtt.url
        if not url:
            raise ValueError("no MQTT broker configured: set METERFLOW_MQTT_URL or METERFLOW_MQTT__URL "
                             "(e.g. mqtt://127.0.0.1:1883)")
        self.settings = settings
        self.dsn = dsn
        self.broker = BrokerUrl.parse(url)
        self.client_id = client_id or f"{settings.mqtt.client_id_prefix}-decoder-{socket.gethostname()}"
        self.prefix = topic_prefix or settings.mqtt.topic_prefix
        self.kinds = kinds
        self.protocol = protocol
        self.receive_maximum = receive_maximum
        self.session_expiry = session_expiry
        self.key_refresh_seconds = key_refresh_seconds
        self.metrics_port = settings.decoder.metrics_port if metrics_port is None else metrics_port
        self.batch_max_frames = settings.decoder.batch_max_frames
        self.batch_max_s = settings.decoder.batch_max_ms / 1000.0
        self.idle_flush_s = min(0.02, self.batch_max_s)
        self.migrate = migrate
        self.keys: dict[str, bytes] = {}
        self.processor = FrameProcessor(self.keys, settings.timezone, wmbus_decoder)
        self.writer = BatchWriter(dsn)
        self._cond = threading.Condition()
        self._decode_lock = threading.Lock()  # the decoder's caches are not shared between threads
        self._pending = _Pending()
        self._writing = False
        self._stopping = False
        self._generation = 0
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self._last_message = time.monotonic()
        self._last_key_load = 0.0
        self._db_down_since: float | None = None
        self._counts: dict[str, int] = {"messages": 0, "frames": 0, "readings": 0, "duplicates": 0,
                                        "dead_letters": 0, "batches": 0, "db_errors": 0, "received_messages": 0,
                                        "write_ms": 0, "decode_ms": 0}
        self._dead_by_code: dict[str, int] = {}
        self._client: mqtt.Client | None = None
        self._thread: threading.Thread | None = None
        self.v5 = False

    # -- lifecycle -------------------------------------------------------------------------------------

    def start(self, connect_timeout: float = 15.0) -> None:
        from storage.migrate import upgrade

        if self.migrate:
            with psycopg.connect(self.dsn) as conn:
                upgrade(conn, self.settings.timezone)
        self._load_keys()
        self.writer.connect()
        try:
            serve_metrics(self.metrics_port)
        except OSError as exc:  # e.g. a second decoder on this host: run on, without /metrics
            log.warning("cannot serve /metrics", extra=ctx(port=self.metrics_port, error=str(exc)))
        self._thread = threading.Thread(target=self._write_loop, name="decoder-writer", daemon=True)
        self._thread.start()
        self._client = self._make_client()
        self._client.loop_start()
        if not self._subscribed.wait(connect_timeout):
            log.warning("broker not reachable yet; still trying",
                        extra=ctx(broker=f"{self.broker.host}:{self.broker.port}"))

    def _make_client(self) -> mqtt.Client:
        if self.protocol == "auto":
            self.v5 = self.broker.tls or broker_speaks_v5(self.broker.host, self.broker.port)
        else:
            self.v5 = self.protocol == "5"
        if self.v5:
            client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv5)
        else:
            client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv311,
                                 clean_session=False)
        client.manual_ack_set(True)
        client.max_queued_messages_set(0)
        client.reconnect_delay_set(1, 5)
        mq = self.settings.mqtt
        if mq.username:
            client.username_pw_set(mq.username, mq.password.get_secret_value() if mq.password else None)
        if self.broker.tls:
            client.tls_set(ca_certs=mq.ca_file, cert_reqs=ssl.CERT_REQUIRED)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        if self.v5:
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = self.session_expiry
            props.ReceiveMaximum = max(1, min(65535, self.receive_maximum))
            client.connect_async(self.broker.host, self.broker.port, keepalive=30, clean_start=False,
                                 properties=props)
        else:
            client.connect_async(self.broker.host, self.broker.port, keepalive=30)
        return client

    def stop(self, timeout: float = 30.0, retire: bool = False) -> bool:
        """Commit and acknowledge what is pending, then disconnect. False if the database never came back.

        The broker keeps this client's session (and, on a shared subscription, keeps queueing this
        instance's share of the messages) until the same client id returns. `retire=True` first drains
        what the broker has queued for it, then ends the session: use it when scaling down for good."""
        if retire:
            self.wait_idle(1.0, timeout)
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        ok = True
        if self._thread is not None:
            self._thread.join(timeout)
            ok = not self._thread.is_alive()
        if self._client is not None:
            time.sleep(0.05)  # let the network thread send the last PUBACKs
            if retire and ok and self.v5:
                props = Properties(PacketTypes.DISCONNECT)  # type: ignore[no-untyped-call]
                props.SessionExpiryInterval = 0
                self._client.disconnect(properties=props)
            else:
                self._client.disconnect()
            self._client.loop_stop()
            if retire and ok and not self.v5:
                self._end_v311_session()
        self.writer.close()
        if not ok:
            log.warning("stopped with an uncommitted batch; the broker will redeliver it")
        elif retire:
            log.info("decoder session ended at the broker", extra=ctx(client_id=self.client_id))
        return ok

    def _end_v311_session(self) -> None:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv311,
                             clean_session=True)
        try:
            client.connect(self.broker.host, self.broker.port, keepalive=10)
            client.loop_start()
            time.sleep(0.2)
            client.disconnect()
            client.loop_stop()
        except OSError as exc:
            log.warning("could not end the broker session", extra=ctx(error=str(exc)))

    def stats(self) -> dict[str, int]:
        with self._cond:
            out = dict(self._counts)
            out["pending_frames"] = len(self._pending.rows) + len(self._pending.dead)
            return out

    def dead_by_code(self) -> dict[str, int]:
        with self._cond:
            return dict(self._dead_by_code)

    def wait_idle(self, seconds_without_messages: float = 1.0, timeout: float = 60.0) -> bool:
        """Block until nothing arrived for `seconds_without_messages` and everything is committed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._cond:
                quiet = time.monotonic() - self._last_message >= seconds_without_messages
                if quiet and not self._writing and not self._pending.acks and not self._pending.rows:
                    return True
            time.sleep(0.05)
        return False

    # -- MQTT callbacks (network thread) -----------------------------------------------------------------

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if getattr(reason, "is_failure", False):
            log.warning("broker refused connection", extra=ctx(reason=str(reason)))
            return
        with self._cond:
            self._generation += 1
        group = self.settings.decoder.shared_group if self.v5 else None
        topics = [(subscription(self.prefix, kind, group), self.settings.mqtt.qos) for kind in self.kinds]
        client.subscribe(topics)
        self._connected.set()
        log.info("connected to broker", extra=ctx(broker=f"{self.broker.host}:{self.broker.port}",
                                                  mqtt5=self.v5, client_id=self.client_id,
                                                  session_present=getattr(flags, "session_present", None),
                                                  topics=",".join(t for t, _ in topics)))

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, properties: Any) -> None:
        failed = [str(r) for r in reasons if getattr(r, "is_failure", False)]
        if failed:
            log.error("broker refused a subscription", extra=ctx(reasons=",".join(failed)))
        self._subscribed.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        self._connected.clear()
        with self._cond:
            self._generation += 1  # acks of older messages would go to the wrong session: the broker redelivers
        if not self._stopping:
            log.warning("disconnected from broker; reconnecting", extra=ctx(reason=str(reason)))

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if self._stopping:
            return  # not acknowledged: the broker redelivers it to the next session
        t0 = time.perf_counter()
        try:
            with self._decode_lock:
                rows, dead = self.processor.process(msg.topic, bytes(msg.payload))
        except Exception as exc:  # a bug in a decoder: dead-letter the message, keep the service alive
            log.exception("message processing failed", extra=ctx(topic=msg.topic))
            payload = bytes(msg.payload)
            rows, dead = [], [DeadLetter(_digest(payload), msg.topic.rsplit("/", 1)[-1], "bad_envelope",
                                         f"processing failed: {exc.__class__.__name__}: {exc}", None, None,
                                         gateway_from_topic(msg.topic), datetime.now(UTC), payload)]
        with self._cond:
            p = self._pending
            if not p.messages:
                p.first_at = time.monotonic()
            p.rows.extend(rows)
            p.dead.extend(dead)
            p.acks.append((self._generation, msg.mid, msg.qos))
            p.messages += 1
            self._counts["received_messages"] += 1
            self._counts["decode_ms"] += int((time.perf_counter() - t0) * 1000)
            self._last_message = time.monotonic()
            if len(p.rows) >= self.batch_max_frames or p.messages >= self.receive_maximum:
                self._cond.notify()

    # -- writer thread -----------------------------------------------------------------------------------

    def _ready(self, now: float) -> bool:
        p = self._pending
        if not p.messages:
            return False
        return (self._stopping or len(p.rows) + len(p.dead) >= self.batch_max_frames
                or p.messages >= self.receive_maximum or now - p.first_at >= self.batch_max_s
                or now - self._last_message >= self.idle_flush_s)

    def _write_loop(self) -> None:
        last_log = time.monotonic()
        every = max(1, self.settings.decoder.metrics_log_seconds)
        while True:
            with self._cond:
                while not self._ready(time.monotonic()):
                    if self._stopping:
                        return
                    self._cond.wait(self.idle_flush_s / 2)
                    if time.monotonic() - last_log >= every:
                        last_log = time.monotonic()
                        log.info("decoder counters", extra=ctx(**self.stats()))
                batch, self._pending = self._pending, _Pending()
                self._writing = True
            try:
                self._commit(batch)
            finally:
                with self._cond:
                    self._writing = False
            if time.monotonic() - last_log >= every:
                last_log = time.monotonic()
                log.info("decoder counters", extra=ctx(**self.stats()))

    def _commit(self, batch: _Pending) -> None:
        delay = 0.2
        while True:
            try:
                if self.processor.no_key_seen and time.monotonic() - self._last_key_load >= self.key_refresh_seconds:
                    self.processor.no_key_seen = False
                    self._redecode_no_key(batch, self._load_keys())
                result = self._write(batch.rows, batch.dead)
                break
            except (psycopg.Error, OSError) as exc:
                self.writer.close()
                self._counts["db_errors"] += 1
                DB_ERRORS.inc()
                if self._db_down_since is None:
                    self._db_down_since = time.monotonic()
                    log.error("database write failed; holding the batch, not acknowledging, retrying",
                              extra=ctx(error=str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc),
                                        frames=len(batch.rows)))
                if self._stopping and time.monotonic() - (self._db_down_since or 0) > 10:
                    return  # give up: unacked messages stay with the broker
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
        if self._db_down_since is not None:
            log.info("database back; resuming",
                     extra=ctx(down_seconds=round(time.monotonic() - self._db_down_since, 1)))
            self._db_down_since = None
        self._account(batch, result)
        client = self._client
        with self._cond:
            generation = self._generation
        if client is not None:
            for gen, mid, qos in batch.acks:
                if qos and gen == generation:
                    client.ack(mid, qos)

    def _write(self, rows: list[FrameRow], dead: list[DeadLetter]) -> WriteResult:
        """Write a batch; a row the database rejects (e.g. a NUL character in a text field) is isolated by
        halving the batch and dead-lettered alone, so one bad frame neither blocks nor sinks its batch.
        Connection failures propagate (the caller holds the batch and retries)."""
        try:
            return self.writer.write(rows, dead)
        except psycopg.Error as exc:
            if transient(exc):
                raise
            if rows and dead:
                parts = [(rows, []), ([], dead)]
            elif len(rows) > 1:
                parts = [(rows[: len(rows) // 2], []), (rows[len(rows) // 2 :], [])]
            elif len(dead) > 1:
                parts = [([], dead[: len(dead) // 2]), ([], dead[len(dead) // 2 :])]
            else:
                return self._write_rejected(rows, dead, exc)
            result = WriteResult()
            for part_rows, part_dead in parts:
                result = merge_results(result, self._write(part_rows, part_dead))
            return result

    def _write_rejected(self, rows: list[FrameRow], dead: list[DeadLetter], exc: psycopg.Error) -> WriteResult:
        reason = "database rejected it: " + (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]
        if rows:
            r = rows[0]
            letter = DeadLetter(r[0], r[1], "bad_record", reason, _clean(r[2]), None, _clean(r[3]), r[4], r[6])
        else:
            d = dead[0]
            letter = DeadLetter(d.digest, d.kind, d.error_code, _clean(d.detail) or "", _clean(d.meter_id),
                                _clean(d.manufacturer), _clean(d.gateway_id), d.received_at, d.payload)
        log.error("frame rejected by the database; dead-lettered", extra=ctx(
            gateway_id=letter.gateway_id, meter_id=letter.meter_id, error=reason[:300]))
        try:
            return self.writer.write([], [letter])
        except psycopg.Error as again:
            if transient(again):
                raise
            log.error("could not even dead-letter the frame; dropped", extra=ctx(
                gateway_id=letter.gateway_id, meter_id=letter.meter_id, error=str(again)[:300]))
            return WriteResult(frames=1)

    def _redecode_no_key(self, batch: _Pending, new_keys: set[str]) -> None:
        """Frames of this batch that failed for want of a key that has just been loaded: decode again."""
        retry = {d.digest: d for d in batch.dead if d.error_code in KEY_CODES and d.meter_id in new_keys}
        if not retry:
            return
        rssi = {r[0]: r[5] for r in batch.rows if r[0] in retry}
        rows = [r for r in batch.rows if r[7] or r[0] not in retry]
        dead = [d for d in batch.dead if d.digest not in retry or d.error_code not in KEY_CODES]
        with self._decode_lock:
            for d in retry.values():
                frame = {"t": d.received_at.timestamp(), "hex": d.payload.hex(), "rssi": rssi.get(d.digest)}
                more_rows, more_dead = self.processor._wmbus_frames(d.gateway_id, [frame], d.received_at)
                rows.extend(more_rows)
                dead.extend(more_dead)
        batch.rows, batch.dead = rows, dead

    def _account(self, batch: _Pending, result: WriteResult) -> None:
        BATCH_SECONDS.observe(result.seconds)
        kinds: dict[str, int] = {}
        for row in batch.rows:
            kinds[row[1]] = kinds.get(row[1], 0) + 1
        for kind, n in kinds.items():
            FRAMES.labels(kind).inc(n)
        READINGS.inc(result.readings)
        DUPLICATES.inc(result.duplicates)
        MESSAGES.inc(batch.messages)
        for code, n in result.dead_by_code.items():
            DEAD.labels(code).inc(n)
        undecoded = sum(1 for r in batch.rows if not r[7])
        with self._cond:
            c = self._counts
            c["messages"] += batch.messages
            c["frames"] += len(batch.rows) + len(batch.dead) - undecoded
            c["readings"] += result.readings
            c["duplicates"] += result.duplicates
            c["dead_letters"] += result.dead_letters
            c["batches"] += 1
            c["write_ms"] += int(result.seconds * 1000)
            for code, n in result.dead_by_code.items():
                self._dead_by_code[code] = self._dead_by_code.get(code, 0) + n
        for d in batch.dead[:20]:
            log.info("dead letter", extra=ctx(gateway_id=d.gateway_id, meter_id=d.meter_id, code=d.error_code,
                                              detail=d.detail[:200]))

    # -- keys ----------------------------------------------------------------------------------------------

    def _load_keys(self) -> set[str]:
        """Reload keys into the decoder's dict (in place); returns the meters whose key is new or changed."""
        from storage.registry import load_keys

        with psycopg.connect(self.dsn, connect_timeout=5) as conn:
            fresh = load_keys(conn)
        changed = {m for m, k in fresh.items() if self.keys.get(m) != k}
        for meter_id in [m for m in self.keys if m not in fresh]:
            del self.keys[meter_id]
        self.keys.update(fresh)
        self._last_key_load = time.monotonic()
        log.info("meter keys loaded", extra=ctx(meters_with_keys=len(fresh), new_or_changed=len(changed)))
        return changed

