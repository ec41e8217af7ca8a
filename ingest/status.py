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
    body = {
        "state": "online",
        "gw": gateway_id,
        "version": gateway_version(),
        "ts": round(time.time(), 3),
        "since": round(boot, 3),
        "mqtt_connected": connected,
        "outbox_depth": outbox_depth,
        **counters,
    }
    return json.dumps(body, separators=(",", ":")).encode()
