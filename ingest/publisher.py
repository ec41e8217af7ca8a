"""Moves frames from the outbox to the broker in batches (QoS 1) and deletes them once delivered.

"Delivered" means committed by a decoder: after each commit the decoder publishes the batch ids on
`<prefix>/<gw>/ack`, and only then do the batch's frames leave the outbox (`delivery = "commit"`, the
default). A PUBACK alone proves only that the broker took the message into its memory, which a crash,
a lost `$share` subscription or a dead decoder's queue can still lose; a PUBACK with reason 0x10 ("no
matching subscribers") or a refusal proves nothing. A batch not confirmed within `ack_timeout_s` (or
PUBACKed with 0x10, or refused) is sent again with a growing back-off; decoders store idempotently, so a
resend costs nothing. `delivery = "broker"` keeps the older rule (delete on a successful PUBACK, never on
0x10) for consumers that do not acknowledge.

One thread reads the outbox in arrival order (a cursor) and keeps at most `max_inflight` batches
unconfirmed; after a process restart the cursor starts at the head of the outbox again.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from itertools import groupby

import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode

from ingest.config import MqttConfig
from ingest.counters import CONNECTED, OUTBOX_DEPTH, GatewayCounters
from ingest.outbox import Outbox, Row
from ingest.status import offline_payload
from meterflow import retry
from meterflow.envelope import FrameBatch, encode_batch, topic
from meterflow.logs import ctx, get_logger
from meterflow.mqtt import NO_MATCHING_SUBSCRIBERS, make_client, speaks_v5

log = get_logger(__name__)

_SPLICE = "@frames@"  # placeholder the stored JSON frames replace, so they are not parsed and re-encoded
RECONNECT_RESEND_S = 2.0  # after a reconnect, unconfirmed batches go again this soon (the broker may have lost them)


def build_envelope(gateway_id: str, kind: str, bodies: list[str], batch_id: str, sent: float) -> bytes:
    """The contract's envelope (meterflow.envelope.encode_batch) around frames already stored as JSON."""
    shell = encode_batch(FrameBatch(gateway_id=gateway_id, kind=kind, frames=[_SPLICE],
                                    batch_id=batch_id, sent=sent))
    return shell.replace(f'["{_SPLICE}"]'.encode(), b"[" + ",".join(bodies).encode() + b"]", 1)


@dataclass
class _Batch:
    kind: str
    ids: list[int]
    due: float  # monotonic time to send it again if still unconfirmed
    attempts: int = 1


