"""Helpers shared by the gateway tests."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

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

    def __init__(self, devices: dict[int, dict[int, list[int]]]) -> None:
        from conftest import free_port
        from pymodbus.simulator import DataType, SimData, SimDevice

        self.port = free_port()
        self.devices = [SimDevice(id=dev_id, simdata=[SimData(address, values=list(words),
                                                              datatype=DataType.REGISTERS)
                                                      for address, words in sorted(blocks.items())])
                        for dev_id, blocks in devices.items()]
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(self._serve(),), daemon=True)
        self.thread.start()
        assert self.ready.wait(5)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("modbus server did not start")

    async def _serve(self) -> None:
        from pymodbus.server import ModbusTcpServer

        self.server = ModbusTcpServer(self.devices, address=("127.0.0.1", self.port))
        self.ready.set()
        await self.server.serve_forever()

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.shutdown(), self.loop).result(5)
        self.thread.join(5)
