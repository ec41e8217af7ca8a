"""`meterflow decoder` as a library: MQTT batches in, readings committed, then acknowledged.

Threads:
  paho network thread  receives a message and runs the pure FrameProcessor on it (services/processor.py),
                       appending staged frames, dead letters and the message's Delivery to the pending batch;
  writer thread        takes the pending batch when it is big or old enough, writes it in one transaction
                       (storage.writer), and only then acknowledges: PUBACK to the broker and a commit ack to
                       each gateway (`<prefix>/<gw>/ack`), which lets the gateway drop those frames.
The writer is supervised: if it dies, the service reports itself down (`failed`, /health 503,
meterflow_decoder_up 0) and `meterflow decoder` exits non-zero so systemd or Kubernetes restarts it.
A batch row that the database refuses is isolated by halving and dead-lettered alone; while the database
is down the batch is held and retried with the common back-off (meterflow.retry), no acks go out, and the
broker stops sending at the receive maximum: consumption pauses and resumes by itself.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg

from meterflow import retry
from meterflow.config import Settings
from meterflow.logs import ctx, get_logger
from meterflow.metrics import counter, gauge, histogram, serve_metrics
from meterflow.mqtt import MqttSettings
from services.consumer import Delivery, MqttConsumer
from services.processor import KEY_CODES, KINDS, FrameProcessor, Processed, clean_text, digest
from storage.writer import BatchWriter, DeadLetter, StagedFrame, WriteResult

log = get_logger(__name__)

FRAMES = counter("meterflow_decoder_frames_total", "Frames committed (decoded or dead-lettered)", ("kind",))
READINGS = counter("meterflow_decoder_readings_total", "New rows in readings")
DUPLICATES = counter("meterflow_decoder_duplicates_total", "Decoded frames that were already stored")
DEAD = counter("meterflow_decoder_dead_letters_total", "Frames or messages dead-lettered", ("reason",))
MESSAGES = counter("meterflow_decoder_messages_total", "MQTT messages committed and acknowledged")
DB_ERRORS = counter("meterflow_decoder_db_errors_total", "Failed batch writes (retried)")
UP = gauge("meterflow_decoder_up", "1 while the decoder's writer runs; 0 once it has failed")
BATCH_SECONDS = histogram("meterflow_decoder_batch_seconds", "Time to write and commit one batch",
                          buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
#: failures of the connection or server: hold the batch and retry it whole
TRANSIENT = (psycopg.OperationalError, psycopg.InterfaceError, OSError)
GIVE_UP_ON_STOP_S = 10.0


@dataclass
class _Pending:
    rows: list[StagedFrame] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    first_at: float = 0.0

    @property
    def messages(self) -> int:
        return len(self.deliveries)


def merge_results(a: WriteResult, b: WriteResult) -> WriteResult:
    out = WriteResult(frames=a.frames + b.frames, decoded=a.decoded + b.decoded, new_frames=a.new_frames + b.new_frames,
                      readings=a.readings + b.readings, resolved=a.resolved + b.resolved,
                      dead_letters=a.dead_letters + b.dead_letters, seconds=a.seconds + b.seconds)
    for code, n in [*a.dead_by_code.items(), *b.dead_by_code.items()]:
        out.dead_by_code[code] = out.dead_by_code.get(code, 0) + n
    return out


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
        protocol: str | None = None,
        receive_maximum: int = 1000,
        session_expiry: int | None = None,
        key_refresh_seconds: float = 30.0,
        metrics_port: int | None = None,
        wmbus_decoder: Any | None = None,
        migrate: bool = True,
    ) -> None:
        mq = settings.mqtt
        overrides: dict[str, Any] = {}
        if mqtt_url:
            overrides["url"] = mqtt_url
        if protocol and protocol != "auto":
            overrides["protocol"] = protocol
        self.mqtt: MqttSettings = mq.model_copy(update=overrides) if overrides else mq
        self.mqtt.address()  # raises with a clear message when no broker is configured
        self.settings = settings
        self.dsn = dsn
        self.client_id = client_id or f"{mq.client_id_prefix}-decoder-{socket.gethostname()}"
        self.prefix = topic_prefix or mq.topic_prefix
        self.key_refresh_seconds = key_refresh_seconds
        self.metrics_port = settings.decoder.metrics_port if metrics_port is None else metrics_port
        self.batch_max_frames = settings.decoder.batch_max_frames
        self.batch_max_s = settings.decoder.batch_max_ms / 1000.0
        self.idle_flush_s = min(0.02, self.batch_max_s)
        self.receive_maximum = receive_maximum
        self.migrate = migrate
        self.keys: dict[str, bytes] = {}
        self.processor = FrameProcessor(self.keys, settings.timezone, wmbus_decoder, settings.plausibility)
        self.writer = BatchWriter(dsn)
        self.consumer = MqttConsumer(
            self.mqtt, self.client_id, self.prefix, kinds, settings.decoder.shared_group, self._on_message,
            receive_maximum=receive_maximum,
            session_expiry=settings.decoder.session_expiry_s if session_expiry is None else session_expiry)
        self._cond = threading.Condition()
        self._decode_lock = threading.Lock()  # the decoder's caches are not shared between threads
        self._pending = _Pending()
        self._writing = False
        self._stopping = False
        self._abandon = threading.Event()  # set when stop() gives up on a database that does not come back
        self._last_message = time.monotonic()
        self._last_key_load = 0.0
        self._db_down_since: float | None = None
        self._counts: dict[str, int] = {"messages": 0, "frames": 0, "readings": 0, "duplicates": 0,
                                        "dead_letters": 0, "batches": 0, "db_errors": 0, "received_messages": 0,
                                        "write_ms": 0, "decode_ms": 0}
        self._dead_by_code: dict[str, int] = {}
        self._thread: threading.Thread | None = None
        self.failed: str | None = None  # why the writer died; the service is down

    @property
    def v5(self) -> bool:
        return self.consumer.v5

    # -- lifecycle -------------------------------------------------------------------------------------

    def start(self, connect_timeout: float = 15.0, stop: threading.Event | None = None) -> None:
        """Migrate, load keys, start the writer and connect; while the broker cannot be reached at all this
        waits (common back-off) until it can or `stop` is set."""
        from storage.migrate import upgrade

        if self.migrate:
            with psycopg.connect(self.dsn) as conn:
                upgrade(conn, self.settings.timezone)
        self._load_keys()
        self.writer.connect()
        try:
            serve_metrics(self.metrics_port, health=self.health)
        except OSError as exc:  # e.g. a second decoder on this host: run on, without /metrics
            log.warning("cannot serve /metrics", extra=ctx(port=self.metrics_port, error=str(exc)))
        UP.set(1)
        self._thread = threading.Thread(target=self._supervised_writer, name="decoder-writer", daemon=True)
        self._thread.start()
        self.consumer.start(stop or self._abandon)
        if not self.consumer.subscribed.wait(connect_timeout):
            log.warning("broker not reachable yet; still trying", extra=ctx(client_id=self.client_id))

    def health(self) -> str | None:
        """None while healthy; why not otherwise (for /health)."""
        if self.failed:
            return f"writer failed: {self.failed}"
        return None

    def stop(self, timeout: float = 30.0, retire: bool = False) -> bool:
        """Commit and acknowledge what is pending, then disconnect. False if the database never came back.

        The broker keeps this client's session (and keeps queueing this instance's share of a shared
        subscription) for the session expiry. `retire=True` first drains what the broker queued for it,
        then ends the session: use it when scaling down for good."""
        if retire:
            self.wait_idle(1.0, timeout)
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        ok = True
        if self._thread is not None:
            self._thread.join(GIVE_UP_ON_STOP_S)
            if self._thread.is_alive():
                self._abandon.set()  # the database is still away: leave the batch to the broker
                self._thread.join(timeout)
            ok = not self._thread.is_alive() and self._db_down_since is None and not self.failed
        self.consumer.stop(retire=retire and ok)
        self.writer.close()
        if not ok:
            log.warning("stopped with an uncommitted batch; the broker (or the gateway) will send it again")
        elif retire:
            log.info("decoder session ended at the broker", extra=ctx(client_id=self.client_id))
        return ok

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
                if quiet and not self._writing and not self._pending.deliveries and not self._pending.rows:
                    return True
            time.sleep(0.05)
        return False

    # -- MQTT network thread ---------------------------------------------------------------------------

    def _on_message(self, topic: str, payload: bytes, delivery: Delivery) -> None:
        t0 = time.perf_counter()
        try:
            with self._decode_lock:
                out = self.processor.process(topic, payload)
        except Exception as exc:  # a bug outside any one frame: dead-letter the message, keep the service alive
            log.exception("message processing failed", extra=ctx(topic=topic))
            out = Processed(gateway_id=delivery.gateway_id)
            out.dead.append(DeadLetter(digest(payload), topic.rsplit("/", 1)[-1], "bad_envelope",
                                       f"processing failed: {exc.__class__.__name__}: {exc}", None, None,
                                       clean_text(delivery.gateway_id), datetime.now(UTC), payload))
        delivery = Delivery(delivery.generation, delivery.mid, delivery.qos, out.gateway_id, out.batch_id)
        with self._cond:
            p = self._pending
            if not p.deliveries:
                p.first_at = time.monotonic()
            p.rows.extend(out.rows)
            p.dead.extend(out.dead)
            p.deliveries.append(delivery)
            self._counts["received_messages"] += 1
            self._counts["decode_ms"] += int((time.perf_counter() - t0) * 1000)
            self._last_message = time.monotonic()
            if len(p.rows) >= self.batch_max_frames or p.messages >= self.receive_maximum:
                self._cond.notify()

    # -- writer thread -----------------------------------------------------------------------------------

    def _supervised_writer(self) -> None:
        try:
            self._write_loop()
        except BaseException as exc:
            self.failed = f"{exc.__class__.__name__}: {exc}"
            UP.set(0)
            log.critical("decoder writer failed; the service is down and must be restarted",
                         exc_info=True, extra=ctx(error=self.failed[:300]))

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
                if not self._commit(batch):
                    return  # abandoned on stop: nothing acknowledged, the broker keeps it
            finally:
                with self._cond:
                    self._writing = False

    def _on_db_error(self, exc: BaseException, wait: float) -> None:
        self.writer.close()
        DB_ERRORS.inc()
        with self._cond:
            self._counts["db_errors"] += 1
        if self._db_down_since is None:
            self._db_down_since = time.monotonic()
            log.error("database write failed; holding the batch, not acknowledging, retrying",
                      extra=ctx(error=(str(exc).strip().splitlines() or [repr(exc)])[0]))

    def _commit(self, batch: _Pending) -> bool:
        try:
            for attempt in retry.DEFAULT.retrying("database write", TRANSIENT, self._abandon,
                                                  on_retry=self._on_db_error):
                with attempt:
                    if (self.processor.no_key_seen
                            and time.monotonic() - self._last_key_load >= self.key_refresh_seconds):
                        self.processor.no_key_seen = False
                        self._redecode_no_key(batch, self._load_keys())
                    result = self.write_isolating(batch.rows, batch.dead)
        except TRANSIENT:
            return False
        if self._db_down_since is not None:
            log.info("database back; resuming",
                     extra=ctx(down_seconds=round(time.monotonic() - self._db_down_since, 1)))
            self._db_down_since = None
        self._account(batch, result)
        self.consumer.acknowledge(batch.deliveries)
        return True

    def write_isolating(self, rows: list[StagedFrame], dead: list[DeadLetter]) -> WriteResult:
        """Write a batch; rows the database (or the COPY encoder) refuses are isolated by halving and
        dead-lettered alone, so one bad frame neither blocks nor sinks its batch. Connection failures
        propagate (the caller holds the batch and retries)."""
        try:
            return self.writer.write(rows, dead)
        except TRANSIENT:
            raise
        except Exception as exc:
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
                result = merge_results(result, self.write_isolating(part_rows, part_dead))
            return result

    def _write_rejected(self, rows: list[StagedFrame], dead: list[DeadLetter], exc: Exception) -> WriteResult:
        reason = "database rejected it: " + (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]
        if rows:
            r = rows[0]
            letter = DeadLetter(r.digest, r.kind, "bad_record", reason, clean_text(r.meter_id), None,
                                clean_text(r.gateway_id), r.received_at, r.frame)
        else:
            d = dead[0]
            letter = DeadLetter(d.digest, d.kind, d.error_code, (d.detail or "").replace("\x00", ""),
                                clean_text(d.meter_id), clean_text(d.manufacturer), clean_text(d.gateway_id),
                                d.received_at, d.payload)
        log.warning("frame rejected by the database; dead-lettered", extra=ctx(
            gateway_id=letter.gateway_id, meter_id=letter.meter_id, error=reason[:300]))
        try:
            return self.writer.write([], [letter])
        except TRANSIENT:
            raise
        except Exception as again:
            log.error("could not even dead-letter the frame; dropped", extra=ctx(
                gateway_id=letter.gateway_id, meter_id=letter.meter_id, error=str(again)[:300]))
            return WriteResult(frames=1)

    def _redecode_no_key(self, batch: _Pending, new_keys: set[str]) -> None:
        """Frames of this batch that failed for want of a key that has just been loaded: decode again."""
        retry_ = {d.digest: d for d in batch.dead if d.error_code in KEY_CODES and d.meter_id in new_keys}
        if not retry_:
            return
        rssi = {r.digest: r.rssi for r in batch.rows if r.digest in retry_}
        rows = [r for r in batch.rows if r.decoded or r.digest not in retry_]
        dead = [d for d in batch.dead if d.digest not in retry_ or d.error_code not in KEY_CODES]
        with self._decode_lock:
            for d in retry_.values():
                out = self.processor.retry(d.kind, d.error_code, d.gateway_id, d.received_at, d.payload,
                                           rssi.get(d.digest))
                rows.extend(out.rows)
                dead.extend(out.dead)
        batch.rows, batch.dead = rows, dead

    def _account(self, batch: _Pending, result: WriteResult) -> None:
        BATCH_SECONDS.observe(result.seconds)
        kinds: dict[str, int] = {}
        for row in batch.rows:
            kinds[row.kind] = kinds.get(row.kind, 0) + 1
        for kind, n in kinds.items():
            FRAMES.labels(kind).inc(n)
        READINGS.inc(result.readings)
        DUPLICATES.inc(result.duplicates)
        MESSAGES.inc(batch.messages)
        for code, n in result.dead_by_code.items():
            DEAD.labels(code).inc(n)
        undecoded = sum(1 for r in batch.rows if not r.decoded)
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
