"""Helpers for the decoder service tests: private Mosquitto and PostgreSQL servers a test may stop, a
publisher, counting queries."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # a checkout installed before `services` joined pyproject
    sys.path.insert(0, str(REPO_ROOT))

from cli.embedded import free_port, wait_for_port  # noqa: E402

PG_BIN = Path("/usr/lib/postgresql/15/bin")
BROKER_CONF = REPO_ROOT / "deploy" / "mosquitto" / "meterflow.conf"
# What the test broker must have even if deploy/mosquitto/meterflow.conf is missing: no message-count
# limit on queues (the default 1000 silently drops QoS 1 messages for a lagging subscriber).
FALLBACK_CONF = "max_queued_messages 0\nmax_queued_bytes 1073741824\nmax_inflight_messages 100\n"


wait_port = wait_for_port


class PrivateMosquitto:
    """A mosquitto process with the project's broker settings on a free port (no persistence file)."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> str:
        base = BROKER_CONF.read_text() if BROKER_CONF.exists() else FALLBACK_CONF
        skip = ("listener", "persistence", "persistence_location", "autosave_interval", "log_dest", "pid_file",
                "allow_anonymous", "password_file", "cafile", "certfile", "keyfile")
        lines = [ln for ln in base.splitlines() if ln.split(" ", 1)[0].strip() not in skip]
        conf = self.workdir / "mosquitto.conf"
        conf.write_text("\n".join([f"listener {self.port} 127.0.0.1", "allow_anonymous true",
                                   "persistence false", *lines]) + "\n")
        self.proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_port(self.port)
        return self.url

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


class PrivatePostgres:
    """Debian's PostgreSQL 15 binaries run as user postgres in a temp dir: a server a test can stop."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="meterflow-pg-"))
        self.data = self.dir / "data"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _as_postgres(self, *args: str) -> None:
        cmd = list(args)
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def init(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        self._as_postgres(str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres")
        with open(self.data / "postgresql.conf", "a") as f:
            f.write(f"port = {self.port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{self.dir}'\n"
                    "fsync = off\nshared_buffers = 64MB\n")

    def start(self) -> str:
        self._as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-w", "-l", str(self.dir / "log"), "start")
        return self.url

    def stop(self) -> None:
        self._as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-w", "-m", "fast", "stop")

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class Publisher:
    def __init__(self, url: str) -> None:
        from services.decoder import BrokerUrl, broker_speaks_v5

        b = BrokerUrl.parse(url)
        proto = mqtt.MQTTv5 if broker_speaks_v5(b.host, b.port) else mqtt.MQTTv311
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"mftest-pub-{uuid.uuid4().hex[:8]}",
                                  protocol=proto)
        self.client.max_inflight_messages_set(200)
        self.client.max_queued_messages_set(0)
        self.client.connect(b.host, b.port)
        self.client.loop_start()

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(30)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def count(dsn: str, query: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(query).fetchone()
        return int(row[0]) if row else 0
