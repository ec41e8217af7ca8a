"""Moves frames from the outbox to the broker in batches, QoS 1, and deletes them on PUBACK.

One thread reads the outbox in arrival order (a cursor), packs up to N frames or T ms into one
envelope per kind, and keeps at most `max_inflight` batches unacknowledged. paho re-sends its
unacknowledged messages after a reconnect; after a process restart the cursor starts at the head of
the outbox again, so delivery is at-least-once and consumers deduplicate by frame content.
"""

from __future__ import annotations

import contextlib
import ssl
import threading
import time
from collections.abc import Callable
from itertools import groupby

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from ingest.config import MqttConfig
from ingest.counters import CONNECTED, OUTBOX_DEPTH, GatewayCounters
from ingest.outbox import Outbox, Row
from ingest.status import offline_payload
from meterflow.envelope import FrameBatch, encode_batch, topic
from meterflow.logs import ctx, get_logger

log = get_logger(__name__)

_SPLICE = "@frames@"  # placeholder the stored JSON frames replace, so they are not parsed and re-encoded
_UNSUPPORTED_PROTOCOL = (0x84, 1)  # MQTT 5 reason / MQTT 3 return code for "unsupported protocol version"
CONNACK_TIMEOUT_S = 5.0  # protocol "auto": no CONNACK to an MQTT 5 CONNECT within this -> try 3.1.1


