"""Helpers shared by the gateway tests: a private Mosquitto from deploy/mosquitto, a persistent-session
subscriber, gateway configs isolated by topic prefix, frame CRCs, a Modbus server and TLS files.
(A module of its own, not conftest: several test directories have a conftest.py.)"""

from __future__ import annotations

import asyncio
import getpass
import json
import re
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from cli.embedded import free_port, wait_for_port
from decoders.wmbus.testing import to_format_a
from ingest.config import GatewayConfig
from meterflow.envelope import decode_batch

REPO = Path(__file__).resolve().parents[2]
BROKER_CONF = REPO / "deploy" / "mosquitto" / "meterflow.conf"


with_block_crcs = to_format_a  # format A on the air


class ModbusTestServer:
    """pymodbus' own TCP server on a free port, in a thread: {device id: {address: words}} (registers
    shared by function 3 and 4, as SimDevice does)."""

    def __init__(self, devices: dict[int, dict[int, list[int]]], serial_port: str | None = None) -> None:
        from pymodbus.simulator import DataType, SimData, SimDevice

        self.port = free_port()
        self.serial_port = serial_port  # RTU on this serial device instead of Modbus TCP
        self.devices = [SimDevice(id=dev_id, simdata=[SimData(address, values=list(words),
                                                              datatype=DataType.REGISTERS)
                                                      for address, words in sorted(blocks.items())])
                        for dev_id, blocks in devices.items()]
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(self._serve(),), daemon=True)
        self.thread.start()
        assert self.ready.wait(5)
        if serial_port:
            time.sleep(0.3)
            return
        wait_for_port(self.port, 5)

    async def _serve(self) -> None:
        from pymodbus.framer import FramerType
        from pymodbus.server import ModbusSerialServer, ModbusTcpServer

        if self.serial_port:
            self.server: ModbusTcpServer | ModbusSerialServer = ModbusSerialServer(
                self.devices, framer=FramerType.RTU, port=self.serial_port, baudrate=19200)
        else:
            self.server = ModbusTcpServer(self.devices, address=("127.0.0.1", self.port))
        self.ready.set()
        await self.server.serve_forever()

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.shutdown(), self.loop).result(5)
        self.thread.join(5)


def make_tls_files(directory: Path, host: str = "localhost") -> tuple[Path, Path, Path]:
    """A throw-away CA and a server certificate for `host`: (ca.crt, server.crt, server.key)."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "meterflow test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
          .not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    directory.mkdir(parents=True, exist_ok=True)
    paths = directory / "ca.crt", directory / "server.crt", directory / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    paths[2].chmod(0o600)
    return paths


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
        # the shipped access rules name host files: tests of the gateway log in only where they test logins
        conf = re.sub(r"(?m)^(allow_anonymous|password_file|acl_file) .*$", "", conf)
        if password_file:
            conf += f"\nallow_anonymous false\npassword_file {password_file}\n"
        else:
            conf += "\nallow_anonymous true\n"
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
        wait_for_port(self.port, 10)

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


class Subscriber:
    """Collects envelope frames; MQTT 5 persistent session (clean start off, session expiry), QoS 1."""

    def __init__(self, url: str, filters: list[str], client_id: str | None = None, ack: bool = True,
                 username: str | None = None, password: str | None = None, ca_file: Path | None = None) -> None:
        from meterflow.mqtt import MqttSettings, connect_properties, make_client

        self.ack = ack
        self.frames: list[dict[str, Any]] = []
        self.batches: list[Any] = []
        self.messages: dict[str, list[bytes]] = {}
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.filters = filters
        cfg = MqttSettings(url=url, username=username, password=password, ca_file=ca_file)
        self.client = make_client(cfg, client_id or f"sub-{uuid.uuid4().hex[:8]}", True)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(min_delay=1, max_delay=1)
        addr = cfg.address()
        self.client.connect(addr.host, addr.port, clean_start=False, properties=connect_properties(3600))
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
                if self.ack:  # as a decoder does after its commit: the gateway may drop these frames
                    ack_topic = msg.topic.rsplit("/", 1)[0] + "/ack"
                    client.publish(ack_topic, json.dumps({"batches": [batch.batch_id]}), qos=1)

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
