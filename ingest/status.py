"""The retained status message of a gateway: "online" with counters while it runs, "offline" as its
last will (broker-published when the link dies) and on a clean stop."""

from __future__ import annotations

import json
import time
from importlib import metadata
from typing import Any


def gateway_version() -> str:
    try:
        return metadata.version("meterflow")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def offline_payload(gateway_id: str) -> bytes:
    """The last will; fixed at connect time, so it carries no counters."""
    return json.dumps({"state": "offline", "gw": gateway_id}, separators=(",", ":")).encode()


def online_payload(gateway_id: str, boot: float, counters: dict[str, Any], outbox_depth: int,
                   connected: bool = True) -> bytes:
    """{"state": "online", "gw", "version", "ts", "since", "mqtt_connected",
        "counters": {frames_in, modbus_in, published, suppressed, dropped, bad_input, outbox_depth},
        "rssi": {n, min, max, mean} over the frames since the previous status}"""
    counts = dict(counters)
    rssi = counts.pop("rssi", {"n": 0})
    counts["outbox_depth"] = outbox_depth
    body = {
        "state": "online",
        "gw": gateway_id,
        "version": gateway_version(),
        "ts": round(time.time(), 3),
        "since": round(boot, 3),
        "mqtt_connected": connected,
        "counters": counts,
        "rssi": rssi,
    }
    return json.dumps(body, separators=(",", ":")).encode()