class Publisher:
    """The MQTT side of the gateway. Thread-safe `notify`, `drain`, `publish_status`, `close`."""

    def __init__(self, cfg: MqttConfig, gateway_id: str, outbox: Outbox, counters: GatewayCounters,
                 batch_max_frames: int, batch_max_ms: int,
                 on_connected: Callable[[], None] | None = None) -> None:
        self.cfg = cfg
        self.gateway_id = gateway_id
        self.outbox = outbox
        self.counters = counters
        self.batch_max_frames = batch_max_frames
        self.batch_max_s = batch_max_ms / 1000.0
        self.on_connected = on_connected
        self.commit_acks = cfg.delivery == "commit"
        self.status_topic = topic(cfg.topic_prefix, gateway_id, "status")
        self.ack_topic = topic(cfg.topic_prefix, gateway_id, "ack")
        self.client_id = cfg.client_id or f"meterflow-gw-{gateway_id}"
        self.boot = int(time.time())
        self.resend_policy = retry.Backoff(min(1.0, cfg.ack_timeout_s), max(cfg.ack_timeout_s * 4, 1.0))
        self._n = 0
        self._cursor = 0
        self._lock = threading.Lock()
        self._batches: dict[str, _Batch] = {}  # sent, not yet confirmed
        self._mids: dict[int, str] = {}  # PUBACK pending -> batch id
        self._early: dict[int, ReasonCode] = {}  # PUBACKs that beat publish() returning
        self._status_mids: set[int] = set()  # status messages in flight: their PUBACKs confirm nothing
        self._confirmed: list[int] = []  # outbox ids to delete
        self._unconfirmed_logged = 0.0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._ever_connected = False
        self._flush = 0
        self._v5 = cfg.protocol != "3.1.1"
        self._thread: threading.Thread | None = None
        self.client: mqtt.Client | None = None
        cfg.password_value()  # an unreadable password file stops the start here, not in a retry loop

    # ---- connection -------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"publisher-{self.gateway_id}", daemon=True)
        self._thread.start()

    def _open(self) -> None:
        """Ask the broker which protocol it speaks (retrying while it is unreachable), then connect."""
        cfg = self.cfg
        log.info("connecting to broker", extra=ctx(gateway_id=self.gateway_id, host=cfg.host, port=cfg.port,
                                                   tls=cfg.tls, username=cfg.username or "",
                                                   delivery=cfg.delivery))
        for attempt in retry.DEFAULT.retrying("broker probe", (OSError,), self._stop, gateway_id=self.gateway_id):
            with attempt:
                self._v5 = speaks_v5(cfg, self.client_id)
        client = make_client(cfg, self.client_id, self._v5)
        client.will_set(self.status_topic, offline_payload(self.gateway_id), qos=1, retain=True)
        client.max_inflight_messages_set(cfg.max_inflight + 2)  # + status messages
        client.reconnect_delay_set(min_delay=max(1, int(cfg.reconnect_min_s)), max_delay=int(cfg.reconnect_max_s))
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_ack
        if self._v5:
            client.connect_async(cfg.host, cfg.port, keepalive=cfg.keepalive_s, clean_start=True)
        else:
            client.connect_async(cfg.host, cfg.port, keepalive=cfg.keepalive_s)
        self.client = client
        client.loop_start()
        log.info("broker protocol", extra=ctx(gateway_id=self.gateway_id, mqtt_version="5" if self._v5 else "3.1.1"))

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: object, reason_code: ReasonCode,
                    properties: object) -> None:
        if reason_code.is_failure:
            log.warning("broker refused connection", extra=ctx(gateway_id=self.gateway_id, reason=str(reason_code)))
            return
        if self.commit_acks:
            client.subscribe(self.ack_topic, qos=1)
        with self._lock:
            if self._ever_connected:  # the broker may have restarted and lost what it held: resend soon
                soon = time.monotonic() + RECONNECT_RESEND_S
                for b in self._batches.values():
                    b.due = min(b.due, soon)
        self._ever_connected = True
        self._connected.set()
        CONNECTED.set(1)
        log.info("connected to broker", extra=ctx(gateway_id=self.gateway_id, unconfirmed=len(self._batches),
                                                  outbox_depth=self.outbox.depth))
        if self.on_connected is not None:
            self.on_connected()
        self._wake.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: object, flags: object, reason_code: ReasonCode,
                       properties: object) -> None:
        was = self._connected.is_set()
        self._connected.clear()
        CONNECTED.set(0)
        if was and not self._stop.is_set():
            log.warning("broker connection lost; frames stay in the outbox",
                        extra=ctx(gateway_id=self.gateway_id, reason=str(reason_code)))

    def _on_publish(self, client: mqtt.Client, userdata: object, mid: int, reason_code: ReasonCode,
                    properties: object) -> None:
        with self._lock:
            if mid in self._status_mids:
                self._status_mids.discard(mid)
                return
            batch_id = self._mids.pop(mid, None)
            if batch_id is None:
                self._early[mid] = reason_code
                return
            self._puback(batch_id, reason_code)
        self._wake.set()

    def _puback(self, batch_id: str, reason: ReasonCode) -> None:
        """(lock held) A PUBACK: confirmation only in broker mode and only with reason 0; 0x10 or a refusal
        schedules the batch again after a back-off."""
        batch = self._batches.get(batch_id)
        if batch is None:
            return
        code = reason.value
        if code == 0:
            if not self.commit_acks:
                self._confirm(batch_id)
            return
        batch.due = time.monotonic() + self.resend_policy.delay(batch.attempts)
        now = time.monotonic()
        if now - self._unconfirmed_logged >= 10.0:  # one line per 10 s, not one per batch
            self._unconfirmed_logged = now
            what = "broker refused a batch; it stays in the outbox and is sent again"
            if code == NO_MATCHING_SUBSCRIBERS:
                what = "no decoder is subscribed (PUBACK 0x10); batch kept and sent again"
            log.warning(what, extra=ctx(gateway_id=self.gateway_id, reason=str(reason), attempts=batch.attempts,
                                        retry_s=round(batch.due - now, 1)))

    def _confirm(self, batch_id: str) -> None:
        batch = self._batches.pop(batch_id, None)
        if batch is not None:
            self._confirmed.extend(batch.ids)

    def _on_ack(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        """A decoder committed these batches: their frames may leave the outbox."""
        try:
            body = json.loads(msg.payload)
            ids = body.get("batches") if isinstance(body, dict) else None
        except (ValueError, RecursionError):
            ids = None
        if not isinstance(ids, list):
            log.warning("unreadable commit acknowledgement ignored", extra=ctx(gateway_id=self.gateway_id))
            return
        with self._lock:
            for batch_id in ids:
                if isinstance(batch_id, str):
                    self._confirm(batch_id)
        self._wake.set()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    # ---- publishing loop --------------------------------------------------------------------------
    def notify(self) -> None:
        """New frames are in the outbox."""
        self._wake.set()

    def _sleep(self, seconds: float) -> None:
        self._wake.wait(seconds)
        self._wake.clear()

    def _run(self) -> None:
        try:
            self._open()
        except OSError:  # stopped before the broker ever answered
            return
        while not self._stop.is_set():
            try:
                self._step()
            except Exception:  # a bug or a broken disk: log, back off, keep the gateway alive
                log.exception("publisher step failed", extra=ctx(gateway_id=self.gateway_id))
                self._stop.wait(1.0)
        self._apply_confirmed()

    def _due(self) -> tuple[str, _Batch] | None:
        now = time.monotonic()
        with self._lock:
            for batch_id, batch in self._batches.items():
                if batch.due <= now and batch_id not in self._mids.values():
                    batch.attempts += 1
                    batch.due = now + self.cfg.ack_timeout_s + self.resend_policy.delay(batch.attempts)
                    return batch_id, batch
        return None

    def _step(self) -> None:
        self._apply_confirmed()
        if not self._connected.is_set():
            self._sleep(0.2)
            return
        due = self._due()
        if due is not None:
            batch_id, batch = due
            rows = self.outbox.fetch_ids(batch.ids)
            if not rows:
                with self._lock:
                    self._batches.pop(batch_id, None)
                return
            self.counters.resend(len(rows))
            self._publish(batch_id, batch.kind, rows)
            return
        with self._lock:
            busy = len(self._batches)
        if busy >= self.cfg.max_inflight:
            self._sleep(0.05)
            return
        rows = self.outbox.fetch_after(self._cursor, self.batch_max_frames)
        if not rows:
            self._sleep(0.1)
            return
        if len(rows) < self.batch_max_frames and not self._flush:
            wait = rows[0][3] + self.batch_max_s - time.time()
            if wait > 0:
                self._sleep(min(wait, 0.05))
                return
        self._cursor = rows[-1][0]
        for kind, group in groupby(rows, key=lambda r: r[1]):
            chunk = list(group)
            self._n += 1
            batch_id = f"{self.gateway_id}:{self.boot}:{self._n}"
            with self._lock:
                self._batches[batch_id] = _Batch(kind, [r[0] for r in chunk],
                                                 time.monotonic() + self.cfg.ack_timeout_s)
            self._publish(batch_id, kind, chunk)

    def _publish(self, batch_id: str, kind: str, rows: list[Row]) -> None:
        payload = build_envelope(self.gateway_id, kind, [r[2] for r in rows], batch_id, round(time.time(), 3))
        assert self.client is not None
        info = self.client.publish(topic(self.cfg.topic_prefix, self.gateway_id, kind), payload, qos=1)
        with self._lock:
            early = self._early.pop(info.mid, None)
            if early is None:
                self._mids[info.mid] = batch_id
            else:
                self._puback(batch_id, early)

    def _apply_confirmed(self) -> None:
        with self._lock:
            done, self._confirmed = self._confirmed, []
        if done:
            self.outbox.ack(done)
            self.counters.publish(len(done))
        OUTBOX_DEPTH.set(self.outbox.depth)

    # ---- control ----------------------------------------------------------------------------------
    def pending(self) -> int:
        with self._lock:
            return len(self._batches) + len(self._confirmed)

    def drain(self, timeout: float) -> bool:
        """Block until every stored frame is confirmed (outbox empty) or the timeout passes."""
        deadline = time.monotonic() + timeout
        self._flush += 1
        try:
            while time.monotonic() < deadline:
                if self.outbox.depth == 0 and self.pending() == 0:
                    return True
                self._wake.set()
                time.sleep(0.01)
            return self.outbox.depth == 0 and self.pending() == 0
        finally:
            self._flush -= 1

    def publish_status(self, payload: bytes) -> mqtt.MQTTMessageInfo | None:
        """Retained status, QoS 1, straight to the broker (not through the outbox: only the latest matters)."""
        if self.client is None:
            return None
        info = self.client.publish(self.status_topic, payload, qos=1, retain=True)
        with self._lock:
            if self._early.pop(info.mid, None) is None:
                self._status_mids.add(info.mid)
        return info

    def close(self, timeout: float = 2.0) -> None:
        """Stop sending, wait briefly for confirmations of what is in flight, say offline, disconnect."""
        deadline = time.monotonic() + timeout
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        while self.connected and time.monotonic() < deadline:
            with self._lock:
                if not self._batches:
                    break
            time.sleep(0.01)
        self._apply_confirmed()
        if self.client is None:
            return
        if self.connected:
            info = self.publish_status(offline_payload(self.gateway_id))
            with contextlib.suppress(RuntimeError, ValueError, AttributeError):
                assert info is not None
                info.wait_for_publish(max(0.1, deadline - time.monotonic()))
        self.client.disconnect()
        self.client.loop_stop()
        CONNECTED.set(0)
