"""The MQTT contract between gateways and decoder services: topics and the batch envelope.

Topics (prefix configurable, default `meterflow/v1`):
  <prefix>/<gateway_id>/wmbus        batch of raw wireless M-Bus frames           QoS 1
  <prefix>/<gateway_id>/modbus       batch of raw Modbus register reads           QoS 1
  <prefix>/<gateway_id>/status       retained JSON; LWT {"state": "offline"}      QoS 1
  <prefix>/<gateway_id>/wmbusmeters  one JSON telegram as wmbusmeters publishes it QoS 1

A batch is one JSON object (UTF-8):
  {"v": 1, "gw": "gw-01", "kind": "wmbus", "batch": "<gw>:<boot>:<n>", "sent": 1732180000.123,
   "frames": [{"t": 1732180000.101, "hex": "2E44931578563412...", "rssi": -71}, ...]}
  modbus frames: {"t": ..., "meter_id": "...", "profile": "...", "address": 0, "words": [1, 2, ...]}
`t` is the gateway receive time (Unix seconds, UTC). `hex` is the frame from the L-field, link-layer
CRCs removed. A gateway may resend a batch after a reconnect (QoS 1 is at-least-once): consumers
deduplicate by frame content, never by batch id.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

ENVELOPE_VERSION = 1
Kind = Literal["wmbus", "modbus"]


class EnvelopeError(ValueError):
    """A message that does not follow the contract; the consumer dead-letters it whole."""


@dataclass(frozen=True, slots=True)
class FrameBatch:
    gateway_id: str
    kind: str
    frames: list[Any]
    batch_id: str = ""
    sent: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def topic(prefix: str, gateway_id: str, kind: str) -> str:
    return f"{prefix}/{gateway_id}/{kind}"


def subscription(prefix: str, kind: str, shared_group: str | None = None) -> str:
    """Topic filter a decoder subscribes to; a shared group spreads load over N decoders (MQTT 5)."""
    base = f"{prefix}/+/{kind}"
    return f"$share/{shared_group}/{base}" if shared_group else base


def gateway_from_topic(topic_name: str) -> str | None:
    parts = topic_name.split("/")
    return parts[-2] if len(parts) >= 3 else None


def encode_batch(batch: FrameBatch) -> bytes:
    body: dict[str, Any] = {
        "v": ENVELOPE_VERSION,
        "gw": batch.gateway_id,
        "kind": batch.kind,
        "batch": batch.batch_id,
        "sent": batch.sent,
        "frames": batch.frames,
    }
    body.update(batch.extra)
    return json.dumps(body, separators=(",", ":")).encode()


def decode_batch(payload: bytes) -> FrameBatch:
    """Parse one message; raises EnvelopeError with a reason a dead letter can carry."""
    try:
        body = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EnvelopeError(f"not JSON: {exc}") from None
    except RecursionError:  # absurdly deep nesting: bad input like any other
        raise EnvelopeError("not JSON: nested too deeply") from None
    if not isinstance(body, dict):
        raise EnvelopeError("envelope is not a JSON object")
    if body.get("v") != ENVELOPE_VERSION:
        raise EnvelopeError(f"unsupported envelope version {body.get('v')!r} (expected {ENVELOPE_VERSION})")
    frames = body.get("frames")
    gw = body.get("gw")
    kind = body.get("kind")
    if not isinstance(frames, list) or not isinstance(gw, str) or not isinstance(kind, str):
        raise EnvelopeError("envelope needs 'gw' (string), 'kind' (string) and 'frames' (list)")
    known = {"v", "gw", "kind", "batch", "sent", "frames"}
    return FrameBatch(
        gateway_id=gw,
        kind=kind,
        frames=frames,  # entries that are not objects are the consumer's to dead-letter, one by one
        batch_id=str(body.get("batch", "")),
        sent=float(body.get("sent") or 0.0),
        extra={k: v for k, v in body.items() if k not in known},
    )
