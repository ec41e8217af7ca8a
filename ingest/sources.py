"""Source workers: each owns one port (serial device, pyserial URL such as socket://host:port, or
stdin) or one Modbus bus, runs in its own thread, and survives unplugged sticks and dropped links by
reopening with a back-off. Frames go to a FrameSink; unusable input is counted there."""

from __future__ import annotations

import os
import select
import socket
import sys
import threading
import time
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit

import serial

from ingest.dongles import BadInput, Event, StreamDecoder
from ingest.dongles.amber import AmberDecoder
from ingest.dongles.imst import ImstDecoder
from ingest.dongles.rawhex import RawHexDecoder
from ingest.frames import FrameSink
from ingest.modbus_poller import ModbusPoller
from meterflow import retry
from meterflow.logs import ctx, get_logger

if TYPE_CHECKING:
    from ingest.config import GatewayConfig

log = get_logger(__name__)


class Worker(Protocol):
    name: str

    def run(self, stop: threading.Event) -> None: ...


class _Port(Protocol):
    def read(self, size: int = 1) -> bytes: ...
    def write(self, data: bytes) -> int | None: ...
    def close(self) -> None: ...


class _Stdin:
    """stdin with the read timeout of a serial port, so the worker still sees `stop`."""

    def __init__(self) -> None:
        self.fd = sys.stdin.buffer.fileno()
        self.eof = False

    def read(self, size: int = 1) -> bytes:
        ready, _, _ = select.select([self.fd], [], [], 0.1)
        if not ready:
            return b""
        data = os.read(self.fd, max(size, 4096))
        self.eof = not data
        return data

    def write(self, data: bytes) -> int:
        return 0

    def close(self) -> None:
        pass


class _Tcp:
    """A TCP byte stream (socket://host:port or tcp://host:port). Not pyserial's socket:// handler,
    which discards whatever the peer sent before open() returned."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if not parts.hostname or not parts.port:
            raise ValueError(f"{url}: expected socket://host:port")
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=5)
        self.sock.settimeout(0.1)

    def read(self, size: int = 1) -> bytes:
        try:
            data = self.sock.recv(max(size, 4096))
        except TimeoutError:
            return b""
        if not data:
            raise ConnectionError("connection closed by the peer")
        return data

    def write(self, data: bytes) -> int:
        self.sock.sendall(data)
        return len(data)

    def close(self) -> None:
        self.sock.close()


def open_port(port: str, baudrate: int) -> _Port:
    """'-' = stdin, socket://host:port or tcp://host:port = TCP, else a serial device or pyserial URL."""
    if port == "-":
        return _Stdin()
    if port.startswith(("socket://", "tcp://")):
        return _Tcp(port)
    return serial.serial_for_url(port, baudrate=baudrate, timeout=0.1)  # type: ignore[no-any-return]


class StreamWorker:
    """Reads one byte stream through a StreamDecoder."""

    def __init__(self, name: str, port: str, baudrate: int, decoder: StreamDecoder, sink: FrameSink,
                 gateway_id: str = "") -> None:
        self.name = name
        self.port = port
        self.baudrate = baudrate
        self.decoder = decoder
        self.sink = sink
        self.gateway_id = gateway_id

    def run(self, stop: threading.Event) -> None:
        """Open, read, and on failure reopen with the common back-off; a port that worked for a minute
        before failing starts its back-off afresh."""
        failures = (serial.SerialException, OSError, ValueError)
        while not stop.is_set():
            try:
                for attempt in retry.PORTS.retrying("source port", failures, stop, gateway_id=self.gateway_id,
                                                    source=self.name, port=self.port):
                    with attempt:
                        if self._session(stop):
                            return
            except failures:
                return  # stopped while the port was failing

    def _session(self, stop: threading.Event) -> bool:
        """One open port until it fails (raises, unless it had worked for a minute) or input ends (True)."""
        port = open_port(self.port, self.baudrate)
        log.info("source open", extra=ctx(gateway_id=self.gateway_id, source=self.name, port=self.port))
        opened = time.monotonic()
        try:
            for cmd in self.decoder.init_commands():
                port.write(cmd)
            self._read(port, stop)
            if isinstance(port, _Stdin) and port.eof:
                log.info("source reached end of input", extra=ctx(gateway_id=self.gateway_id, source=self.name))
                return True
        except (serial.SerialException, OSError) as exc:
            if time.monotonic() - opened <= 60:
                raise
            log.warning("source port failed; reopening", extra=ctx(gateway_id=self.gateway_id, source=self.name,
                                                                   error=str(exc)))
        finally:
            port.close()
        return stop.is_set()

    def _read(self, port: _Port, stop: threading.Event) -> None:
        decoder = self.decoder
        while not stop.is_set():
            data = port.read(4096)
            now = time.time()
            self._deliver(decoder.feed(data, now) if data else decoder.expire(now))
            replies: list[tuple[int, bytes]] | None = getattr(decoder, "replies", None)
            if replies:  # the stick's answers to the setup commands, for whoever debugs a mast
                for code, payload in replies:
                    log.info("stick replied", extra=ctx(gateway_id=self.gateway_id, source=self.name,
                                                        message=f"{code:02x}", payload=payload.hex()))
                replies.clear()
            if isinstance(port, _Stdin) and port.eof:
                self._deliver(decoder.feed(b"\n", now))  # a last line without its line end
                return

    def _deliver(self, events: list[Event]) -> None:
        for ev in events:
            if isinstance(ev, BadInput):
                self.sink.bad(self.name, ev.reason, ev.detail)
            else:
                self.sink.frame(ev)


def build_sources(cfg: GatewayConfig, sink: FrameSink) -> list[Worker]:
    """One worker per configured radio source and per Modbus bus."""
    workers: list[Worker] = []
    for src in cfg.sources:
        decoder: StreamDecoder
        if src.type == "imst":
            decoder = ImstDecoder(src.link_mode, src.configure)
        elif src.type == "amber":
            decoder = AmberDecoder(src.link_mode, src.configure, src.rssi_appended)
        else:
            decoder = RawHexDecoder()
        workers.append(StreamWorker(src.name, src.port, src.baudrate, decoder, sink, cfg.gateway_id))
    for bus in cfg.modbus:
        workers.append(ModbusPoller(bus, sink, cfg.gateway_id))
    return workers
