"""Helpers shared by the gateway tests."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from pathlib import Path

from ingest.frames import crc16_en13757


def with_block_crcs(frame: bytes) -> bytes:
    """Format A on the air: a CRC after the first 10 bytes and after every 16 bytes then."""
    out = bytearray(frame[:10]) + crc16_en13757(frame[:10]).to_bytes(2, "big")
    for i in range(10, len(frame), 16):
        block = frame[i:i + 16]
        out += block + crc16_en13757(block).to_bytes(2, "big")
    return bytes(out)


class ModbusTestServer:
    """pymodbus' own TCP server on a free port, in a thread: {device id: {address: words}} (registers
    shared by function 3 and 4, as SimDevice does)."""

    def __init__(self, devices: dict[int, dict[int, list[int]]], serial_port: str | None = None) -> None:
        from conftest import free_port
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
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("modbus server did not start")

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
