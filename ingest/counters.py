"""Gateway counters, kept twice on purpose: plain numbers for the retained status message (per gateway
instance) and Prometheus series (per process, scraped from the metrics port)."""

from __future__ import annotations

import threading
from collections import Counter as TallyCounter
from dataclasses import dataclass, field
from typing import Any

from meterflow import metrics

FRAMES_IN = metrics.counter("meterflow_gateway_frames_in_total", "Frames received from sources", ("kind",))
PUBLISHED = metrics.counter("meterflow_gateway_frames_published_total",
                            "Frames confirmed (committed by a decoder, or PUBACKed in broker mode)")
RESENT = metrics.counter("meterflow_gateway_frames_resent_total", "Frames sent again, unconfirmed in time")
SUPPRESSED = metrics.counter("meterflow_gateway_frames_suppressed_total", "Repeats inside the dedup window")
DROPPED = metrics.counter("meterflow_gateway_frames_dropped_total", "Oldest frames dropped from a full outbox")
BAD_INPUT = metrics.counter("meterflow_gateway_bad_input_total", "Unusable input from a source",
                            ("source", "reason"))
MODBUS_POLLS = metrics.counter("meterflow_gateway_modbus_polls_total", "Modbus polls", ("result",))
OUTBOX_DEPTH = metrics.gauge("meterflow_gateway_outbox_depth", "Frames waiting for confirmation")
CONNECTED = metrics.gauge("meterflow_gateway_mqtt_connected", "1 while connected to the broker")


@dataclass
class RssiSummary:
    """Min / max / mean RSSI over the frames since the last status message."""

    n: int = 0
    total: int = 0
    lo: int = 0
    hi: int = 0

    def add(self, rssi: int) -> None:
        if self.n == 0:
            self.lo = self.hi = rssi
        else:
            self.lo = min(self.lo, rssi)
            self.hi = max(self.hi, rssi)
        self.n += 1
        self.total += rssi

    def as_json(self) -> dict[str, Any]:
        if not self.n:
            return {"n": 0}
        return {"n": self.n, "min": self.lo, "max": self.hi, "mean": round(self.total / self.n, 1)}


@dataclass
class GatewayCounters:
    """What the status message reports; safe to bump from several threads."""

    frames_in: int = 0
    modbus_in: int = 0
    published: int = 0
    resent: int = 0
    suppressed: int = 0
    dropped: int = 0
    bad_input: TallyCounter[str] = field(default_factory=TallyCounter)
    rssi: RssiSummary = field(default_factory=RssiSummary)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def received(self, kind: str, n: int) -> None:
        with self._lock:
            if kind == "modbus":
                self.modbus_in += n
            else:
                self.frames_in += n
        FRAMES_IN.labels(kind).inc(n)

    def add_rssi(self, values: list[int]) -> None:
        with self._lock:
            for v in values:
                self.rssi.add(v)

    def suppress(self, n: int) -> None:
        with self._lock:
            self.suppressed += n
        SUPPRESSED.inc(n)

    def drop(self, n: int) -> None:
        with self._lock:
            self.dropped += n
        DROPPED.inc(n)

    def publish(self, n: int) -> None:
        with self._lock:
            self.published += n
        PUBLISHED.inc(n)

    def resend(self, n: int) -> None:
        with self._lock:
            self.resent += n
        RESENT.inc(n)

    def bad(self, source: str, reason: str) -> None:
        with self._lock:
            self.bad_input[f"{source}:{reason}"] += 1
        BAD_INPUT.labels(source, reason).inc()

    def snapshot(self, reset_rssi: bool = True) -> dict[str, Any]:
        """Counters as JSON for the status message; the RSSI summary restarts each interval."""
        with self._lock:
            out = {
                "frames_in": self.frames_in,
                "modbus_in": self.modbus_in,
                "published": self.published,
                "resent": self.resent,
                "suppressed": self.suppressed,
                "dropped": self.dropped,
                "bad_input": dict(self.bad_input),
                "rssi": self.rssi.as_json(),
            }
            if reset_rssi:
                self.rssi = RssiSummary()
        return out
