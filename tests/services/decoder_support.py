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

import psycopg

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # a checkout installed before `services` joined pyproject
    sys.path.insert(0, str(REPO_ROOT))

from cli.embedded import free_port, wait_for_port  # noqa: E402

PG_BIN = Path("/usr/lib/postgresql/15/bin")
BROKER_DIR = REPO_ROOT / "deploy" / "mosquitto"
BROKER_CONF = BROKER_DIR / "meterflow.conf"
BROKER_ACL = BROKER_DIR / "meterflow.acl"
# Settings whose values name host paths or the shipped port: the private broker replaces them.
_LOCAL = ("listener", "persistence_location", "password_file", "acl_file", "log_dest", "pid_file", "user",
          "cafile", "certfile", "keyfile")


wait_port = wait_for_port


class PrivateMosquitto:
    """A mosquitto process on a free port from the SHIPPED deploy/mosquitto/meterflow.conf.

    Only host-specific lines change (port, persistence directory, password and ACL file paths, the user
    it runs as). `secure=False` (the default for tests of other things) allows anonymous clients and drops
    the ACL; `secure=True` keeps the shipped rules and logs in with `users` (name -> password) created by
    mosquitto_passwd; `persistence=False` turns the persistence file off."""

    def __init__(self, workdir: Path, *, secure: bool = False, persistence: bool = False,
                 users: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.secure = secure
        self.persistence = persistence
        self.users = dict(users or {})
        self.proc: subprocess.Popen[bytes] | None = None
        self.conf = self.workdir / "mosquitto.conf"
        self._write_conf()

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def _write_conf(self) -> None:
        import getpass

        self.workdir.mkdir(parents=True, exist_ok=True)
        lines = [ln for ln in BROKER_CONF.read_text().splitlines() if ln.split(" ", 1)[0].strip() not in _LOCAL]
        lines = [ln for ln in lines if not ln.startswith(("allow_anonymous", "persistence "))]
        lines += [f"listener {self.port} 127.0.0.1", f"user {getpass.getuser()}",
                  f"log_dest file {self.workdir}/mosquitto.log",
                  f"persistence {'true' if self.persistence else 'false'}",
                  f"persistence_location {self.workdir}/"]
        if self.secure:
            passwd = self.workdir / "passwd"
            passwd.write_text("")
            for name, password in self.users.items():
                subprocess.run(["mosquitto_passwd", "-b", str(passwd), name, password], check=True)
            acl = self.workdir / "acl"
            shutil.copy(BROKER_ACL, acl)
            lines += ["allow_anonymous false", f"password_file {passwd}", f"acl_file {acl}"]
        else:
            lines += ["allow_anonymous true"]
        self.conf.write_text("\n".join(lines) + "\n")

    def start(self) -> str:
        self.proc = subprocess.Popen(["mosquitto", "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_port(self.port)
        return self.url

    def kill(self) -> None:
        """SIGKILL: no chance to save the persistence database."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None

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
    """A plain QoS 1 publisher (no outbox), through the kernel's MQTT layer."""

    def __init__(self, url: str, username: str | None = None, password: str | None = None) -> None:
        from meterflow.mqtt import MqttSettings, make_client, speaks_v5

        cfg = MqttSettings(url=url, username=username, password=password)
        client_id = f"mftest-pub-{uuid.uuid4().hex[:8]}"
        self.client = make_client(cfg, client_id, speaks_v5(cfg, client_id))
        self.client.max_inflight_messages_set(200)
        addr = cfg.address()
        self.client.connect(addr.host, addr.port)
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
