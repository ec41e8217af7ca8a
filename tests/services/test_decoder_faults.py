"""Faults against real servers: the database stopped for a minute mid-stream, the decoder killed with
SIGKILL mid-batch and restarted. In both, rows in readings equal the distinct readings sent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from decoder_support import REPO_ROOT, PrivateMosquitto, PrivatePostgres, Publisher, count

from bench.ingest import build_messages
from fixtures import telegrams as omsgen
from meterflow.config import Settings
from services.decoder import DecoderService
from storage.migrate import upgrade
from storage.registry import import_keys

OUTAGE_S = float(os.environ.get("METERFLOW_TEST_OUTAGE_S", "60"))
pytestmark = pytest.mark.slow


def wait_for(cond: Callable[[], bool], timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout} s")
        time.sleep(0.1)


def _keys(n: int) -> list[dict[str, object]]:
    return [{"meter_id": omsgen.meter_id(i), "key": omsgen.meter_key(omsgen.meter_id(i))} for i in range(n)]


def test_database_down_for_a_minute_loses_nothing(private_pg: PrivatePostgres, private_broker: PrivateMosquitto,
                                                  prefix: str, tmp_path: Path) -> None:
    dsn = private_pg.url
    with psycopg.connect(dsn) as conn:
        upgrade(conn, "Europe/Warsaw")
        import_keys(conn, _keys(200))
    tels = list(omsgen.fleet_telegrams(200, 6000, start=datetime.now(UTC) - timedelta(days=1)))
    messages = build_messages(tels, prefix, 50, 3, time.time())  # 120 messages
    settings = Settings(database_url=dsn, mqtt={"url": private_broker.url}, data_dir=tmp_path / ".mf")
    receive_max = 5
    service = DecoderService(settings, dsn, private_broker.url, client_id=f"mftest-outage-{uuid.uuid4().hex[:6]}",
                             topic_prefix=prefix, metrics_port=0, receive_maximum=receive_max)
    service.start()
    pub = Publisher(private_broker.url)
    try:
        for topic, payload in messages[:40]:
            pub.publish(topic, payload)
        wait_for(lambda: service.stats()["messages"] >= 40, 30, "first 40 messages committed")

        private_pg.stop()
        down_at = time.monotonic()
        for topic, payload in messages[40:]:  # gateways keep sending while the database is down
            pub.publish(topic, payload)
            time.sleep(0.05)
        time.sleep(3)
        held = service.stats()
        assert held["messages"] == 40  # nothing acknowledged while the database is down
        # consumption stopped: at most the receive maximum of messages is held unacknowledged
        assert held["received_messages"] - held["messages"] <= receive_max
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down_at)))
        assert service.stats()["messages"] == 40
        private_pg.start()

        wait_for(lambda: service.stats()["messages"] >= len(messages), 60, "all messages committed after restart")
        assert service.wait_idle(0.5, timeout=20)
        stats = service.stats()
    finally:
        pub.close()
        service.stop()
    assert stats["db_errors"] >= 1
    assert count(dsn, "SELECT count(*) FROM readings") == len({(t.meter_id, t.time) for t in tels}) == 6000
    assert count(dsn, "SELECT count(*) FROM dead_letters") == 0


def _decoder_process(env: dict[str, str], cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "cli.main", "decoder", "--instance", env["MF_INSTANCE"]],
                            env=env, cwd=cwd, stdout=log.open("ab"), stderr=subprocess.STDOUT)


def test_decoder_killed_mid_batch_and_restarted_loses_nothing(clean_db: psycopg.Connection, database_url: str,
                                                               private_broker: PrivateMosquitto, prefix: str,
                                                               tmp_path: Path) -> None:
    import_keys(clean_db, _keys(300))
    tels = list(omsgen.fleet_telegrams(300, 9000, start=datetime.now(UTC) - timedelta(days=1)))
    messages = build_messages(tels, prefix, 30, 3, time.time())  # 300 messages
    env = {**os.environ, "METERFLOW_DATABASE_URL": database_url, "METERFLOW_MQTT_URL": private_broker.url,
           "METERFLOW_MQTT__TOPIC_PREFIX": prefix, "METERFLOW_DECODER__METRICS_PORT": "0",
           "METERFLOW_DECODER__BATCH_MAX_FRAMES": "300", "METERFLOW_MQTT__URL": "","PYTHONPATH": str(REPO_ROOT),
           "MF_INSTANCE": f"kill-{uuid.uuid4().hex[:6]}"}
    env.pop("METERFLOW_CONFIG_FILE", None)
    log = tmp_path / "decoder.log"
    proc = _decoder_process(env, tmp_path, log)
    pub = Publisher(private_broker.url)
    sent = threading.Event()

    def publish_all() -> None:
        for topic, payload in messages:
            pub.publish(topic, payload)
            time.sleep(0.005)
        sent.set()

    publisher = threading.Thread(target=publish_all, daemon=True)
    try:
        wait_for(lambda: "connected to broker" in log.read_text(), 30, "decoder connected")
        publisher.start()
        wait_for(lambda: count(database_url, "SELECT count(*) FROM readings") >= 1500, 60, "first commits")
        proc.send_signal(signal.SIGKILL)  # mid-stream: batches in flight, acks not sent
        proc.wait(10)
        killed_at = count(database_url, "SELECT count(*) FROM readings")
        assert killed_at < len(tels)
        time.sleep(1.0)
        proc = _decoder_process(env, tmp_path, log)
        wait_for(sent.is_set, 60, "all published")
        wait_for(lambda: count(database_url, "SELECT count(*) FROM readings") >= len(tels), 60,
                 "every reading stored after the restart")
        time.sleep(1.0)  # redeliveries still arriving must not add rows
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
        pub.close()
    assert count(database_url, "SELECT count(*) FROM readings") == len({(t.meter_id, t.time) for t in tels})
    assert count(database_url, "SELECT count(*) FROM raw_frames") == len(tels)
    assert "decoder stopped" in log.read_text()
