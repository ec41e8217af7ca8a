"""The shipped broker configuration (deploy/mosquitto/meterflow.conf + meterflow.acl) under attack, with a
real gateway and decoder logged in: anonymous clients are refused, a gateway cannot publish under another
gateway's id, and the envelope's `gw` cannot claim another gateway either (the decoder trusts the topic)."""

from __future__ import annotations

import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from decoder_support import PrivateMosquitto, count

from fixtures import telegrams as omsgen
from ingest.config import GatewayConfig
from ingest.frames import ReceivedFrame
from ingest.gateway import Gateway
from meterflow.config import Settings
from meterflow.envelope import FrameBatch, encode_batch
from meterflow.mqtt import MqttSettings, make_client
from services.decoder import DecoderService
from storage.registry import import_keys

USERS = {"gw-a": "pass-a", "gw-b": "pass-b", "decoder": "pass-dec"}


@pytest.fixture
def secure_broker(tmp_path: Path) -> Iterator[PrivateMosquitto]:
    if not shutil.which("mosquitto") or not shutil.which("mosquitto_passwd"):
        pytest.skip("mosquitto / mosquitto_passwd not installed")
    broker = PrivateMosquitto(tmp_path / "broker", secure=True, persistence=True, users=USERS)
    broker.start()
    yield broker
    broker.stop()


def _connect(url: str, username: str | None, password: str | None) -> tuple[Any, dict[str, Any]]:
    cfg = MqttSettings(url=url, username=username, password=password)
    client = make_client(cfg, f"attacker-{uuid.uuid4().hex[:6]}", True)
    seen: dict[str, Any] = {"pubacks": {}}
    connected = threading.Event()

    def on_connect(c: Any, u: Any, flags: Any, reason: Any, props: Any) -> None:
        seen["connack"] = reason.value
        connected.set()

    client.on_connect = on_connect
    client.on_publish = lambda c, u, mid, reason, props: seen["pubacks"].__setitem__(mid, reason.value)
    addr = cfg.address()
    client.connect(addr.host, addr.port)
    client.loop_start()
    assert connected.wait(10)
    return client, seen


def test_anonymous_and_wrong_password_are_refused(secure_broker: PrivateMosquitto) -> None:
    for user, password in [(None, None), ("gw-a", "guess"), ("nobody", "pass-a")]:
        client, seen = _connect(secure_broker.url, user, password)
        client.loop_stop()
        assert seen["connack"] in (0x86, 0x87), (user, seen)  # bad user name or password / not authorised


def test_a_gateway_publishes_only_as_itself(secure_broker: PrivateMosquitto, clean_db: psycopg.Connection,
                                            database_url: str, tmp_path: Path) -> None:
    tels = list(omsgen.fleet_telegrams(6, 36, start=datetime.now(UTC) - timedelta(hours=12)))
    import_keys(clean_db, [{"meter_id": omsgen.meter_id(i), "key": omsgen.meter_key(omsgen.meter_id(i))}
                           for i in range(6)])
    settings = Settings(database_url=database_url, data_dir=tmp_path / ".mf",
                        mqtt={"url": secure_broker.url, "username": "decoder", "password": "pass-dec"})
    service = DecoderService(settings, database_url, client_id="sec-decoder", metrics_port=0)
    service.start()
    assert service.v5
    gw = Gateway(GatewayConfig.model_validate({
        "gateway_id": "gw-a", "mqtt": {"url": secure_broker.url, "username": "gw-a", "password": "pass-a",
                                       "ack_timeout_s": 5},
        "outbox": {"path": str(tmp_path / "a.sqlite3")}, "batch_max_ms": 20}))
    attacker, seen = _connect(secure_broker.url, "gw-a", "pass-a")
    try:
        # 1. honest traffic: stored, committed, acknowledged end to end (the outbox empties)
        gw.publish_frames(ReceivedFrame(t.frame, time.time(), -70) for t in tels[:12])
        assert gw.drain(30), "the gateway never got its commit acknowledgements"
        # 2. gw-a's password publishing as gw-b: refused by the ACL, nothing stored
        forged = encode_batch(FrameBatch("gw-b", "wmbus", [{"t": time.time(), "hex": t.frame.hex()}
                                                           for t in tels[12:24]], "x:1:1", 0.0))
        info = attacker.publish("meterflow/v1/gw-b/wmbus", forged, qos=1)
        info.wait_for_publish(10)
        # 3. gw-a's own topic, an envelope claiming gw-b: stored, but as gw-a
        spoof = encode_batch(FrameBatch("gw-b", "wmbus", [{"t": time.time(), "hex": t.frame.hex()}
                                                          for t in tels[24:]], "x:1:2", 0.0))
        spoofer, _ = _connect(secure_broker.url, "gw-a", "pass-a")  # Mosquitto may drop the refused client
        spoofer.publish("meterflow/v1/gw-a/wmbus", spoof, qos=1).wait_for_publish(10)
        spoofer.disconnect()
        spoofer.loop_stop()
        deadline = time.monotonic() + 20
        while count(database_url, "SELECT count(*) FROM readings") < 24 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert service.wait_idle(1.0, 20)
    finally:
        attacker.disconnect()
        attacker.loop_stop()
        gw.close()
        service.stop()
    assert seen["pubacks"][info.mid] == 0x87  # not authorised
    assert count(database_url, "SELECT count(*) FROM readings") == 24
    assert count(database_url, "SELECT count(*) FROM readings WHERE gateway_id = 'gw-a'") == 24
    forged_rows = clean_db.execute(
        "SELECT count(*) FROM readings r JOIN unnest(%s::text[], %s::timestamptz[]) f(m, t)"
        " ON r.meter_id = f.m AND r.time = f.t",
        ([t.meter_id for t in tels[12:24]], [t.time for t in tels[12:24]])).fetchone()
    assert forged_rows == (0,)