def build_envelope(gateway_id: str, kind: str, bodies: list[str], batch_id: str, sent: float) -> bytes:
    """The contract's envelope (meterflow.envelope.encode_batch) around frames already stored as JSON."""
    shell = encode_batch(FrameBatch(gateway_id=gateway_id, kind=kind, frames=[_SPLICE],  # type: ignore[list-item]
                                    batch_id=batch_id, sent=sent))
    return shell.replace(f'["{_SPLICE}"]'.encode(), b"[" + ",".join(bodies).encode() + b"]", 1)


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
        self.status_topic = topic(cfg.topic_prefix, gateway_id, "status")
        self.boot = int(time.time())
        self._n = 0
        self._cursor = 0
        self._lock = threading.Lock()
        self._inflight: dict[int, list[int]] = {}
        self._early: dict[int, bool] = {}  # mid -> failed, for PUBACKs that beat publish() returning
        self._status_mids: set[int] = set()  # status messages in flight: their PUBACKs delete nothing
        self._refusals = 0  # batches refused in a row (PUBACK reason >= 0x80), for the back-off
        self._acked: list[int] = []
        self._retry: list[int] = []
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._flush = 0
        self._v5 = cfg.protocol in ("auto", "5")
        self._fallback = False
        self._acked_connect = False  # a CONNACK was seen on this client
        self._attempt_at: float | None = None  # TCP connect attempt under way, waiting for CONNACK
        self._thread: threading.Thread | None = None
        self.client = self._make_client()

    # ---- connection -------------------------------------------------------------------------------
    def _make_client(self) -> mqtt.Client:
        cfg = self.cfg
        client_id = cfg.client_id or f"meterflow-gw-{self.gateway_id}"
        if self._v5:
            client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        else:
            client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311,
                                 clean_session=True)
        if cfg.username:
            client.username_pw_set(cfg.username, cfg.password_value())
        if cfg.tls:
            client.tls_set(ca_certs=str(cfg.ca_file) if cfg.ca_file else None,
                           certfile=str(cfg.cert_file) if cfg.cert_file else None,
                           keyfile=str(cfg.key_file) if cfg.key_file else None,
                           cert_reqs=ssl.CERT_REQUIRED)
            if cfg.tls_insecure:
                client.tls_insecure_set(True)
        client.will_set(self.status_topic, offline_payload(self.gateway_id), qos=1, retain=True)
        client.max_inflight_messages_set(cfg.max_inflight + 2)  # + status messages
        client.max_queued_messages_set(0)
        client.reconnect_delay_set(min_delay=max(1, int(cfg.reconnect_min_s)), max_delay=int(cfg.reconnect_max_s))
        client.on_pre_connect = self._on_pre_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        return client

    def start(self) -> None:
        self._connect()
        self._thread = threading.Thread(target=self._run, name=f"publisher-{self.gateway_id}", daemon=True)
        self._thread.start()

    def _connect(self) -> None:
        cfg = self.cfg
        log.info("connecting to broker", extra=ctx(gateway_id=self.gateway_id, host=cfg.host, port=cfg.port,
                                                   tls=cfg.tls, username=cfg.username or "",
                                                   mqtt_version="5" if self._v5 else "3.1.1"))
        if self._v5:
            self.client.connect_async(cfg.host, cfg.port, keepalive=cfg.keepalive_s, clean_start=True)
        else:
            self.client.connect_async(cfg.host, cfg.port, keepalive=cfg.keepalive_s)
        self.client.loop_start()

    def _on_pre_connect(self, client: mqtt.Client, userdata: object) -> None:
        self._attempt_at = time.monotonic()

    def _on_connect_fail(self, client: mqtt.Client, userdata: object) -> None:
        self._attempt_at = None  # broker down or unreachable: not a protocol question

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: object, reason_code: ReasonCode,
                    properties: object) -> None:
        if reason_code.is_failure:
            code = reason_code.value
            if self._v5 and self.cfg.protocol == "auto" and code in _UNSUPPORTED_PROTOCOL:
                self._fallback = True
                self._wake.set()
            log.warning("broker refused connection", extra=ctx(gateway_id=self.gateway_id, reason=str(reason_code)))
            return
        self._acked_connect = True
        self._attempt_at = None
        self._connected.set()
        CONNECTED.set(1)
        log.info("connected to broker", extra=ctx(gateway_id=self.gateway_id, inflight=len(self._inflight),
                                                  outbox_depth=self.outbox.depth))
        if self.on_connected is not None:
            self.on_connected()
        self._wake.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: object, flags: object, reason_code: ReasonCode,
                       properties: object) -> None:
        was = self._connected.is_set()
        self._connected.clear()
        CONNECTED.set(0)
        self._attempt_at = None
        if was and not self._stop.is_set():
            log.warning("broker connection lost; frames stay in the outbox",
                        extra=ctx(gateway_id=self.gateway_id, reason=str(reason_code)))

    def _on_publish(self, client: mqtt.Client, userdata: object, mid: int, reason_code: ReasonCode,
                    properties: object) -> None:
        failed = reason_code.is_failure
        with self._lock:
            if mid in self._status_mids:
                self._status_mids.discard(mid)
                return
            ids = self._inflight.pop(mid, None)
            if ids is None:
                self._early[mid] = failed
            elif failed:
                self._retry.extend(ids)
            else:
                self._acked.extend(ids)
            self._refusals = self._refusals + 1 if failed else 0
            refusals = self._refusals
        if failed and refusals & (refusals - 1) == 0:  # log the 1st, 2nd, 4th, 8th, ... in a row
            log.warning("broker refused a batch; it stays in the outbox and is sent again", extra=ctx(
                gateway_id=self.gateway_id, reason=str(reason_code), refusals_in_a_row=refusals))
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
        while not self._stop.is_set():
            try:
                self._step()
            except Exception:  # a bug or a broken disk: log, back off, keep the gateway alive
                log.exception("publisher step failed", extra=ctx(gateway_id=self.gateway_id))
                time.sleep(1.0)
        self._apply_acks()

    def _step(self) -> None:
        self._apply_acks()
        if self._fallback:
            self._reconnect_as_v311()
            return
        if not self._connected.is_set():
            started = self._attempt_at
            if (started is not None and self._v5 and self.cfg.protocol == "auto" and not self._acked_connect
                    and time.monotonic() - started > CONNACK_TIMEOUT_S):
                # an MQTT 3.1.1-only broker may ignore an MQTT 5 CONNECT instead of refusing it
                self._fallback = True
                return
            self._sleep(0.2)
            return
        with self._lock:
            busy = len(self._inflight)
            retry: list[int] = []
            if busy < self.cfg.max_inflight:
                retry, self._retry = self._retry[:self.batch_max_frames], self._retry[self.batch_max_frames:]
        if busy >= self.cfg.max_inflight:
            self._sleep(0.05)
            return
        if retry:
            # a broker refusing batches (e.g. not authorised for the topic) must not be hammered
            self._stop.wait(min(0.2 * 2 ** min(self._refusals, 8), 30.0))
            rows = self.outbox.fetch_ids(retry)
        else:
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
        self._send(rows)

    def _send(self, rows: list[Row]) -> None:
        for kind, group in groupby(rows, key=lambda r: r[1]):
            chunk = list(group)
            self._n += 1
            payload = build_envelope(self.gateway_id, kind, [r[2] for r in chunk],
                                     f"{self.gateway_id}:{self.boot}:{self._n}", round(time.time(), 3))
            ids = [r[0] for r in chunk]
            info = self.client.publish(topic(self.cfg.topic_prefix, self.gateway_id, kind), payload, qos=1)
            with self._lock:
                early = self._early.pop(info.mid, None)
                if early is None:
                    self._inflight[info.mid] = ids
                elif early:
                    self._retry.extend(ids)
                else:
                    self._acked.extend(ids)

    def _apply_acks(self) -> None:
        with self._lock:
            acked, self._acked = self._acked, []
        if acked:
            self.outbox.ack(acked)
            self.counters.publish(len(acked))
        OUTBOX_DEPTH.set(self.outbox.depth)

    def _reconnect_as_v311(self) -> None:
        log.warning("broker does not speak MQTT 5; falling back to 3.1.1", extra=ctx(gateway_id=self.gateway_id))
        self._fallback = False
        self.client.disconnect()
        self.client.loop_stop()
        self._v5 = False
        self._acked_connect = False
        self._attempt_at = None
        with self._lock:
            self._inflight.clear()
            self._early.clear()
            self._retry.clear()
            self._status_mids.clear()
        self._cursor = 0  # the old client's unacknowledged batches go again from the new one
        self.client = self._make_client()
        self._connect()

    # ---- control ----------------------------------------------------------------------------------
    def pending(self) -> int:
        with self._lock:
            return len(self._inflight) + len(self._acked) + len(self._retry)

    def drain(self, timeout: float) -> bool:
        """Block until every stored frame is acknowledged (outbox empty) or the timeout passes."""
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

    def publish_status(self, payload: bytes) -> mqtt.MQTTMessageInfo:
        """Retained status, QoS 1, straight to the broker (not through the outbox: only the latest matters)."""
        info = self.client.publish(self.status_topic, payload, qos=1, retain=True)
        with self._lock:
            if self._early.pop(info.mid, None) is None:
                self._status_mids.add(info.mid)
        return info

    def close(self, timeout: float = 2.0) -> None:
        """Stop sending, wait briefly for PUBACKs of what is in flight, say offline, disconnect."""
        deadline = time.monotonic() + timeout
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        while self.connected and time.monotonic() < deadline:
            with self._lock:
                if not self._inflight:
                    break
            time.sleep(0.01)
        self._apply_acks()
        if self.connected:
            info = self.publish_status(offline_payload(self.gateway_id))
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(max(0.1, deadline - time.monotonic()))
        self.client.disconnect()
        self.client.loop_stop()
        CONNECTED.set(0)
