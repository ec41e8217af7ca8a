"""TLS and username/password to the broker from the config; a refused login keeps frames in the outbox
and never shows the password; a full outbox drops the oldest frames and counts them; MQTT 3.1.1."""

from __future__ import annotations

import logging
import shutil
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from ingest_testlib import Broker, Subscriber, free_port, make_config, make_tls_files

from ingest.frames import ReceivedFrame
from ingest.gateway import Gateway
from meterflow.logs import LogfmtFormatter

T0 = 1_732_180_000.0


@pytest.fixture
def tls_broker(tmp_path: Path) -> Iterator[Broker]:
    if not shutil.which("mosquitto") or not shutil.which("mosquitto_passwd"):
        pytest.skip("mosquitto / mosquitto_passwd not installed")
    ca, cert, key = make_tls_files(tmp_path / "tls")
    passwd = tmp_path / "tls" / "passwd"
    passwd.write_text("")
    subprocess.run(["mosquitto_passwd", "-b", str(passwd), "gw-tls", "right-horse-battery"], check=True)
    broker = Broker(tmp_path / "broker", tls=(ca, cert, key), password_file=passwd)
    broker.start()
    yield broker
    broker.stop()


def frames(corpus: list[bytes], n: int) -> list[ReceivedFrame]:
    return [ReceivedFrame(d, T0 + i, -75) for i, d in enumerate(corpus[:n])]


def test_tls_with_password(tmp_path: Path, tls_broker: Broker, prefix: str, corpus_frames: list[bytes],
                           caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    url = f"mqtts://localhost:{tls_broker.port}"
    ca = tmp_path / "tls" / "ca.crt"
    good = make_config(tmp_path / "a", url, prefix, mqtt={"username": "gw-tls", "password": "right-horse-battery",
                                                          "ca_file": str(ca)})
    decoder = Subscriber(url, [f"{prefix}/+/wmbus"], username="gw-tls", password="right-horse-battery", ca_file=ca)
    with Gateway(good) as gw:
        assert gw.publish_frames(frames(corpus_frames, 100)) == 100
        assert gw.drain(10) and gw.publisher.connected
    decoder.close()

    bad = make_config(tmp_path / "b", url, prefix, mqtt={"username": "gw-tls", "password": "wrong-horse-battery",
                                                         "ca_file": str(ca)})
    with Gateway(bad) as gw:
        gw.publish_frames(frames(corpus_frames, 50))
        assert not gw.drain(1.5)
        assert gw.outbox.depth == 50  # kept for when the credentials are fixed
    text = "\n".join(LogfmtFormatter().format(r) for r in caplog.records)
    assert "broker refused connection" in text
    assert "right-horse-battery" not in text and "wrong-horse-battery" not in text


def test_broker_down_full_outbox_drops_oldest(tmp_path: Path, prefix: str, corpus_frames: list[bytes]) -> None:
    cfg = make_config(tmp_path, f"mqtt://127.0.0.1:{free_port()}", prefix, outbox={"max_frames": 1000},
                      dedup_window_s=0, metrics_port=free_port())
    gw = Gateway(cfg)
    stop = threading.Event()
    runner = threading.Thread(target=gw.run, args=(stop,), daemon=True)
    runner.start()
    try:
        for k in range(6):  # nobody listening: everything waits in the outbox, the oldest go first
            gw.publish_frames([ReceivedFrame(d, T0 + k * 1000 + i, -80) for i, d in enumerate(corpus_frames[:250])])
        status = gw.status()
        counters = status["counters"]
        assert isinstance(counters, dict)
        assert counters["outbox_depth"] == 1000 and counters["dropped"] == 500 and counters["published"] == 0
        assert status["mqtt_connected"] is False
        time.sleep(0.2)
        body = urllib.request.urlopen(f"http://127.0.0.1:{cfg.metrics_port}/metrics", timeout=5).read().decode()
        assert "meterflow_gateway_outbox_depth 1000.0" in body
        assert "meterflow_gateway_frames_dropped_total" in body
    finally:
        stop.set()
        runner.join(10)
    assert not runner.is_alive()


def test_mqtt_311(tmp_path: Path, mqtt_url: str, prefix: str, corpus_frames: list[bytes]) -> None:
    cfg = make_config(tmp_path, mqtt_url, prefix, mqtt={"protocol": "3.1.1"})
    decoder = Subscriber(mqtt_url, [f"{prefix}/+/wmbus"])
    with Gateway(cfg) as gw:
        assert gw.publish_frames(frames(corpus_frames, 100)) == 100
        assert gw.drain(10)
        assert not gw.publisher._v5
    decoder.close()
    assert len(decoder.frames) == 100


def test_auto_falls_back_to_311_for_a_broker_without_mqtt5(tmp_path: Path, prefix: str,
                                                           corpus_frames: list[bytes]) -> None:
    from cli.embedded import EmbeddedBroker  # amqtt: MQTT 3.1.1 only, ignores an MQTT 5 CONNECT

    broker = EmbeddedBroker()
    url = broker.start()
    try:
        cfg = make_config(tmp_path, url, prefix, mqtt={"protocol": "auto", "delivery": "broker"})
        with Gateway(cfg) as gw:
            assert gw.publish_frames(frames(corpus_frames, 50)) == 50
            assert gw.drain(20)
            assert not gw.publisher._v5
    finally:
        broker.stop()


def test_refused_batches_stay_in_the_outbox(tmp_path: Path, prefix: str, corpus_frames: list[bytes],
                                            caplog: pytest.LogCaptureFixture) -> None:
    if not shutil.which("mosquitto"):
        pytest.skip("mosquitto is not installed")
    acl = tmp_path / "acl"
    acl.write_text(f"topic readwrite {prefix}/+/status\n")  # frames topics not allowed yet
    broker = Broker(tmp_path / "broker", extra=f"acl_file {acl}")
    broker.start()
    try:
        cfg = make_config(tmp_path, broker.url, prefix)
        with Gateway(cfg) as gw:
            assert gw.publish_frames(frames(corpus_frames, 40)) == 40
            assert not gw.drain(1.5)  # PUBACK "not authorized": kept, sent again with a back-off
            assert gw.outbox.depth == 40 and gw.counters.published == 0
            assert "broker refused a batch" in caplog.text
            acl.write_text("topic readwrite #\n")
            broker.reload()
            time.sleep(0.5)
            decoder = Subscriber(broker.url, [f"{prefix}/+/wmbus"])
            assert gw.drain(15)
            assert gw.counters.published == 40
        decoder.close()
    finally:
        broker.stop()
