"""Fixtures for the gateway tests: corpus frames, a private Mosquitto from deploy/mosquitto, a
persistent-session subscriber, and gateway configs isolated by topic prefix."""

from __future__ import annotations

import getpass
import json
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ingest.config import GatewayConfig
from meterflow.envelope import decode_batch

REPO = Path(__file__).resolve().parents[2]
BROKER_CONF = REPO / "deploy" / "mosquitto" / "meterflow.conf"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def corpus_frames(shared_dir: Path) -> list[bytes]:
    """Distinct wM-Bus frames (L-field matches, CRCs removed) from the shared corpus."""
    path = shared_dir / "corpus" / "wmbus" / "cases.jsonl"
    if not path.exists():
        pytest.skip(f"corpus not found at {path}")
    seen: dict[bytes, None] = {}
    for line in path.read_text().splitlines():
        case = json.loads(line)
        hexstr = case.get("telegram_hex") or ""
        try:
            data = bytes.fromhex(hexstr)
        except ValueError:
            continue
        if 12 <= len(data) < 256 and data[0] + 1 == len(data):
            seen[data] = None
    frames = list(seen)
    assert len(frames) > 50
    return frames


class Broker:
    """A private Mosquitto started from the shipped config with the port and persistence dir changed."""

    def __init__(self, workdir: Path, tls: tuple[Path, Path, Path] | None = None,
                 password_file: Path | None = None, extra: str = "") -> None:
        self.port = free_port()
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        conf = BROKER_CONF.read_text()
        conf, n1 = re.subn(r"(?m)^listener 1883 127\.0\.0\.1$", f"listener {self.port} 127.0.0.1", conf)
        conf, n2 = re.subn(r"(?m)^persistence_location .*$", f"persistence_location {self.dir}/", conf)
        assert n1 == 1 and n2 == 1, "deploy/mosquitto/meterflow.conf changed shape"
        if tls:
            conf = conf.replace(f"listener {self.port} 127.0.0.1", f"listener {self.port} 127.0.0.1\n"
                                f"cafile {tls[0]}\ncertfile {tls[1]}\nkeyfile {tls[2]}")
        if password_file:
            conf = conf.replace("allow_anonymous true", f"allow_anonymous false\npassword_file {password_file}")
        # run as whoever runs the tests (as root, Mosquitto would switch to user "mosquitto" and could not
        # write its persistence file into the test's private directory)
        conf += f"\nuser {getpass.getuser()}\nlog_dest file {self.dir}/mosquitto.log\n{extra}\n"
        self.conf = self.dir / "mosquitto.conf"
        self.conf.write_text(conf)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(["mosquitto", "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("private mosquitto did not start")

    def reload(self) -> None:
        """SIGHUP: Mosquitto rereads its password and ACL files."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGHUP)

    def stop(self) -> None:
        """A clean stop (SIGTERM): Mosquitto saves its persistence database."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(10)
        self.proc = None


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    if not shutil.which("mosquitto"):
        pytest.skip("mosquitto is not installed")
    b = Broker(tmp_path / "broker")
    b.start()
    yield b
    b.stop()


class Subscriber:
    """Collects envelope frames; MQTT 5 persistent session (clean start off, session expiry), QoS 1."""

    def __init__(self, url: str, filters: list[str], client_id: str | None = None) -> None:
        self.frames: list[dict[str, Any]] = []
        self.batches: list[Any] = []
        self.messages: dict[str, list[bytes]] = {}
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.filters = filters
        host, port = url.removeprefix("mqtt://").split(":")
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id or f"sub-{uuid.uuid4().hex[:8]}",
                                  protocol=mqtt.MQTTv5)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(min_delay=1, max_delay=1)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        self.client.connect(host, int(port), clean_start=False, properties=props)
        self.client.loop_start()
        assert self.subscribed.wait(10), "subscriber did not subscribe"

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: Any, rc: Any, props: Any) -> None:
        if not rc.is_failure:
            client.subscribe([(f, 1) for f in self.filters])
            self.subscribed.set()

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages.setdefault(msg.topic, []).append(msg.payload)
            if msg.topic.endswith(("/wmbus", "/modbus")):
                batch = decode_batch(msg.payload)
                self.batches.append(batch)
                self.frames.extend(batch.frames)

    def wait_for(self, predicate: Any, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if predicate(self):
                    return True
            time.sleep(0.02)
        with self.lock:
            return bool(predicate(self))

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def prefix() -> str:
    return f"test-{uuid.uuid4().hex[:8]}/v1"


def make_config(tmp_path: Path, url: str, prefix: str, **overrides: Any) -> GatewayConfig:
    data: dict[str, Any] = {
        "gateway_id": f"gw-{uuid.uuid4().hex[:6]}",
        "mqtt": {"url": url, "topic_prefix": prefix, "reconnect_min_s": 0.5, "reconnect_max_s": 1},
        "outbox": {"path": str(tmp_path / "outbox.sqlite3"), "max_frames": 100_000},
        "batch_max_frames": 200,
        "batch_max_ms": 20,
        "status_interval_s": 60,
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return GatewayConfig.model_validate(data)
