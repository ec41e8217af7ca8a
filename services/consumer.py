"""The decoder's MQTT plumbing: a persistent session, (shared) subscriptions renewed on every connect,
manual acknowledgements, and the commit acknowledgements published to the gateways.

The session is persistent (clean start off, fixed client id) with a bounded expiry: messages published
while a decoder restarts wait for it, and a decoder that never returns stops holding its share of a shared
subscription after `session_expiry` seconds (the gateways resend whatever was not committed). The
subscription is sent again on every connect, because Mosquitto does not persist `$share` subscriptions.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt

from meterflow import retry
from meterflow.envelope import subscription, topic
from meterflow.logs import ctx, get_logger
from meterflow.mqtt import MqttSettings, connect_properties, end_session_properties, make_client, speaks_v5

log = get_logger(__name__)
QOS = 1


@dataclass(frozen=True, slots=True)
class Delivery:
    """What must be acknowledged once a message is committed: to the broker (mid) and to its gateway."""

    generation: int
    mid: int
    qos: int
    gateway_id: str | None
    batch_id: str | None


class MqttConsumer:
    """paho in its own network thread; `on_message(topic, payload, delivery)` is called from it."""

    def __init__(self, cfg: MqttSettings, client_id: str, prefix: str, kinds: Iterable[str],
                 shared_group: str | None, on_message: Callable[[str, bytes, Delivery], None], *,
                 receive_maximum: int = 1000, session_expiry: int = 120) -> None:
        self.cfg = cfg
        self.client_id = client_id
        self.prefix = prefix
        self.kinds = tuple(kinds)
        self.shared_group = shared_group
        self.on_message = on_message
        self.receive_maximum = receive_maximum
        self.session_expiry = session_expiry
        self.v5 = False
        self.generation = 0
        self.stopping = False
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self._lock = threading.Lock()
        self.client: mqtt.Client | None = None

    def start(self, stop: threading.Event | None = None) -> None:
        """Find out the protocol (retrying while the broker is unreachable) and connect in the background."""
        for attempt in retry.DEFAULT.retrying("broker probe", (OSError,), stop, client_id=self.client_id):
            with attempt:
                self.v5 = speaks_v5(self.cfg, self.client_id)
        addr = self.cfg.address()
        client = make_client(self.cfg, self.client_id, self.v5, persistent=True)
        client.manual_ack_set(True)
        client.reconnect_delay_set(1, 5)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        if self.v5:
            client.connect_async(addr.host, addr.port, keepalive=self.cfg.keepalive_s, clean_start=False,
                                 properties=connect_properties(self.session_expiry, self.receive_maximum))
        else:
            client.connect_async(addr.host, addr.port, keepalive=self.cfg.keepalive_s)
        self.client = client
        client.loop_start()

    # -- callbacks (network thread) ------------------------------------------------------------------------

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if getattr(reason, "is_failure", False):
            log.warning("broker refused connection", extra=ctx(reason=str(reason), client_id=self.client_id))
            return
        with self._lock:
            self.generation += 1
        group = self.shared_group if self.v5 else None
        topics = [(subscription(self.prefix, kind, group), QOS) for kind in self.kinds]
        client.subscribe(topics)
        self.connected.set()
        log.info("connected to broker", extra=ctx(mqtt5=self.v5, client_id=self.client_id,
                                                  session_present=getattr(flags, "session_present", None),
                                                  topics=",".join(t for t, _ in topics)))

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, properties: Any) -> None:
        failed = [str(r) for r in reasons if getattr(r, "is_failure", False)]
        if failed:
            log.error("broker refused a subscription", extra=ctx(reasons=",".join(failed)))
        self.subscribed.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        self.connected.clear()
        with self._lock:
            self.generation += 1  # acks of older messages would go to the wrong session: the broker redelivers
        if not self.stopping:
            log.warning("disconnected from broker; reconnecting", extra=ctx(reason=str(reason)))

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if self.stopping:
            return  # not acknowledged: the broker redelivers it to the next session
        parts = msg.topic.split("/")
        gw = parts[-2] if len(parts) >= 3 else None
        self.on_message(msg.topic, bytes(msg.payload), Delivery(self.generation, msg.mid, msg.qos, gw, None))

    # -- after a commit (writer thread) ---------------------------------------------------------------------

    def acknowledge(self, deliveries: Iterable[Delivery]) -> None:
        """PUBACK what is committed, then tell each gateway which of its batches are stored."""
        client = self.client
        if client is None:
            return
        generation = self.generation
        by_gateway: dict[str, list[str]] = {}
        for d in deliveries:
            if d.qos and d.generation == generation:
                client.ack(d.mid, d.qos)
            if d.gateway_id and d.batch_id:
                by_gateway.setdefault(d.gateway_id, []).append(d.batch_id)
        for gw, batches in by_gateway.items():
            body = json.dumps({"batches": batches}, separators=(",", ":")).encode()
            client.publish(topic(self.prefix, gw, "ack"), body, qos=QOS)

    def stop(self, retire: bool) -> None:
        """Disconnect; `retire` ends the broker session (MQTT 5: session expiry 0; 3.1.1: a clean session)."""
        self.stopping = True
        client = self.client
        if client is None:
            return
        time.sleep(0.05)  # let the network thread send the last PUBACKs
        if retire and self.v5:
            client.disconnect(properties=end_session_properties())
        else:
            client.disconnect()
        client.loop_stop()
        if retire and not self.v5:
            self._end_v311_session()

    def _end_v311_session(self) -> None:
        addr = self.cfg.address()
        client = make_client(self.cfg, self.client_id, False)
        try:
            client.connect(addr.host, addr.port, keepalive=10)
            client.loop_start()
            time.sleep(0.2)
            client.disconnect()
            client.loop_stop()
        except OSError as exc:
            log.warning("could not end the broker session", extra=ctx(error=str(exc)))
