"""The field gateway: sources -> dedup -> durable outbox -> batched QoS 1 publish, plus status.

`Gateway` is both the service behind `meterflow gateway` (`run`) and a library the demo uses to
publish a simulated fleet (`publish_frames`, `drain`, `close`).
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterable
from typing import Any

from ingest.config import GatewayConfig
from ingest.counters import OUTBOX_DEPTH, GatewayCounters
from ingest.dedup import Deduplicator
from ingest.frames import FrameSink, ModbusRead, ReceivedFrame
from ingest.outbox import Outbox
from ingest.publisher import Publisher
from ingest.sources import build_sources
from ingest.status import online_payload
from meterflow.logs import ctx, get_logger
from meterflow.metrics import serve_metrics

log = get_logger(__name__)

__all__ = ["Gateway", "GatewayConfig"]

# Frames enter the outbox first, in small transactions: at most OUTBOX_TXN_FRAMES frames or OUTBOX_TXN_S
# seconds after the first one is read. The hand-over queue between source threads and the outbox writer
# is small and bounded (back-pressure on the sources), so a power cut loses at most that much.
OUTBOX_TXN_FRAMES = 500
OUTBOX_TXN_S = 0.05
_QUEUE_MAX = 2 * OUTBOX_TXN_FRAMES


class _QueueSink(FrameSink):
    """What source threads write to: a bounded queue (back-pressure) and the bad-input counter."""

    def __init__(self, q: queue.Queue[ReceivedFrame | ModbusRead], counters: GatewayCounters,
                 gateway_id: str) -> None:
        self.q = q
        self.counters = counters
        self.gateway_id = gateway_id
        self._last_log: dict[tuple[str, str], tuple[float, int]] = {}

    def frame(self, item: ReceivedFrame | ModbusRead) -> None:
        self.q.put(item)

    def bad(self, source: str, reason: str, detail: str = "") -> None:
        """Count every one; log at most one line per source and reason per second (a noisy line
        must not flood the log), with how many were not logged since."""
        self.counters.bad(source, reason)
        key = (source, reason)
        now = time.monotonic()
        last, quiet = self._last_log.get(key, (0.0, 0))
        if now - last < 1.0:
            self._last_log[key] = (last, quiet + 1)
            return
        self._last_log[key] = (now, 0)
        log.warning("bad input from source", extra=ctx(gateway_id=self.gateway_id, source=source, reason=reason,
                                                       detail=detail[:200], not_logged_since=quiet))


class Gateway:
    """One gateway: owns the outbox, the dedup window, the MQTT publisher and the counters."""

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.gateway_id = config.gateway_id
        self.counters = GatewayCounters()
        self.outbox = Outbox(config.outbox_path(), config.outbox.max_frames, config.outbox.synchronous,
                             label=config.gateway_id)
        self.dedup = Deduplicator(config.dedup_window_s)
        self._dedup_lock = threading.Lock()
        self.boot = time.time()
        self.publisher = Publisher(config.mqtt, config.gateway_id, self.outbox, self.counters,
                                   config.batch_max_frames, config.batch_max_ms, on_connected=self.publish_status)
        self._closed = False
        self.publisher.start()

    # ---- library API --------------------------------------------------------------------------------
    def publish_frames(self, frames: Iterable[ReceivedFrame]) -> int:
        """Enqueue wM-Bus frames (repeats inside the dedup window are counted, not stored); returns how
        many went into the outbox. They are published by the background publisher."""
        bodies: list[str] = []
        rssi: list[int] = []
        n_in = 0
        with self._dedup_lock:
            is_new = self.dedup.is_new
            for f in frames:
                n_in += 1
                if f.rssi is not None:
                    rssi.append(f.rssi)
                if is_new(f.data, f.received_at):
                    bodies.append(f.wire())
        self.counters.received("wmbus", n_in)
        if rssi:
            self.counters.add_rssi(rssi)
        if n_in > len(bodies):
            self.counters.suppress(n_in - len(bodies))
        self._enqueue("wmbus", bodies)
        return len(bodies)

    def publish_modbus(self, reads: Iterable[ModbusRead]) -> int:
        """Enqueue raw Modbus register reads (polled on a schedule, so never deduplicated)."""
        bodies = [r.wire() for r in reads]
        self.counters.received("modbus", len(bodies))
        self._enqueue("modbus", bodies)
        return len(bodies)

    def _enqueue(self, kind: str, bodies: list[str]) -> None:
        if not bodies:
            return
        dropped = self.outbox.put_many(kind, bodies)
        if dropped:
            self.counters.drop(dropped)
        OUTBOX_DEPTH.set(self.outbox.depth)
        self.publisher.notify()

    def drain(self, timeout: float) -> bool:
        """Block until the outbox is empty (everything PUBACKed) or `timeout` seconds pass."""
        return self.publisher.drain(timeout)

    def status(self, reset_rssi: bool = False) -> dict[str, Any]:
        """The body of the retained status message."""
        payload = online_payload(self.gateway_id, self.boot, self.counters.snapshot(reset_rssi),
                                 self.outbox.depth, self.publisher.connected)
        return dict(json.loads(payload))

    def publish_status(self) -> None:
        """Refresh the retained status; skipped while disconnected (a queued, stale status would land after
        the fresh one sent on reconnect)."""
        if not self.publisher.connected:
            return
        payload = online_payload(self.gateway_id, self.boot, self.counters.snapshot(reset_rssi=True),
                                 self.outbox.depth, self.publisher.connected)
        self.publisher.publish_status(payload)

    def close(self) -> None:
        """Stop publishing (what is acknowledged is deleted), say offline, close the outbox."""
        if self._closed:
            return
        self._closed = True
        self.publisher.close()
        self.outbox.close()
        log.info("gateway closed", extra=ctx(gateway_id=self.gateway_id, **self.counters.snapshot(False)))

    def __enter__(self) -> Gateway:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- service ------------------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Read the configured sources and Modbus meters, publish, refresh status, until `stop` is set."""
        cfg = self.config
        try:
            serve_metrics(cfg.metrics_port, cfg.metrics_addr)
        except OSError as exc:  # the port is taken: run without /metrics rather than not at all
            log.error("cannot serve metrics", extra=ctx(gateway_id=self.gateway_id, port=cfg.metrics_port,
                                                        error=str(exc)))
        q: queue.Queue[ReceivedFrame | ModbusRead] = queue.Queue(maxsize=_QUEUE_MAX)
        sink = _QueueSink(q, self.counters, self.gateway_id)
        workers = build_sources(cfg, sink)
        threads = [threading.Thread(target=w.run, args=(stop,), name=w.name, daemon=True) for w in workers]
        for t in threads:
            t.start()
        log.info("gateway running", extra=ctx(gateway_id=self.gateway_id, sources=len(workers),
                                              outbox_depth=self.outbox.depth, config=json.dumps(cfg.masked())))
        next_status = time.monotonic() + cfg.status_interval_s
        try:
            while not stop.is_set():
                self._pump(q, OUTBOX_TXN_S)
                if time.monotonic() >= next_status:
                    self.publish_status()
                    next_status = time.monotonic() + cfg.status_interval_s
        finally:
            for t in threads:
                t.join(timeout=2.0)
            while not q.empty():
                self._pump(q, 0.0)
            self.close()

    def _pump(self, q: queue.Queue[ReceivedFrame | ModbusRead], wait: float) -> None:
        """Move what sources produced into the outbox: one transaction of at most OUTBOX_TXN_FRAMES frames,
        committed at most OUTBOX_TXN_S after the first of them arrived."""
        items: list[ReceivedFrame | ModbusRead] = []
        try:
            items.append(q.get(timeout=wait) if wait > 0 else q.get_nowait())
            deadline = time.monotonic() + OUTBOX_TXN_S
            while len(items) < OUTBOX_TXN_FRAMES:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                items.append(q.get(timeout=left) if wait > 0 else q.get_nowait())
        except queue.Empty:
            pass
        if not items:
            return
        self.publish_frames(i for i in items if isinstance(i, ReceivedFrame))
        reads = [i for i in items if isinstance(i, ModbusRead)]
        if reads:
            self.publish_modbus(reads)
